"""Recurring todos' writes (issue 27; API.md v1.3, "Recurrence"): what a create or a write
stores besides the fields the client sent. The rule's arithmetic is app.todos.recurrence.

- The series' anchor (DTSTART; COUNT counts from it) is the due when the client sets the
  rule or the due (or the zone they are read in); completing moves the due, not the anchor.
- Completing an open recurring todo does not complete it: its due moves to the rule's next
  occurrence strictly after it, and last_completed_at is set. With no occurrence left it
  completes as any todo does (last_completed_at set too).
- Removing the rule clears the anchor and last_completed_at.

The anchor is an instant: the due_date, or for an all-day todo the start of its due_day in
its time_zone (whose local date is that day). A write that may do any of this reads the
stored fields under the row's lock and writes in the same transaction
(app.todos.stored_writes), so two completions in a race move the due twice, never twice to
the same occurrence, and If-Match still decides which write wins.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.errors import InvalidInput
from app.todos.dates import day_instants
from app.todos.recurrence import NEEDS_DUE, next_day, next_instant

# A write that sets one of these starts the series again (moves the anchor).
SERIES_FIELDS = ("recurrence", "due_date", "due_day", "time_zone")
# What settle reads of the stored todo.
STORED = ("completed", "recurrence_anchor", "last_completed_at", *SERIES_FIELDS)


def involved(values: Mapping[str, Any]) -> bool:
    """Whether a write may need settle: it completes, or it sets the rule or the due."""
    return values.get("completed") is True or any(name in values for name in SERIES_FIELDS)


def on_create(values: dict[str, Any]) -> None:
    """A new todo's anchor: its due, if it recurs. Created completed, it is simply completed."""
    _require_due(values)
    values["recurrence_anchor"] = _due(values) if values["recurrence"] else None
    values["last_completed_at"] = None


def settle(stored: Mapping[str, Any], values: dict[str, Any], now: datetime) -> None:
    """Completes `values`, a write to the todo stored as `stored` (STORED, read under its
    lock): the anchor, and for a completion of a recurring todo the moved due instead."""
    merged = {**stored, **values}
    if merged["recurrence"] is None:
        if stored["recurrence"] is not None:
            values.update(recurrence_anchor=None, last_completed_at=None)
        return
    _require_due(merged)
    anchor = stored["recurrence_anchor"]
    if anchor is None or any(merged[name] != stored[name] for name in SERIES_FIELDS):
        anchor = values["recurrence_anchor"] = _due(merged)
    if values.get("completed") is not True or stored["completed"]:
        return
    values["last_completed_at"] = now
    rule, zone = merged["recurrence"], merged["time_zone"]
    if merged["due_day"] is not None:
        first = anchor.astimezone(ZoneInfo(zone or "UTC")).date()
        moved = {"due_day": next_day(rule, first, merged["due_day"], zone)}
    else:
        moved = {"due_date": next_instant(rule, anchor, merged["due_date"], zone)}
    if None not in moved.values():
        del values["completed"]  # it stays open
        values.update(moved)


def _due(todo: Mapping[str, Any]) -> datetime:
    """When the todo is due, as an instant (it has a due: _require_due)."""
    if todo["due_date"] is not None:
        due: datetime = todo["due_date"]
        return due
    starts: datetime = day_instants(todo["due_day"], todo["time_zone"])["due_day_starts_at"]
    return starts


def _require_due(todo: Mapping[str, Any]) -> None:
    if todo["recurrence"] is not None and todo["due_date"] is None and todo["due_day"] is None:
        raise InvalidInput(("body", "recurrence"), NEEDS_DUE)
