import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
)

from app.passwords import Password, PasswordToCheck
from app.validation import NoNul, RequestModel


def _normalize_email(value: str) -> str:
    return value.lower()


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


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    created_at: datetime


class UserUpdateMe(RequestModel):
    full_name: FullName | None = None
    # Left out means unchanged; an explicit null is a 422 (see TodoUpdate for the pattern).
    email: Email = None  # type: ignore[assignment]
    # Needed with `email` (v1.2; app.accounts.users.update_me says why), ignored without it.
    current_password: PasswordToCheck = None  # type: ignore[assignment]


class AccountDeletion(RequestModel):
    current_password: PasswordToCheck


class UserAdminUpdate(RequestModel):
    is_active: StrictBool = None  # type: ignore[assignment]
    is_superuser: StrictBool = None  # type: ignore[assignment]
    full_name: FullName | None = None


class PasswordChange(RequestModel):
    # Any length a stored password could have had, up to bcrypt's 72 bytes (not characters:
    # 72 "é" are 144 bytes, which bcrypt refuses); the other rules apply to the new one.
    current_password: PasswordToCheck
    new_password: Password


class UserListQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100, description="Users in one page, 1-100")
    cursor: str | None = Field(
        default=None,
        max_length=2048,
        description="The previous page's next_cursor (else 422). Absent: the first page",
    )


class UserPage(BaseModel):
    items: list[UserRead]
    next_cursor: str | None
