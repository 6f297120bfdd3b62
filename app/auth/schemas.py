from typing import Annotated

from pydantic import AfterValidator, BaseModel, EmailStr, Field, StringConstraints

from app.validation import NoNul, RequestModel

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


def _normalize_email(value: str) -> str:
    return value.lower()


Password = Annotated[str, NoNul, AfterValidator(_password_length)]
# A password to check rather than to set (the current one): only bcrypt's limit applies.
PasswordToCheck = Annotated[str, NoNul, AfterValidator(_at_most_72_bytes)]
Email = Annotated[EmailStr, AfterValidator(_normalize_email)]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NoNul]


class UserRegister(RequestModel):
    email: Email
    password: Password
    full_name: FullName | None = None


class TokenPair(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512), NoNul]
