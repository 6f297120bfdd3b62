import enum
import uuid
from datetime import date, datetime
from typing import Annotated, Self

from pydantic import (
    AfterValidator,
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
MAX_LABELS = 20
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=50, strict=True),
    NoNulNotBlank,
    trimmed_length(50),
]


def label_key(name: str) -> str:
    """What makes two labels the same: their trimmed text, ignoring case (todo_labels.name_key)."""
    return name.casefold()


def _distinct(labels: list[str]) -> list[str]:
    if len({label_key(name) for name in labels}) != len(labels):
        raise ValueError("labels must differ from each other, ignoring case")
    return labels


Labels = Annotated[
    list[Label],
    Field(max_length=MAX_LABELS, description="Up to 20 labels, no two equal ignoring case"),
    AfterValidator(_distinct),
]
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


PARENT = (
    "null, or a top-level todo of the same list: this todo is its subtask (one level). A "
    "subtask of a subtask, a parent in another list, a missing or another user's todo, and a "
    "todo that has subtasks becoming one are 422"
)


class TodoReplace(RequestModel):
    """The full writable representation: the body of PUT, where omitted fields reset."""

    title: Title
    description: Description | None = None
    completed: StrictBool = False
    priority: PriorityName = PriorityName.normal
    due_date: DateTimeIn | None = None
    due_day: DueDay | None = None
    time_zone: TimeZone | None = None
    remind_at: DateTimeIn | None = None
    labels: Labels = Field(default_factory=list)
    # Needs a due (the service's 422, naming recurrence, as for a PATCH that leaves it none).
    recurrence: Recurrence | None = None
    # At the end of this list (default: the default list, or the parent's); a PUT without it
    # leaves the todo where it is.
    list_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = Field(default=None, description=PARENT)

    @model_validator(mode="after")
    def _one_due(self) -> Self:
        _check_one_due(self.due_day, self.due_date)
        return self


CLIENT_ID = (
    "An id the client chose (a UUID), so that it can refer to the object before it is sent "
    "(offline). Created with it: 201. The same request again (the same id and body; fields "
    "compared after trimming, an omitted one as its default) is 201 with the object as it is "
    "now, and changes nothing. The same id with another body, or an id that names or named "
    "any other object (a list or a todo, of anyone, also a deleted one) is 409. Default: the "
    "server chooses."
)


class TodoCreate(TodoReplace):
    """POST's body: the full writable representation, and optionally the todo's id."""

    id: uuid.UUID | None = Field(default=None, description=CLIENT_ID)


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
    labels: Labels = None  # type: ignore[assignment]  # the whole list: replaces it
    recurrence: Recurrence | None = None
    list_id: uuid.UUID = None  # type: ignore[assignment]  # another list: moves to its end
    parent_id: uuid.UUID | None = Field(default=None, description=PARENT)

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
    list_id: uuid.UUID | None = Field(
        default=None, description="Default: the todo's list (or the new parent's)"
    )
    parent_id: uuid.UUID | None = Field(
        default=None,
        description="Re-parents: a top-level todo of the list (`after` then one of its "
        "subtasks), or null for the top level. Absent: the todo keeps its parent",
    )


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
    labels: list[str]
    parent_id: uuid.UUID | None
    recurrence: str | None
    last_completed_at: datetime | None
    version: int = Field(description='The integer in the ETag: "version": 7 is ETag "7"')

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_name(cls, value: object) -> object:
        # Stored as a rank (see models.Priority).
        return _PRIORITY_NAMES[value] if type(value) is int else value


class TodoListQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100, description="Todos in one page, 1-100")
    # A title cursor holds up to 200 characters of UTF-8, base64-encoded.
    cursor: str | None = Field(
        default=None,
        max_length=2048,
        description="The previous page's next_cursor, with the same query (else 422). "
        "Absent: the first page",
    )
    completed: bool | None = Field(default=None, description="Only completed (true) or open todos")
    priority: PriorityName | None = Field(default=None, description="Only todos of this priority")
    q: Annotated[str, NoNul] | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Only todos whose title or description contains this, ignoring case",
    )
    due_before: DateTimeIn | None = Field(
        default=None,
        description="Only todos due before this instant (naive: UTC); todos without a due "
        "date never match",
    )
    due_after: DateTimeIn | None = Field(
        default=None,
        description="Only todos due after this instant (naive: UTC); todos without a due "
        "date never match",
    )
    list_id: uuid.UUID | None = Field(default=None, description="Only the todos in this list")
    # A default, not a default_factory: FastAPI asks for a query field's default on every
    # request, and pydantic inspects a factory's signature each time (parsing list's text
    # signature: about a twelfth of a list request's CPU).
    label: list[Label] = Field(
        default=[],
        max_length=MAX_LABELS,
        description="Only todos having every one of these labels, ignoring case (repeat the "
        "parameter: label=a&label=b)",
    )
    parent_id: uuid.UUID | None = Field(
        default=None,
        description="Only this todo's subtasks (sorted by position unless sort is given)",
    )
    top_level: bool | None = Field(
        default=None, description="Only todos without a parent (true) or only subtasks (false)"
    )
    sort: TodoSort | None = Field(
        default=None,
        description="The order: a field, ascending, or descending with a leading `-`; ties by "
        "id in the same direction, todos without a due date last both ways. Default: "
        "`-created_at`, or `position` with parent_id",
    )

    def effective_sort(self) -> TodoSort:
        if self.sort is not None:
            return self.sort
        # A todo's subtasks are read in their order unless another is asked for.
        return TodoSort.created_at_desc if self.parent_id is None else TodoSort.position_asc


class TodoPage(BaseModel):
    items: list[TodoRead]
    next_cursor: str | None


class TodoStats(BaseModel):
    total: int
    completed: int
    open: int
    overdue: int


class LabelCount(BaseModel):
    name: str = Field(description="As spelled on the most recently updated todo that has it")
    count: int = Field(description="How many of the user's todos have it")


class LabelList(BaseModel):
    items: list[LabelCount]
