"""The password rule: what any password must be (bcrypt's limit, no NUL), for the accounts'
schemas and for the settings (FIRST_SUPERUSER_PASSWORD follows it too).

A leaf module, importing nothing of the domain: app.config may use it (scripts/check_imports.py).
"""

from typing import Annotated

from pydantic import AfterValidator, Field

from app.validation import NoNul

MIN_PASSWORD_BYTES = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores (or, since bcrypt 5, rejects) anything longer


def _password_length(value: str) -> str:
    size = len(value.encode())
    if not MIN_PASSWORD_BYTES <= size <= MAX_PASSWORD_BYTES:
        raise ValueError(
            f"Password must be {MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes long in UTF-8 "
            f"(bcrypt's limit); this one is {size}"
        )
    return value


def _at_most_72_bytes(value: str) -> str:
    size = len(value.encode())
    if size > MAX_PASSWORD_BYTES:
        raise ValueError(
            f"Password must be at most {MAX_PASSWORD_BYTES} bytes long in UTF-8 "
            f"(bcrypt's limit); this one is {size}"
        )
    return value


PASSWORD_RULE = (
    f"{MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit): "
    f"{MIN_PASSWORD_BYTES} to {MAX_PASSWORD_BYTES} ASCII characters, fewer where characters "
    "take several bytes. minLength and maxLength are the character counts that rule allows "
    "(a character is 1 to 4 bytes); the server counts the bytes."
)
# JSON Schema counts characters, not bytes: the schema declares the bounds every accepted
# password keeps (2 to 72 characters) and the rule in words; the validator counts the bytes.
Password = Annotated[
    str,
    Field(
        description=PASSWORD_RULE,
        json_schema_extra={
            "minLength": MIN_PASSWORD_BYTES // 4,  # characters take at most 4 bytes
            "maxLength": MAX_PASSWORD_BYTES,
        },
    ),
    NoNul,
    AfterValidator(_password_length),
]
# A password to check rather than to set (the current one): only bcrypt's limit applies.
PasswordToCheck = Annotated[
    str,
    Field(
        description=f"At most {MAX_PASSWORD_BYTES} bytes in UTF-8 (bcrypt's limit)",
        json_schema_extra={"maxLength": MAX_PASSWORD_BYTES},  # characters: see Password
    ),
    NoNul,
    AfterValidator(_at_most_72_bytes),
]
