"""Recurring todos (issue 27; API.md v1.3): an RFC 5545 RRULE, evaluated by dateutil's rrule
on the wall clock of the todo's time_zone (null: UTC).

What a series is. Its first occurrence (DTSTART) is the todo's *anchor*: the due the client
last set together with or before its recurrence (the service stores it as
`recurrence_anchor`); completing moves the due, never the anchor. COUNT counts occurrences
from the anchor, as RFC 5545 counts from DTSTART, so a `COUNT=3` todo completes for good at
its third due however it got there. As in dateutil (and unlike RFC 5545's DTSTART, which is
always an instance), an anchor that does not match the rule is not an occurrence itself.

Instants (due_date) run on local wall time: the anchor and the current due are read as
naive times in the zone, rrule steps from the one past the other, and the local result
becomes an instant again, so a 09:00 daily todo stays at 09:00 across daylight-saving
changes. Local times are resolved as RFC 5545 (3.3.5) resolves DTSTART, which zoneinfo's
fold=0 does: a time that does not exist (skipped forward) takes the offset from before the
gap (02:30 on a spring-forward night in Berlin is 03:30 CEST), and one that exists twice
takes the first (01:30 on the fall-back night is 01:30 CEST). An all-day due (due_day) runs
on dates: occurrences at midnight, the date kept.

UNTIL is a UTC date-time (`...Z`, compared with each occurrence as an instant; for an all-day
todo, with the start of its day in the zone) or a date (the whole local day included).
"""

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from dateutil import rrule
from pydantic import AfterValidator, StringConstraints

MAX_LENGTH = 200
_FREQS = {
    "DAILY": rrule.DAILY,
    "WEEKLY": rrule.WEEKLY,
    "MONTHLY": rrule.MONTHLY,
    "YEARLY": rrule.YEARLY,
}
_WEEKDAYS = dict(zip(("MO", "TU", "WE", "TH", "FR", "SA", "SU"), rrule.weekdays, strict=True))
# Bounds that keep every evaluation short (see _check_reachable): a rule whose next occurrence
# is further away than _HORIZON (a Gregorian cycle, after which dates repeat) has none left.
_MAX_INTERVAL, _MAX_COUNT = 1000, 10_000
_HORIZON = timedelta(days=146_097)
# The longest each month can be; February's 29 makes a leap-day rule valid (leap years only).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_BYDAY = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_UTC_UNTIL = re.compile(r"(\d{8})T(\d{6})Z")

NEEDS_DUE = "A recurring todo needs due_date or due_day"


@dataclass(frozen=True)
class Rule:
    """A parsed, valid RRULE: rrule's keyword arguments, and UNTIL as written."""

    options: dict[str, Any]
    until: date | datetime | None  # a date, or an aware UTC datetime


def parse(text: str) -> Rule:
    """The rule `text` says, or a ValueError saying what is wrong with it (a 422 in the API)."""
    if len(text) > MAX_LENGTH:
        raise ValueError(f"must be at most {MAX_LENGTH} characters")
    if text[:6].upper() == "RRULE:":
        raise ValueError("is an RRULE value without the RRULE: prefix")
    parts: dict[str, str] = {}
    for part in text.upper().split(";"):
        name, sep, value = part.partition("=")
        if not sep or not value:
            raise ValueError(f"{part!r} is not NAME=VALUE")
        if name in parts:
            raise ValueError(f"{name} is given twice")
        parts[name] = value
    freq = parts.pop("FREQ", None)
    if freq not in _FREQS:
        raise ValueError("needs FREQ=DAILY, WEEKLY, MONTHLY or YEARLY")
    options: dict[str, Any] = {"freq": _FREQS[freq]}
    until: date | datetime | None = None
    for name, value in parts.items():
        if name == "INTERVAL":
            options["interval"] = _integer(name, value, 1, _MAX_INTERVAL)
        elif name == "COUNT":
            options["count"] = _integer(name, value, 1, _MAX_COUNT)
        elif name == "UNTIL":
            until = _until(value)
        elif name == "BYMONTH":
            options["bymonth"] = _integers(name, value, 1, 12)
        elif name == "BYMONTHDAY":
            if freq == "WEEKLY":
                raise ValueError("BYMONTHDAY cannot be used with FREQ=WEEKLY")
            options["bymonthday"] = _integers(name, value, -31, 31)
        elif name == "BYDAY":
            options["byweekday"] = _byday(freq, value, "BYMONTH" in parts)
        else:
            raise ValueError(
                f"{name} is not supported: only FREQ, INTERVAL, BYDAY, "
                "BYMONTHDAY, BYMONTH, COUNT, UNTIL"
            )
    if "count" in options and until is not None:
        raise ValueError("COUNT and UNTIL cannot both be given")
    _check_days_exist(options)
    _check_reachable(freq, options)
    return Rule(options, until)


def check(text: str) -> str:
    parse(text)
    return text


Recurrence = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_LENGTH, strict=True),
    AfterValidator(check),
]


def require_due(recurrence: str | None, due_date: datetime | None, due_day: date | None) -> None:
    """A recurrence repeats a due: a todo with one and no due is a ValueError (a 422)."""
    if recurrence is not None and due_date is None and due_day is None:
        raise ValueError(NEEDS_DUE)


