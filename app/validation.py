"""Input rules shared by every domain's schemas."""

import re
from datetime import UTC, datetime
from itertools import islice
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

NUL_MESSAGE = "must not contain NUL characters"
# A 422 names at most this many problems (API.md): enough to fix a request by, and an attacker's
# body of 96,000 unknown keys costs neither 96,000 validations nor an 8 MB answer.
MAX_REPORTED_ERRORS = 20


def reject_nul(value: str) -> str:
    # PostgreSQL text cannot store U+0000 and bcrypt refuses it: a 422, not a 500 from below.
    if "\x00" in value:
        raise ValueError(NUL_MESSAGE)
    return value


class _NoNul:
    """reject_nul as a validator, also stated in the JSON schema (a pattern), so that generated
    clients and fuzzers know what the server refuses. (AfterValidator says nothing there.)"""

    def __init__(self, pattern: str = "^[^\\u0000]*$") -> None:
        self.pattern = pattern

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(reject_nul, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", self.pattern)
        return json_schema


NoNul = _NoNul()
# For text stored trimmed that must not be blank (a title, a list's name): the schema also
# says "at least one character that is not white space", which minLength alone does not.
NoNulNotBlank = _NoNul("^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$")


class _TrimmedLength:
    """The JSON schema of text whose length limit applies after trimming (API.md: a title is
    1 to 200 characters after trimming, a list's name 1 to 100). JSON Schema's maxLength counts the
    text as sent, so `"  " + 200 characters` would be invalid to a generated client or a
    fuzzer while the contract accepts it: the schema drops maxLength and says the rule in
    words. Validation is StringConstraints' (trim, then count), unchanged."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.pop("maxLength", None)
        json_schema.setdefault(
            "description", f"1 to {self.limit} characters after trimming white space"
        )
        return json_schema


def trimmed_length(limit: int) -> _TrimmedLength:
    return _TrimmedLength(limit)


# A date and a time of day, as RFC 3339 starts (offset and fraction are pydantic's to parse).
_DATE_TIME_START = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _require_text(value: object) -> object:
    # Pydantic would read a number, or a string of digits (every query parameter is a string),
    # as a Unix timestamp: the contract's times are RFC 3339 date-times.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TIME_START.match(value):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


def as_utc(value: datetime) -> datetime:
    """The same instant in UTC; naive times are read as UTC. ValueError (a 422 in a schema)
    for an instant whose UTC date is outside datetime's years 1 to 9999: 0001-01-01T00:00+01:00
    is one, and astimezone() would raise OverflowError, a 500, wherever it ran first."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date-time is out of range once converted to UTC") from None


# Every date-time a client sends: a string, normalised to UTC at the edge, so nothing further
# in (SQL parameters, comparisons, cursors) ever meets an offset to convert.
UtcDateTime = Annotated[datetime, BeforeValidator(_require_text), AfterValidator(as_utc)]


class RequestModel(BaseModel):
    """A JSON request body: a field the operation does not define is a 422 naming it, so a
    typo ({"complete": true}) is never a silent no-op."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_keys(cls, data: Any) -> Any:
        # Only the first unknown keys go on to be validated (and reported, as pydantic's own
        # extra_forbidden errors): validating every one of them was most of the cost.
        if not isinstance(data, dict) or len(data) <= len(cls.model_fields) + MAX_REPORTED_ERRORS:
            return data
        fields = cls.model_fields
        unknown = islice((key for key in data if key not in fields), MAX_REPORTED_ERRORS)
        kept = {key: data[key] for key in fields if key in data}
        return kept | {key: data[key] for key in unknown}
