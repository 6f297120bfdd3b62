import enum
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from app.todos.models import Priority


class PriorityName(enum.StrEnum):
    low = "low"
    normal = "normal"
    high = "high"


def _require_text(value: object) -> object:
    # Pydantic would read a bare number as a Unix timestamp; the contract's times are strings.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


def _as_utc(value: datetime) -> datetime:
    # Naive input times are read as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, strict=True)
]
Description = Annotated[str, StringConstraints(max_length=10_000, strict=True)]
DateTimeIn = Annotated[datetime, BeforeValidator(_require_text), AfterValidator(_as_utc)]
SortField = Literal[
    "created_at", "-created_at", "updated_at", "-updated_at", "due_date", "-due_date",
    "priority", "-priority", "title", "-title",
]  # fmt: skip


class TodoCreate(BaseModel):
    """The full writable representation; also the body of PUT, where omitted fields reset."""

    title: Title
    description: Description | None = None
    completed: StrictBool = False
    priority: PriorityName = PriorityName.normal
    due_date: DateTimeIn | None = None


class TodoUpdate(BaseModel):
    """Any subset of the writable fields; null clears a nullable field."""

    title: Title | SkipJsonSchema[None] = None
    description: Description | None = None
    completed: StrictBool | SkipJsonSchema[None] = None
    priority: PriorityName | SkipJsonSchema[None] = None
    due_date: DateTimeIn | None = None

    @field_validator("title", "completed", "priority", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Only an explicit null reaches this (defaults are not validated): these fields have
        # no "empty" state to clear them to.
        if value is None:
            raise ValueError("this field cannot be null")
        return value


class TodoRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    completed: bool
    priority: PriorityName
    due_date: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_name(cls, value: object) -> object:
        # Stored as a rank (see models.Priority).
        return Priority(value).name if isinstance(value, int) else value


class TodoListQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=1000)
    completed: bool | None = None
    priority: PriorityName | None = None
    q: str | None = Field(default=None, min_length=1, max_length=200)
    due_before: DateTimeIn | None = None
    due_after: DateTimeIn | None = None
    sort: SortField = "-created_at"


class TodoPage(BaseModel):
    items: list[TodoRead]
    next_cursor: str | None


class TodoStats(BaseModel):
    total: int
    completed: int
    open: int
    overdue: int
