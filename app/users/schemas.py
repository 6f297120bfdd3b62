import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

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
    # Left out means unchanged; an explicit null is a 422 (see TodoUpdate for the pattern).
    email: Email = None  # type: ignore[assignment]