def next_instant(
    text: str, anchor: datetime, current: datetime, time_zone: str | None
) -> datetime | None:
    """The first occurrence, in UTC, strictly after the instant `current` of the series that
    starts at the instant `anchor`, on the wall clock of `time_zone`; None when none is left.
    Occurrences are whole seconds (rrule drops the anchor's microseconds)."""
    zone = ZoneInfo(time_zone or "UTC")
    rule = parse(text)
    for occurrence in _after(rule, _local(anchor, zone), _local(current, zone)):
        instant = occurrence.replace(tzinfo=zone).astimezone(UTC)  # fold=0: see above
        if _past_until(rule.until, instant, occurrence):
            return None
        # Local order is instant order but within a fall-back hour: step past such a one.
        if instant > current:
            return instant
    return None


def next_day(text: str, anchor: date, current: date, time_zone: str | None) -> date | None:
    """The first occurrence strictly after the all-day due `current` of the series that starts
    on `anchor`; None when none is left. A UTC UNTIL is compared with the instant each day
    starts in `time_zone` (when the todo is due)."""
    zone = ZoneInfo(time_zone or "UTC")
    rule = parse(text)
    midnight = datetime.combine(current, time())
    for occurrence in _after(rule, datetime.combine(anchor, time()), midnight):
        starts = occurrence.replace(tzinfo=zone).astimezone(UTC)
        return None if _past_until(rule.until, starts, occurrence) else occurrence.date()
    return None


def _past_until(until: date | datetime | None, instant: datetime, local: datetime) -> bool:
    if isinstance(until, datetime):
        return instant > until
    # A date: every occurrence on that local day is in.
    return until is not None and local.date() > until


def _after(rule: Rule, start: datetime, current: datetime) -> Iterator[datetime]:
    """The local occurrences after `current`, up to the horizon (UNTIL is the callers')."""
    horizon = current + _HORIZON if current < datetime.max - _HORIZON else datetime.max
    # COUNT counts from DTSTART, and rrule takes no UNTIL beside it.
    options = rule.options if "count" in rule.options else {**rule.options, "until": horizon}
    series = rrule.rrule(dtstart=start, wkst=rrule.MO, **options)
    for occurrence in series.xafter(current, inc=False):
        if occurrence > horizon:
            return
        yield occurrence


def _local(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _integer(name: str, value: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[+-]?\d{1,5}", value) or not low <= int(value) <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}")
    return int(value)


def _integers(name: str, value: str, low: int, high: int) -> tuple[int, ...]:
    numbers = tuple(_integer(name, item, low, high) for item in value.split(","))
    if 0 in numbers:
        raise ValueError(f"{name} cannot be 0")
    return numbers


def _byday(freq: str, value: str, by_month: bool) -> tuple[rrule.weekday, ...]:
    # An ordinal (2MO, -1FR) counts within the month (MONTHLY, or YEARLY with BYMONTH) or
    # the year (YEARLY); RFC 5545 allows none with WEEKLY or DAILY.
    limit = 5 if freq == "MONTHLY" or by_month else 53
    days = []
    for item in value.split(","):
        match = _BYDAY.fullmatch(item)
        if match is None:
            raise ValueError(f"BYDAY {item!r} is not a weekday such as MO, 2TU or -1FR")
        ordinal, name = match.groups()
        if ordinal is None:
            days.append(_WEEKDAYS[name])
            continue
        if freq in ("DAILY", "WEEKLY"):
            raise ValueError(f"BYDAY {item!r}: an ordinal needs FREQ=MONTHLY or YEARLY")
        if not 1 <= abs(int(ordinal)) <= limit:
            raise ValueError(f"BYDAY {item!r}: the ordinal must be from 1 to {limit} or -{limit}")
        days.append(_WEEKDAYS[name](int(ordinal)))
    return tuple(days)


def _check_days_exist(options: dict[str, Any]) -> None:
    """BYMONTHDAY=30;BYMONTH=2 names no day at all: refused rather than searched for."""
    monthdays = options.get("bymonthday")
    if monthdays is None:
        return
    months = options.get("bymonth", range(1, 13))
    if not any(abs(day) <= _MONTH_DAYS[month - 1] for day in monthdays for month in months):
        raise ValueError("BYMONTHDAY and BYMONTH name no day that exists")


def _check_reachable(freq: str, options: dict[str, Any]) -> None:
    """Refuses the RFC-valid rules that can name no day after some DTSTART. rrule stops looking
    only at the year 9999, not at UNTIL or the horizon (a walk of seconds); what is left after
    these checks finds an occurrence or ends within a few thousand steps."""
    interval, byweekday = options.get("interval", 1), options.get("byweekday", ())
    if "bymonthday" in options and any(day.n for day in byweekday):
        raise ValueError("BYDAY with an ordinal (2MO) cannot be combined with BYMONTHDAY")
    if freq == "DAILY" and interval % 7 == 0 and byweekday:
        raise ValueError("FREQ=DAILY with BYDAY needs an INTERVAL that is not whole weeks")
    if freq == "MONTHLY" and math.gcd(interval, 12) > 1 and "bymonth" in options:
        raise ValueError("FREQ=MONTHLY with BYMONTH needs an INTERVAL that reaches every month")


def _until(value: str) -> date | datetime:
    if re.fullmatch(r"\d{8}", value):
        try:
            return datetime.strptime(value, "%Y%m%d").date()
        except ValueError:
            pass
    elif (match := _UTC_UNTIL.fullmatch(value)) is not None:
        try:
            return datetime.strptime("".join(match.groups()), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            pass
    raise ValueError("UNTIL must be a date YYYYMMDD or a UTC date-time YYYYMMDDTHHMMSSZ")
