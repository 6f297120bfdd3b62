import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.validation import NoNulNotBlank, RequestModel, trimmed_length

ListName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, strict=True),
    NoNulNotBlank,
    trimmed_length(100),
]


class ListCreate(RequestModel):
    name: ListName


class ListUpdate(RequestModel):
    name: ListName


class MoveList(RequestModel):
    after: uuid.UUID | None = Field(description="The list to follow; null: first")


class ListRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    position: str
    is_default: bool
    created_at: datetime
    updated_at: datetime
    version: int = Field(description='The integer in the ETag: "version": 7 is ETag "7"')


class ListListQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=512)


class ListPage(BaseModel):
    items: list[ListRead]
    next_cursor: str | None
