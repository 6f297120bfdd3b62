"""All-day dues and time zones (issue 27; ADR 0401).

A todo is due at an instant (due_date) or on a day (due_day) in its time_zone (null: UTC). The
database cannot convert between zones (SQLite has no zone database), so every write that sets
due_day or time_zone also stores when that day starts and ends in that zone, as UTC instants:
SQL filters, sorts and counts overdue todos by those, with no row loaded into Python.
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from importlib import resources
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, StringConstraints

# A JSON date, as RFC 3339's full-date: pydantic alone would also take a number of seconds
# or a date-time at midnight.
_FULL_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A day whose start and end exist as instants in every zone (offsets stay within a day).
_FIRST_DAY, _LAST_DAY = date(1, 1, 2), date(9999, 12, 30)
DAY_FIELDS = ("due_day_starts_at", "due_day_ends_at")


def _require_full_date(value: object) -> object:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _FULL_DATE.fullmatch(value):
        raise ValueError("must be a date YYYY-MM-DD")
    return value


def _in_range(day: date) -> date:
    if not _FIRST_DAY <= day <= _LAST_DAY:
        raise ValueError(f"must be between {_FIRST_DAY} and {_LAST_DAY}")
    return day


DueDay = Annotated[date, BeforeValidator(_require_full_date), AfterValidator(_in_range)]


@cache
def zone_names() -> frozenset[str]:
    """The IANA names, as the tzdata package (a dependency) lists them, read once: the same
    on every machine, whatever its /usr/share/zoneinfo holds. zoneinfo.available_timezones()
    would also take files of the system's such as "localtime", and ZoneInfo opens paths."""
    return frozenset(resources.files("tzdata").joinpath("zones").read_text().split())


def _known_zone(name: str) -> str:
    if name not in zone_names():
        raise ValueError("must be an IANA time zone name, such as Europe/Berlin")
    return name


TimeZone = Annotated[
    str, StringConstraints(min_length=1, max_length=64, strict=True), AfterValidator(_known_zone)
]


def _start_of(day: date, zone: ZoneInfo) -> datetime:
    # Midnight on the wall clock; where a change of offset skips midnight, fold=0 reads it
    # with the offset before the change: the instant the day's first wall-clock time begins.
    return datetime.combine(day, time(), zone).astimezone(UTC)


def day_instants(due_day: date | None, time_zone: str | None) -> dict[str, Any]:
    """DAY_FIELDS for a todo with this due_day and time_zone: when the day starts (the todo is
    due) and when the next one starts (it is overdue); both null without a due_day."""
    if due_day is None:
        return dict.fromkeys(DAY_FIELDS)
    zone = ZoneInfo(time_zone or "UTC")
    start, end = _start_of(due_day, zone), _start_of(due_day + timedelta(days=1), zone)
    return dict(zip(DAY_FIELDS, (start, end), strict=True))
