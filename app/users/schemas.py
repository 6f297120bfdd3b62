import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.json_schema import SkipJsonSchema

from app.auth.schemas import Email, FullName


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    created_at: datetime


class UserUpdateMe(BaseModel):
    full_name: FullName | None = None
    email: Email | SkipJsonSchema[None] = None

    @field_validator("email", mode="before")
    @classmethod
    def _email_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("email cannot be null")
        return value
