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


class LoginTokens(TokenPair):
    device_token: str = Field(
        description=(
            "Send it back as the form field `device_token` on later logins: it lets this "
            "client log in while the account is throttled for others (OWASP device cookies)"
        )
    )


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512), NoNul]


class LoginForm(BaseModel):
    """The OAuth2 password grant (RFC 6749 §4.3.2), as a form: the email goes in `username`."""

    grant_type: Annotated[str | None, Field(pattern="^password$")] = None
    username: str = Field(description="The account's email")
    password: str
    device_token: Annotated[
        str | None,
        Field(
            max_length=64,  # what the server hands out is 43 characters
            description="The `device_token` of an earlier successful login of this account",
        ),
    ] = None
