import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.auth.schemas import Email, FullName, Password, PasswordToCheck
from app.validation import RequestModel


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
    # Needed with `email` (v1.2; app.users.service.update_me says why), ignored without it.
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
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=2048)


class UserPage(BaseModel):
    items: list[UserRead]
    next_cursor: str | None
