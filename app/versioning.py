"""A resource as the client sees it, with its stored version: the strong ETag every write
checks (app.etags). One generic for every versioned resource (todos, lists)."""

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

Body = TypeVar("Body", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Versioned(Generic[Body]):
    body: Body
    version: int

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


def versioned(schema: type[Body], row: Any) -> Versioned[Body] | None:
    """The row (its read columns and `version`) as `schema`, or None for no row."""
    return None if row is None else Versioned(schema.model_validate(row), row.version)
