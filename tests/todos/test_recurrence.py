"""Recurrence rules and their next occurrence (app/todos/recurrence.py), without a database:
the wall clock across daylight-saving changes both ways, short months, COUNT, UNTIL, leap
days, all-day against instant dues, and every rule the API refuses."""

from datetime import UTC, date, datetime

import pytest
from pydantic import TypeAdapter, ValidationError

from app.todos.recurrence import NEEDS_DUE, Recurrence, next_day, next_instant, require_due

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)  # type: ignore[misc]


def series(rule: str, anchor: datetime, zone: str | None, steps: int) -> list[datetime | None]:
    """The dues a todo goes through when completed `steps` times from its anchor."""
    dues: list[datetime | None] = []
    current: datetime | None = anchor
    for _ in range(steps):
        assert current is not None
        current = next_instant(rule, anchor, current, zone)
        dues.append(current)
    return dues


@pytest.mark.parametrize(
    ("zone", "anchor", "expected"),
    [
        # 09:00 local the day before, on and after the spring-forward night: 08:00Z -> 07:00Z.
        (BERLIN, utc(2026, 3, 28, 8), [utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]),
        (NEW_YORK, utc(2026, 3, 7, 14), [utc(2026, 3, 8, 13), utc(2026, 3, 9, 13)]),
        # And back in the autumn: 07:00Z -> 08:00Z, 13:00Z -> 14:00Z.
        (BERLIN, utc(2026, 10, 24, 7), [utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)]),
        (NEW_YORK, utc(2026, 10, 31, 13), [utc(2026, 11, 1, 14), utc(2026, 11, 2, 14)]),
    ],
)
def test_a_daily_todo_stays_at_its_local_time_across_daylight_saving_changes(
    zone: str, anchor: datetime, expected: list[datetime]
) -> None:
    assert series("FREQ=DAILY", anchor, zone, 2) == expected


def test_without_a_time_zone_the_wall_clock_is_utc() -> None:
    assert series("FREQ=DAILY", utc(2026, 3, 28, 8), None, 2) == [
        utc(2026, 3, 29, 8),
        utc(2026, 3, 30, 8),
    ]


def test_a_weekly_todo_keeps_its_local_time_and_weekdays_across_the_change() -> None:
    # Mondays and Fridays at 18:30 in New York, from Friday 6 March 2026 (EST, UTC-5).
    assert series("FREQ=WEEKLY;BYDAY=MO,FR", utc(2026, 3, 6, 23, 30), NEW_YORK, 3) == [
        utc(2026, 3, 9, 22, 30),  # Monday, EDT
        utc(2026, 3, 13, 22, 30),
        utc(2026, 3, 16, 22, 30),
    ]


def test_a_local_time_skipped_by_the_clocks_takes_the_offset_before_the_gap() -> None:
    # 02:30 does not exist in Berlin on 29 March 2026: read with CET's offset, it is 01:30Z
    # (03:30 CEST), as RFC 5545 reads such a DTSTART; the next day is 02:30 CEST again.
    assert series("FREQ=DAILY", utc(2026, 3, 28, 1, 30), BERLIN, 2) == [
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 30, 0, 30),
    ]


def test_a_local_time_that_happens_twice_is_its_first_and_the_next_is_a_day_later() -> None:
    # 02:30 happens twice in Berlin on 25 October 2026: first in CEST (00:30Z).
    assert series("FREQ=DAILY", utc(2026, 10, 24, 0, 30), BERLIN, 2) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]
    # A due at the second 02:30 (CET, 01:30Z) moves to the next day, not an hour back.
    second = utc(2026, 10, 25, 1, 30)
    assert next_instant("FREQ=DAILY", second, second, BERLIN) == utc(2026, 10, 26, 1, 30)


def test_a_monthly_todo_on_the_31st_skips_the_months_without_one() -> None:
    anchor = utc(2026, 1, 31, 9)  # 10:00 CET
    assert series("FREQ=MONTHLY", anchor, BERLIN, 4) == [
        utc(2026, 3, 31, 8),  # 10:00 CEST
        utc(2026, 5, 31, 8),
        utc(2026, 7, 31, 8),
        utc(2026, 8, 31, 8),
    ]
    assert series("FREQ=MONTHLY;BYMONTHDAY=31", anchor, None, 1) == [utc(2026, 3, 31, 9)]
    # The last day of each month is -1.
    assert series("FREQ=MONTHLY;BYMONTHDAY=-1", anchor, None, 2) == [
        utc(2026, 2, 28, 9),
        utc(2026, 3, 31, 9),
    ]


