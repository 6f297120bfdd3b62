import uuid
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from app.lists.schemas import ListRead
from app.todos.schemas import TodoRead


class ChangeQuery(BaseModel):
    since: str | None = Field(default=None, max_length=1024)
    limit: int = Field(default=100, ge=1, le=1000)
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


class ChangeRead(BaseModel):
    type: Literal["list", "todo"]
    id: uuid.UUID
    deleted: bool
    item: ListRead | TodoRead | None = Field(description="The latest state; null when deleted")


class ChangePage(BaseModel):
    changes: list[ChangeRead]
    next_token: str
    has_more: bool
