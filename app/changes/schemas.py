"""The feed's shapes. A change is a union discriminated by `type`: `type` says which model
`item` is, so a generated client narrows a change by it (TypeScript `change.type === "todo"`
makes `change.item` a TodoRead or null) instead of guessing from the item's fields."""

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, Field, RootModel, model_validator

from app.lists.schemas import ListRead
from app.todos.schemas import TodoRead

_ID = "The object's id"
_DELETED = "True: the object is gone (a tombstone); remove it from the local copy"
_ITEM = "The object's latest state, as GET returns it; null exactly when deleted"


class ChangeQuery(BaseModel):
    since: str | None = Field(
        default=None,
        max_length=1024,
        description="The next_token of an earlier answer: what changed after it. Absent: "
        "start from nothing (every current list and todo comes). Older than "
        "CHANGES_RETENTION_DAYS: 410, start again without it; not a token this server issued "
        "to this user: 422",
    )
    limit: int = Field(default=100, ge=1, le=1000, description="Changes in one answer, 1-1000")
    wait: int | None = Field(
        default=None,
        ge=0,
        le=60,
        description="Seconds to wait for a change when there is none since the token (0-60)",
    )

    @model_validator(mode="after")
    def _wait_needs_since(self) -> "ChangeQuery":
        # From nothing the answer is everything there is: there is nothing to wait for.
        if self.wait is not None and self.since is None:
            raise ValueError("wait needs since: pass the next_token of an earlier answer")
        return self


class ListChange(BaseModel):
    """A list changed (or, deleted, is gone with its todos)."""

    type: Literal["list"]
    id: uuid.UUID = Field(description=_ID)
    deleted: bool = Field(description=_DELETED)
    item: ListRead | None = Field(description=_ITEM)


class TodoChange(BaseModel):
    """A todo changed (or, deleted, is gone)."""

    type: Literal["todo"]
    id: uuid.UUID = Field(description=_ID)
    deleted: bool = Field(description=_DELETED)
    item: TodoRead | None = Field(description=_ITEM)


# The change as a plain annotated union: what the feed validates and writes (app.changes.service).
Change = Annotated[ListChange | TodoChange, Field(discriminator="type")]


class ChangeRead(RootModel[Change]):
    """One change: `type` says what `item` is (discriminator)."""


class ChangePage(BaseModel):
    changes: list[ChangeRead] = Field(
        description="In commit order, but within one answer parents first; an object may come twice"
    )
    next_token: str = Field(description="The `since` of the next call: keep it")
    has_more: bool = Field(description="True: call again with next_token now")
