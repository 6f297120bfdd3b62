"""Recurring todos over HTTP (API.md v1.3, "Recurrence"): completing one moves its due to the
next occurrence and keeps it open, conditionally on If-Match, reported by the feed; with no
occurrence left it completes; a rule needs a due, and a bad one is a 422 naming it."""

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.changes.helpers import Replica
from tests.conftest import ApiUser
from tests.todos.helpers import (
    assert_precondition_failed,
    assert_validation_error,
    create,
    fetch,
    send,
)

DAILY = {"due_date": "2026-12-07T08:00:00Z", "recurrence": "FREQ=DAILY"}


def put_body(todo: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The todo's writable representation, as a client that read it sends it back."""
    fields = ("title", "description", "completed", "priority", "due_date", "due_day")
    fields += ("time_zone", "remind_at", "recurrence")
    return {name: todo[name] for name in fields} | changes


def test_completing_a_recurring_todo_moves_its_due_and_keeps_it_open(
    client: TestClient, user: ApiUser
) -> None:
    todo = create(client, user, **DAILY)
    assert todo["recurrence"] == "FREQ=DAILY"
    assert todo["last_completed_at"] is None
    etag = fetch(client, user, todo["id"]).headers["ETag"]
    replica = Replica(user)
    replica.sync(client)

    response = send(client, user, "PATCH", todo["id"], {"completed": True}, if_match=etag)

    assert response.status_code == 200, response.text
    moved = response.json()
    assert moved["completed"] is False
    assert moved["completed_at"] is None
    assert moved["due_date"] == "2026-12-08T08:00:00Z"
    assert moved["last_completed_at"] is not None
    assert moved["updated_at"] > todo["updated_at"]
    assert response.headers["ETag"] != etag
    assert fetch(client, user, todo["id"]).json() == moved
    assert [change["item"] for change in replica.news(client)] == [moved]


def test_put_completes_too_and_count_counts_from_the_first_due(
    client: TestClient, user: ApiUser
) -> None:
    todo = create(client, user, due_date="2026-12-07T08:00:00Z", recurrence="FREQ=DAILY;COUNT=3")
    dues = []
    for _ in range(2):
        # The body a client sends back carries the due it read: the series goes on.
        response = send(client, user, "PUT", todo["id"], put_body(todo, completed=True))
        assert response.status_code == 200, response.text
        todo = response.json()
        assert todo["completed"] is False
        dues.append(todo["due_date"])
    assert dues == ["2026-12-08T08:00:00Z", "2026-12-09T08:00:00Z"]

    # The third occurrence was the last: this time it completes as any todo does.
    response = send(client, user, "PUT", todo["id"], put_body(todo, completed=True))
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["completed"] is True
    assert done["completed_at"] is not None
    assert done["due_date"] == "2026-12-09T08:00:00Z"
    # Completed again: a write that changes nothing.
    again = send(client, user, "PATCH", todo["id"], {"completed": True})
    assert again.json() == done


def test_setting_the_due_starts_the_series_again(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, due_date="2026-12-07T08:00:00Z", recurrence="FREQ=DAILY;COUNT=2")
    moved = send(client, user, "PATCH", todo["id"], {"completed": True}).json()
    assert moved["due_date"] == "2026-12-08T08:00:00Z"
    # A new due is a new first occurrence: COUNT=2 has one more after it.
    send(client, user, "PATCH", todo["id"], {"due_date": "2026-12-20T18:00:00Z"})
    moved = send(client, user, "PATCH", todo["id"], {"completed": True}).json()
    assert (moved["completed"], moved["due_date"]) == (False, "2026-12-21T18:00:00Z")
    done = send(client, user, "PATCH", todo["id"], {"completed": True}).json()
    assert done["completed"] is True


def test_a_daily_todo_stays_at_its_local_time_across_a_daylight_saving_change(
    client: TestClient, user: ApiUser
) -> None:
    # 09:00 in Berlin on the day before the clocks go forward (08:00Z), then 09:00 CEST.
    todo = create(
        client,
        user,
        due_date="2026-03-28T08:00:00Z",
        time_zone="Europe/Berlin",
        recurrence="FREQ=DAILY",
    )
    moved = send(client, user, "PATCH", todo["id"], {"completed": True}).json()
    assert moved["due_date"] == "2026-03-29T07:00:00Z"
    assert moved["time_zone"] == "Europe/Berlin"


def test_an_all_day_todo_moves_to_the_next_day_of_its_rule(
    client: TestClient, user: ApiUser
) -> None:
    # The 31st of each month, in New York: April has none.
    rule = "FREQ=MONTHLY;BYMONTHDAY=31"
    todo = create(client, user, due_day="2027-03-31", time_zone="America/New_York", recurrence=rule)
    etag = fetch(client, user, todo["id"]).headers["ETag"]
    response = send(client, user, "PATCH", todo["id"], {"completed": True}, if_match=etag)
    assert response.status_code == 200, response.text
    moved = response.json()
    assert (moved["completed"], moved["due_day"], moved["due_date"]) == (False, "2027-05-31", None)
    assert moved["version"] == todo["version"] + 1
    # Due at the start of that day in New York (EDT, UTC-4): what due_before/after use.
    listed = client.get(
        "/api/v1/todos",
        params={"due_after": "2027-05-31T03:59:59Z", "due_before": "2027-05-31T04:00:01Z"},
        headers=user.headers,
    ).json()["items"]
    assert [item["id"] for item in listed] == [todo["id"]]


def test_a_leap_day_todo_waits_for_the_next_leap_year(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, due_day="2028-02-29", recurrence="FREQ=YEARLY;COUNT=2")
    moved = send(client, user, "PUT", todo["id"], put_body(todo, completed=True)).json()
    assert (moved["completed"], moved["due_day"]) == (False, "2032-02-29")
    done = send(client, user, "PUT", todo["id"], put_body(moved, completed=True)).json()
    assert (done["completed"], done["due_day"]) == (True, "2032-02-29")


def test_until_ends_the_series(client: TestClient, user: ApiUser) -> None:
    rule = "FREQ=WEEKLY;UNTIL=20261215T000000Z"
    todo = create(client, user, due_date="2026-12-07T08:00:00Z", recurrence=rule)
    moved = send(client, user, "PATCH", todo["id"], {"completed": True}).json()
    assert (moved["completed"], moved["due_date"]) == (False, "2026-12-14T08:00:00Z")
    done = send(client, user, "PATCH", todo["id"], {"completed": True}).json()
    assert (done["completed"], done["due_date"]) == (True, "2026-12-14T08:00:00Z")
    assert done["last_completed_at"] is not None


def test_a_stale_if_match_moves_nothing(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, **DAILY)
    etag = fetch(client, user, todo["id"]).headers["ETag"]
    first = send(client, user, "PATCH", todo["id"], {"completed": True}, if_match=etag)
    assert first.status_code == 200, first.text
    # A second client completing the occurrence it saw: 412, not a second move.
    assert_precondition_failed(
        send(client, user, "PATCH", todo["id"], {"completed": True}, if_match=etag)
    )
    assert fetch(client, user, todo["id"]).json() == first.json()


def test_concurrent_completions_with_one_etag_move_the_due_once(
    client: TestClient, user: ApiUser
) -> None:
    todo = create(client, user, **DAILY)
    etag = fetch(client, user, todo["id"]).headers["ETag"]
    writers = 6

    def complete(_: int) -> Any:
        return send(client, user, "PATCH", todo["id"], {"completed": True}, if_match=etag)

    with ThreadPoolExecutor(max_workers=writers) as pool:
        responses = list(pool.map(complete, range(writers)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [412] * (writers - 1), statuses
    assert fetch(client, user, todo["id"]).json()["due_date"] == "2026-12-08T08:00:00Z"


def test_concurrent_completions_without_if_match_each_move_it_on(
    client: TestClient, user: ApiUser
) -> None:
    todo = create(client, user, **DAILY)
    writers = 6

    def complete(_: int) -> Any:
        return send(client, user, "PATCH", todo["id"], {"completed": True})

    with ThreadPoolExecutor(max_workers=writers) as pool:
        responses = list(pool.map(complete, range(writers)))
    assert [response.status_code for response in responses] == [200] * writers
    # Each read the due under the row's lock: six distinct occurrences, none skipped.
    dues = sorted(response.json()["due_date"] for response in responses)
    assert dues == [f"2026-12-{8 + n:02d}T08:00:00Z" for n in range(writers)]


def test_removing_the_rule_makes_it_a_plain_todo(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, **DAILY)
    send(client, user, "PATCH", todo["id"], {"completed": True})
    plain = send(client, user, "PATCH", todo["id"], {"recurrence": None}).json()
    assert (plain["recurrence"], plain["last_completed_at"]) == (None, None)
    done = send(client, user, "PATCH", todo["id"], {"completed": True}).json()
    assert (done["completed"], done["due_date"]) == (True, "2026-12-08T08:00:00Z")


def test_a_todo_completed_before_it_got_a_rule_stays_completed(
    client: TestClient, user: ApiUser
) -> None:
    todo = create(client, user, completed=True, due_date="2026-12-07T08:00:00Z")
    ruled = send(client, user, "PATCH", todo["id"], {"recurrence": "FREQ=DAILY"}).json()
    assert (ruled["completed"], ruled["due_date"]) == (True, "2026-12-07T08:00:00Z")
    reopened = send(client, user, "PATCH", todo["id"], {"completed": False}).json()
    moved = send(client, user, "PATCH", todo["id"], {"completed": True}).json()
    assert reopened["completed"] is False
    assert (moved["completed"], moved["due_date"]) == (False, "2026-12-08T08:00:00Z")


def _names_recurrence(response: Any) -> None:
    errors = assert_validation_error(response)
    assert any(error["loc"][-1] == "recurrence" for error in errors), errors


def test_a_rule_needs_a_due(client: TestClient, user: ApiUser) -> None:
    created = client.post(
        "/api/v1/todos", json={"title": "t", "recurrence": "FREQ=DAILY"}, headers=user.headers
    )
    _names_recurrence(created)
    plain = create(client, user)
    _names_recurrence(send(client, user, "PATCH", plain["id"], {"recurrence": "FREQ=DAILY"}))
    body = {"title": "t", "recurrence": "FREQ=DAILY"}
    _names_recurrence(send(client, user, "PUT", plain["id"], body))
    # Clearing the due of a recurring todo, too, whichever kind it is.
    todo = create(client, user, **DAILY)
    _names_recurrence(send(client, user, "PATCH", todo["id"], {"due_date": None}))
    assert fetch(client, user, todo["id"]).json() == todo
    all_day = create(client, user, due_day="2026-12-07", recurrence="FREQ=DAILY")
    _names_recurrence(send(client, user, "PATCH", all_day["id"], {"due_day": None}))
    # From one kind of due to the other keeps the rule.
    swapped = send(
        client, user, "PATCH", all_day["id"], {"due_day": None, "due_date": DAILY["due_date"]}
    )
    assert swapped.status_code == 200, swapped.text


@pytest.mark.parametrize(
    "rule",
    ["FREQ=HOURLY", "RRULE:FREQ=DAILY", "FREQ=DAILY;BYSETPOS=1", "nonsense", "", 7],
)
def test_a_bad_rule_is_a_422_naming_recurrence(
    client: TestClient, user: ApiUser, rule: object
) -> None:
    created = client.post(
        "/api/v1/todos",
        json={"title": "t", "due_date": "2026-12-07T08:00:00Z", "recurrence": rule},
        headers=user.headers,
    )
    _names_recurrence(created)
    todo = create(client, user, **DAILY)
    _names_recurrence(send(client, user, "PATCH", todo["id"], {"recurrence": rule}))
