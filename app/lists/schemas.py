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


# The same rule as a todo's (app.todos.schemas.CLIENT_ID; lists do not import todos).
CLIENT_ID = (
    "An id the client chose (a UUID), so that it can refer to the object before it is sent "
    "(offline). Created with it: 201. The same request again (the same id and body; the name "
    "compared after trimming) is 201 with the list as it is now, and changes nothing. The "
    "same id with another body, or an id that names or named any other object (a list or a "
    "todo, of anyone, also a deleted one) is 409. Default: the server chooses."
)


class ListCreate(RequestModel):
    name: ListName
    id: uuid.UUID | None = Field(default=None, description=CLIENT_ID)


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
    limit: int = Field(default=20, ge=1, le=100, description="Lists in one page, 1-100")
    cursor: str | None = Field(
        default=None,
        max_length=512,
        description="The previous page's next_cursor (else 422). Absent: the first page",
    )


class ListPage(BaseModel):
    items: list[ListRead]
    next_cursor: str | None
