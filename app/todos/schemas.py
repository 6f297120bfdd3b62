import enum
import uuid
from datetime import date, datetime
from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from app.todos.dates import DueDay, TimeZone
from app.todos.models import Priority
from app.todos.recurrence import Recurrence
from app.validation import NoNul, NoNulNotBlank, RequestModel, UtcDateTime, trimmed_length


class PriorityName(enum.StrEnum):
    low = "low"
    normal = "normal"
    high = "high"


# By rank: the names of models.Priority 0, 1, 2.
_PRIORITY_NAMES = tuple(PriorityName[rank.name] for rank in sorted(Priority))


Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, strict=True),
    NoNulNotBlank,
    trimmed_length(200),
]
Description = Annotated[str, StringConstraints(max_length=10_000, strict=True), NoNul]
DateTimeIn = UtcDateTime


class TodoSort(enum.StrEnum):
    """A sort field, ascending, or descending with a leading `-`; ties are broken by id."""

    created_at_asc = "created_at"
    created_at_desc = "-created_at"
    updated_at_asc = "updated_at"
    updated_at_desc = "-updated_at"
    due_date_asc = "due_date"
    due_date_desc = "-due_date"
    priority_asc = "priority"
    priority_desc = "-priority"
    title_asc = "title"
    title_desc = "-title"
    position_asc = "position"
    position_desc = "-position"

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Generated clients name enum members after their values; "-created_at" has none.
        schema = handler(core_schema)
        handler.resolve_ref_schema(schema)["x-enum-varnames"] = [m.name.upper() for m in cls]
        return schema


class TodoCreate(RequestModel):
    """The full writable representation; also the body of PUT, where omitted fields reset."""

    title: Title
    description: Description | None = None
    completed: StrictBool = False
    priority: PriorityName = PriorityName.normal
    due_date: DateTimeIn | None = None
    due_day: DueDay | None = None
    time_zone: TimeZone | None = None
    remind_at: DateTimeIn | None = None
    # Needs a due (the service's 422, naming recurrence, as for a PATCH that leaves it none).
    recurrence: Recurrence | None = None
    # At the end of this list (default: the default list); a PUT without it leaves the todo
    # where it is.
    list_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _one_due(self) -> Self:
        _check_one_due(self.due_day, self.due_date)
        return self


class TodoUpdate(RequestModel):
    """Any subset of the writable fields; null clears a nullable field.

    Fields left out keep their value (only `model_fields_set` is applied). The non-nullable ones
    default to None without admitting it in their type, so an explicit null is a plain 422.
    """

    title: Title = None  # type: ignore[assignment]
    description: Description | None = None
    completed: StrictBool = None  # type: ignore[assignment]
    priority: PriorityName = None  # type: ignore[assignment]
    due_date: DateTimeIn | None = None
    # Setting one of due_day and due_date while the other is stored is a 422, unless the same
    # body sets the other to null (app.todos.dates).
    due_day: DueDay | None = None
    time_zone: TimeZone | None = None
    remind_at: DateTimeIn | None = None
    recurrence: Recurrence | None = None
    list_id: uuid.UUID = None  # type: ignore[assignment]  # another list: moves to its end

    @model_validator(mode="after")
    def _one_due(self) -> Self:
        _check_one_due(self.due_day, self.due_date)
        return self


BOTH_DUES = "A todo has at most one of due_day and due_date: set the other to null"


def _check_one_due(due_day: date | None, due_date: datetime | None) -> None:
    if due_day is not None and due_date is not None:
        raise ValueError(BOTH_DUES)


class MoveTodo(RequestModel):
    after: uuid.UUID | None = Field(description="The todo to follow; null: first")
    list_id: uuid.UUID | None = Field(default=None, description="Default: the todo's list")


class TodoRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    completed: bool
    priority: PriorityName
    due_date: datetime | None
    due_day: date | None
    time_zone: str | None
    remind_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    list_id: uuid.UUID
    position: str
    recurrence: str | None
    last_completed_at: datetime | None
    version: int = Field(description='The integer in the ETag: "version": 7 is ETag "7"')

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_name(cls, value: object) -> object:
        # Stored as a rank (see models.Priority).
        return _PRIORITY_NAMES[value] if type(value) is int else value


class TodoListQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    # A title cursor holds up to 200 characters of UTF-8, base64-encoded.
    cursor: str | None = Field(default=None, max_length=2048)
    completed: bool | None = None
    priority: PriorityName | None = None
    q: Annotated[str, NoNul] | None = Field(default=None, min_length=1, max_length=200)
    due_before: DateTimeIn | None = None
    due_after: DateTimeIn | None = None
    list_id: uuid.UUID | None = None
    sort: TodoSort = TodoSort.created_at_desc


class TodoPage(BaseModel):
    items: list[TodoRead]
    next_cursor: str | None


class TodoStats(BaseModel):
    total: int
    completed: int
    open: int
    overdue: int