def test_count_counts_from_the_first_due_not_from_the_current_one() -> None:
    anchor = utc(2026, 12, 7, 9)
    assert series("FREQ=DAILY;COUNT=3", anchor, None, 3) == [
        utc(2026, 12, 8, 9),
        utc(2026, 12, 9, 9),
        None,
    ]
    # Wherever the todo is in its series, the third occurrence is its last.
    third = utc(2026, 12, 9, 9)
    assert next_instant("FREQ=DAILY;COUNT=3", anchor, third, None) is None
    assert next_day("FREQ=WEEKLY;COUNT=2", date(2026, 12, 7), date(2026, 12, 14), None) is None


def test_until_in_utc_includes_an_occurrence_at_that_instant_and_none_after() -> None:
    rule = "FREQ=DAILY;UNTIL=20261209T090000Z"
    assert series(rule, utc(2026, 12, 7, 9), None, 3) == [
        utc(2026, 12, 8, 9),
        utc(2026, 12, 9, 9),
        None,
    ]
    # Compared as instants: 09:00 in Berlin is 08:00Z, before the UNTIL, 10:00 is after.
    assert next_instant(rule, utc(2026, 12, 8, 8), utc(2026, 12, 8, 8), BERLIN) == utc(
        2026, 12, 9, 8
    )
    assert next_instant(rule, utc(2026, 12, 8, 9, 1), utc(2026, 12, 8, 9, 1), None) is None


def test_until_as_a_date_includes_that_whole_local_day() -> None:
    rule = "FREQ=DAILY;UNTIL=20261209"
    # 23:00 in New York on 9 December is 04:00Z on the 10th: still in.
    assert series(rule, utc(2026, 12, 8, 4), NEW_YORK, 3) == [
        utc(2026, 12, 9, 4),
        utc(2026, 12, 10, 4),
        None,
    ]
    assert next_day(rule, date(2026, 12, 7), date(2026, 12, 8), BERLIN) == date(2026, 12, 9)
    assert next_day(rule, date(2026, 12, 7), date(2026, 12, 9), BERLIN) is None


def test_an_all_day_todo_with_a_utc_until_ends_at_the_day_that_starts_after_it() -> None:
    # In Berlin, 10 December starts at 23:00Z on the 9th; 11 December at 23:00Z on the 10th.
    rule = "FREQ=DAILY;UNTIL=20261209T230000Z"
    assert next_day(rule, date(2026, 12, 8), date(2026, 12, 9), BERLIN) == date(2026, 12, 10)
    assert next_day(rule, date(2026, 12, 8), date(2026, 12, 10), BERLIN) is None
    # In UTC, 10 December starts after that instant.
    assert next_day(rule, date(2026, 12, 8), date(2026, 12, 9), None) is None


def test_a_yearly_todo_on_a_leap_day_recurs_only_in_leap_years() -> None:
    assert next_day("FREQ=YEARLY", date(2024, 2, 29), date(2024, 2, 29), BERLIN) == date(
        2028, 2, 29
    )
    leap_day = utc(2096, 2, 29, 9)
    # 2100 is not a leap year.
    assert next_instant("FREQ=YEARLY", leap_day, leap_day, None) == utc(2104, 2, 29, 9)
    # The last day of February, whichever it is.
    rule = "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1"
    assert next_day(rule, date(2027, 2, 28), date(2027, 2, 28), None) == date(2028, 2, 29)
    assert next_day(rule, date(2027, 2, 28), date(2028, 2, 29), None) == date(2029, 2, 28)


def test_an_all_day_todo_moves_by_dates_whatever_the_clocks_do() -> None:
    # Across both Berlin changes, a day is a day (an instant would be 23 or 25 hours on).
    assert next_day("FREQ=DAILY", date(2026, 3, 28), date(2026, 3, 28), BERLIN) == date(2026, 3, 29)
    assert next_day("FREQ=DAILY", date(2026, 10, 24), date(2026, 10, 25), BERLIN) == date(
        2026, 10, 26
    )
    assert next_day("FREQ=MONTHLY;BYDAY=-1FR", date(2026, 12, 7), date(2026, 12, 25), None) == (
        date(2027, 1, 29)
    )


def test_the_next_occurrence_is_strictly_after_the_current_due_on_the_rule() -> None:
    # An anchor off the rule (a Monday, for Wednesdays) is not an occurrence itself.
    monday = utc(2026, 12, 7, 9)
    assert next_instant("FREQ=WEEKLY;BYDAY=WE", monday, monday, None) == utc(2026, 12, 9, 9)
    assert next_instant("FREQ=DAILY;INTERVAL=3", monday, utc(2026, 12, 8, 9), None) == utc(
        2026, 12, 10, 9
    )


