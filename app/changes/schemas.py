import uuid
from typing import Literal

from pydantic import BaseModel, Field

from app.lists.schemas import ListRead
from app.todos.schemas import TodoRead


class ChangeQuery(BaseModel):
    since: str | None = Field(default=None, max_length=1024)
    limit: int = Field(default=100, ge=1, le=1000)


class ChangeRead(BaseModel):
    type: Literal["list", "todo"]
    id: uuid.UUID
    deleted: bool
    item: ListRead | TodoRead | None = Field(description="The latest state; null when deleted")


class ChangePage(BaseModel):
    changes: list[ChangeRead]
    next_token: str
    has_more: bool
