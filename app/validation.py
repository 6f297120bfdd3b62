"""Input rules shared by every domain's schemas."""

from pydantic import AfterValidator

NUL_MESSAGE = "must not contain NUL characters"


def reject_nul(value: str) -> str:
    # PostgreSQL text cannot store U+0000 and bcrypt refuses it: a 422, not a 500 from below.
    if "\x00" in value:
        raise ValueError(NUL_MESSAGE)
    return value


NoNul = AfterValidator(reject_nul)