def test_a_rule_that_names_no_further_day_ends_the_series() -> None:
    # Every twelfth month from February: never a 30th; searched to a bound, not for ever.
    anchor = utc(2026, 2, 1, 9)
    assert next_instant("FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30", anchor, anchor, None) is None


VALID = [
    "FREQ=DAILY",
    "freq=weekly;byday=mo,we",  # RFC 5545's names are case-insensitive
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TU,WE,TH,FR,SA,SU",
    "FREQ=MONTHLY;BYDAY=2TU,-1FR;BYMONTH=1,6",
    "FREQ=YEARLY;BYDAY=+53MO",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=DAILY;BYDAY=FR;BYMONTHDAY=13",
    "FREQ=MONTHLY;INTERVAL=5;BYMONTH=3",
    "FREQ=DAILY;COUNT=10000",
    "FREQ=DAILY;UNTIL=20261231T235959Z",
    "FREQ=DAILY;UNTIL=20261231",
]

INVALID = [
    "",
    "garbage",
    "FREQ=DAILY;",
    "FREQ=DAILY;INTERVAL",
    "RRULE:FREQ=DAILY",
    "INTERVAL=2",
    *(f"FREQ={freq}" for freq in ("HOURLY", "MINUTELY", "SECONDLY", "FORTNIGHTLY")),
    *(
        f"FREQ=MONTHLY;{part}"
        for part in (
            "BYSETPOS=1",
            "BYYEARDAY=1",
            "BYWEEKNO=1",
            "BYHOUR=9",
            "BYMINUTE=0",
            "BYSECOND=0",
            "WKST=SU",
            "RDATE=20261207",
            "X-NAME=1",
        )
    ),
    "FREQ=DAILY;FREQ=WEEKLY",
    "FREQ=DAILY;INTERVAL=0",
    "FREQ=DAILY;INTERVAL=1001",
    "FREQ=DAILY;INTERVAL=two",
    "FREQ=DAILY;COUNT=0",
    "FREQ=DAILY;COUNT=10001",
    "FREQ=YEARLY;BYMONTH=13",
    "FREQ=YEARLY;BYMONTH=0",
    "FREQ=MONTHLY;BYMONTHDAY=0",
    "FREQ=MONTHLY;BYMONTHDAY=32",
    "FREQ=MONTHLY;BYMONTHDAY=1,,2",
    "FREQ=WEEKLY;BYMONTHDAY=1",
    "FREQ=WEEKLY;BYDAY=XX",
    "FREQ=WEEKLY;BYDAY=1MO",
    "FREQ=DAILY;BYDAY=-1FR",
    "FREQ=MONTHLY;BYDAY=6MO",
    "FREQ=MONTHLY;BYDAY=0MO",
    "FREQ=YEARLY;BYDAY=54MO",
    "FREQ=DAILY;UNTIL=20261231T235959",  # floating local time
    "FREQ=DAILY;UNTIL=20261331",
    "FREQ=DAILY;UNTIL=tomorrow",
    "FREQ=DAILY;COUNT=2;UNTIL=20261231",
    # Rules that can name no day at all: refused rather than searched for.
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
    "FREQ=MONTHLY;BYMONTH=4,6;BYMONTHDAY=31,-31",
    "FREQ=MONTHLY;BYDAY=5MO;BYMONTHDAY=1",
    "FREQ=DAILY;INTERVAL=14;BYDAY=TU",
    "FREQ=MONTHLY;INTERVAL=2;BYMONTH=2,4",
    "FREQ=DAILY;BYDAY=MO;" + "INTERVAL=1;" * 40,
]

recurrence = TypeAdapter(Recurrence)


@pytest.mark.parametrize("rule", VALID)
def test_valid_rules_are_kept_as_written(rule: str) -> None:
    assert recurrence.validate_python(rule) == rule


@pytest.mark.parametrize("rule", INVALID)
def test_every_unsupported_or_malformed_rule_is_refused(rule: str) -> None:
    with pytest.raises(ValidationError):
        recurrence.validate_python(rule)


def test_a_rule_longer_than_the_bound_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(ValidationError, match="at most 200"):
        recurrence.validate_python("FREQ=DAILY;BYMONTHDAY=" + ",".join(["1"] * 100))


def test_a_recurrence_needs_a_due() -> None:
    with pytest.raises(ValueError, match=NEEDS_DUE):
        require_due("FREQ=DAILY", None, None)
    require_due("FREQ=DAILY", utc(2026, 12, 7), None)
    require_due("FREQ=DAILY", None, date(2026, 12, 7))
    require_due(None, None, None)
