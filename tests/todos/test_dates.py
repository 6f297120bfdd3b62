"""All-day dues, time zones and reminders (issue 27, API.md v1.3): stored and returned, the
422s, and the all-day rule in the filters, sort=due_date and the stats' overdue, across zones.
Pacific/Kiritimati is UTC+14 and Pacific/Pago_Pago UTC-11: one day starts 25 hours apart."""

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.database import UTCDateTime
from app.models import Base
from app.todos.dates import day_instants
from app.todos.listing_repository import list_statement
from tests.conftest import ApiUser
from tests.todos.helpers import assert_validation_error, create, list_todos, send

EAST, WEST = "Pacific/Kiritimati", "Pacific/Pago_Pago"
DAY = "2031-05-06"


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_each_field_is_stored_and_returned(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, due_day=DAY, time_zone=EAST, remind_at="2031-05-05T20:00:00+02:00")
    assert (todo["due_day"], todo["time_zone"], todo["due_date"]) == (DAY, EAST, None)
    assert _instant(todo["remind_at"]) == datetime(2031, 5, 5, 18, tzinfo=UTC)
    got = client.get(f"/api/v1/todos/{todo['id']}", headers=user.headers).json()
    assert got == todo

    patched = send(client, user, "PATCH", todo["id"], {"time_zone": None, "remind_at": None})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["time_zone"], patched.json()["remind_at"]) == (None, None)
    assert patched.json()["due_day"] == DAY

    # PUT: an omitted field resets, so a full body may swap the kind of due.
    put = send(client, user, "PUT", todo["id"], {"title": "t", "due_date": "2031-05-06T09:00Z"})
    assert put.status_code == 200, put.text
    assert (put.json()["due_day"], put.json()["time_zone"]) == (None, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("due_day", "2026-02-30"),
        ("due_day", "2026-12-11T00:00:00Z"),
        ("due_day", 20261211),
        ("due_day", "0001-01-01"),
        ("time_zone", "Mars/Olympus_Mons"),
        ("time_zone", "localtime"),
        ("time_zone", "../../etc/passwd"),
        ("time_zone", "europe/berlin"),
        ("time_zone", ""),
        ("remind_at", "tomorrow"),
    ],
)
def test_invalid_values_are_422(
    client: TestClient, user: ApiUser, field: str, value: object
) -> None:
    response = client.post("/api/v1/todos", json={"title": "t", field: value}, headers=user.headers)
    errors = assert_validation_error(response)
    assert errors[0]["loc"][:2] == ["body", field]


def test_both_dues_are_422_on_create_put_and_patch(client: TestClient, user: ApiUser) -> None:
    both = {"title": "t", "due_day": DAY, "due_date": "2031-05-06T09:00:00Z"}
    assert_validation_error(client.post("/api/v1/todos", json=both, headers=user.headers))
    todo = create(client, user, due_date="2031-05-06T09:00:00Z")
    assert_validation_error(send(client, user, "PUT", todo["id"], both))
    assert_validation_error(send(client, user, "PATCH", todo["id"], both))
    # One while the other is stored: 422, and nothing changes.
    errors = assert_validation_error(send(client, user, "PATCH", todo["id"], {"due_day": DAY}))
    assert errors[0]["loc"] == ["body", "due_day"]
    all_day = create(client, user, due_day=DAY)
    body = {"due_date": "2031-05-06T09:00:00Z"}
    errors = assert_validation_error(send(client, user, "PATCH", all_day["id"], body))
    assert errors[0]["loc"] == ["body", "due_date"]
    assert client.get(f"/api/v1/todos/{all_day['id']}", headers=user.headers).json() == all_day

    # With the other set to null in the same body, it is a switch.
    switched = send(client, user, "PATCH", todo["id"], {"due_day": DAY, "due_date": None})
    assert switched.status_code == 200, switched.text
    assert (switched.json()["due_day"], switched.json()["due_date"]) == (DAY, None)


def test_the_all_day_due_filters_and_sorts_in_its_zone(client: TestClient, user: ApiUser) -> None:
    # DAY starts at 2031-05-05T10:00Z in the east, 2031-05-06T00:00Z in UTC (no zone), and
    # 2031-05-06T11:00Z in the west; an instant at 05:00Z falls between.
    east = create(client, user, due_day=DAY, time_zone=EAST)["id"]
    utc = create(client, user, due_day=DAY)["id"]
    instant = create(client, user, due_date="2031-05-06T05:00:00Z")["id"]
    west = create(client, user, due_day=DAY, time_zone=WEST)["id"]
    undated = create(client, user)["id"]

    ascending = list_todos(client, user, sort="due_date", limit=100)["items"]
    assert _ids(ascending) == [east, utc, instant, west, undated]
    descending = list_todos(client, user, sort="-due_date", limit=100)["items"]
    assert _ids(descending) == [west, instant, utc, east, undated]
    # A page at a time, the cursor carries the due of an all-day todo too.
    walked, cursor = [], None
    while True:
        params: dict[str, Any] = {"sort": "due_date", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = list_todos(client, user, **params)
        walked += _ids(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert walked == [east, utc, instant, west, undated]

    before = list_todos(client, user, due_before="2031-05-06T00:00:00Z", limit=100)["items"]
    assert set(_ids(before)) == {east}
    after = list_todos(client, user, due_after="2031-05-06T00:00:00Z", limit=100)["items"]
    assert set(_ids(after)) == {instant, west}

    # Moving the zone moves the due: the instants follow a PATCH of time_zone alone.
    assert send(client, user, "PATCH", west, {"time_zone": EAST}).status_code == 200
    before = list_todos(client, user, due_before="2031-05-06T00:00:00Z", limit=100)["items"]
    assert set(_ids(before)) == {east, west}
    # ... and of due_day alone, in the stored zone: 2031-05-07 starts at 05-06T10:00Z there.
    assert send(client, user, "PATCH", west, {"due_day": "2031-05-07"}).status_code == 200
    before = list_todos(client, user, due_before="2031-05-06T10:00:00Z", limit=100)["items"]
    assert set(_ids(before)) == {east, utc, instant}
    before = list_todos(client, user, due_before="2031-05-06T10:00:01Z", limit=100)["items"]
    assert set(_ids(before)) == {east, utc, instant, west}


def _stats(client: TestClient, user: ApiUser) -> dict[str, int]:
    response = client.get("/api/v1/todos/stats", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, int] = response.json()
    return body


def test_overdue_once_the_day_is_over_in_its_zone(client: TestClient, user: ApiUser) -> None:
    # A day ends 14 hours before its end in UTC in the east, 11 hours after it in the west.
    # Pick the UTC day whose end is between those for now: over in the east, not in the west.
    now = datetime.now(UTC)
    day = now.date() - timedelta(days=1) if now.hour < 10 else now.date()
    create(client, user, due_day=day.isoformat(), time_zone=EAST)
    create(client, user, due_day=day.isoformat(), time_zone=WEST)
    assert _stats(client, user)["overdue"] == 1
    # The day before is over everywhere; a completed todo is never overdue.
    earlier = (day - timedelta(days=1)).isoformat()
    create(client, user, due_day=earlier, time_zone=WEST)
    create(client, user, due_day=earlier, time_zone=WEST, completed=True)
    # Today's date in the east has not even begun in the west.
    east_today = (now + timedelta(hours=14)).date().isoformat()
    create(client, user, due_day=east_today, time_zone=WEST)
    assert _stats(client, user) == {"total": 5, "completed": 1, "open": 4, "overdue": 2}


def test_a_previous_release_write_is_due_as_it_says(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    """The release before writes due_date and knows nothing of the day's instants: its due
    is what filters and sorts see (coalesce(due_day_starts_at, due_date); ADR 0401)."""
    todo = create(client, user)
    todos = sa.table("todos", sa.column("id", sa.Uuid), sa.column("due_date", UTCDateTime))
    with db_engine.begin() as connection:
        connection.execute(
            todos.update()
            .where(todos.c.id == uuid.UUID(todo["id"]))
            .values(due_date=datetime(2020, 1, 1, tzinfo=UTC))
        )
    before = list_todos(client, user, due_before="2020-01-02T00:00:00Z")["items"]
    assert _ids(before) == [todo["id"]]
    assert _stats(client, user)["overdue"] == 1


def test_version_is_the_etag(client: TestClient, user: ApiUser) -> None:
    created = client.post("/api/v1/todos", json={"title": "t"}, headers=user.headers)
    assert created.headers["etag"] == f'"{created.json()["version"]}"'
    patched = send(client, user, "PATCH", created.json()["id"], {"title": "u"})
    assert patched.json()["version"] == created.json()["version"] + 1
    assert patched.headers["etag"] == f'"{patched.json()["version"]}"'
    listed = client.post("/api/v1/lists", json={"name": "L"}, headers=user.headers)
    assert listed.headers["etag"] == f'"{listed.json()["version"]}"'
    url = f"/api/v1/lists/{listed.json()['id']}"
    renamed = client.patch(url, json={"name": "M"}, headers=user.headers)
    assert renamed.headers["etag"] == f'"{renamed.json()["version"]}"'
    assert client.get(url, headers=user.headers).json()["version"] == renamed.json()["version"]


@pytest.mark.parametrize("header", ["1", "null", "garbage", '"1', "W/1", '"1", 2'])
def test_an_if_match_that_is_no_entity_tag_is_400(
    client: TestClient, user: ApiUser, header: str
) -> None:
    todo = create(client, user)
    for method, body in (("PATCH", {"title": "u"}), ("PUT", {"title": "u"}), ("DELETE", None)):
        response = send(client, user, method, todo["id"], body, if_match=header)
        assert response.status_code == 400, response.text
        assert "entity-tag" in response.json()["detail"]
    listed = client.post("/api/v1/lists", json={"name": "L"}, headers=user.headers).json()
    headers = {**user.headers, "If-Match": header}
    renamed = client.patch(f"/api/v1/lists/{listed['id']}", json={"name": "M"}, headers=headers)
    assert renamed.status_code == 400, renamed.text


def test_star_and_quoted_tags_keep_their_meaning(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user)
    assert send(client, user, "PATCH", todo["id"], {"title": "a"}, if_match="*").status_code == 200
    weak = send(client, user, "PATCH", todo["id"], {"title": "b"}, if_match='W/"2"')
    assert weak.status_code == 412  # strong comparison: a weak tag matches nothing
    strong = send(client, user, "PATCH", todo["id"], {"title": "b"}, if_match='"9", "2"')
    assert strong.status_code == 200, strong.text


def test_feed_items_carry_version_and_the_date_fields(client: TestClient, user: ApiUser) -> None:
    todo = create(client, user, due_day=DAY, time_zone=EAST, remind_at="2031-05-05T08:00:00Z")
    response = client.get("/api/v1/changes", headers=user.headers)
    assert response.status_code == 200, response.text
    items = {change["id"]: change["item"] for change in response.json()["changes"]}
    assert items[todo["id"]] == todo
    default_list = items[todo["list_id"]]
    got = client.get(f"/api/v1/lists/{todo['list_id']}", headers=user.headers)
    assert got.headers["etag"] == f'"{default_list["version"]}"'


def test_a_day_at_the_ends_of_the_calendar(client: TestClient, user: ApiUser) -> None:
    first = create(client, user, due_day="0001-01-02", time_zone=EAST)
    last = create(client, user, due_day="9999-12-30", time_zone=WEST)
    items = list_todos(client, user, sort="due_date", limit=100)["items"]
    assert _ids(items) == [first["id"], last["id"]]
    assert date.fromisoformat(last["due_day"]) == date(9999, 12, 30)


@pytest.mark.parametrize("sort", ["due_date", "-due_date"])
@pytest.mark.parametrize("filters", [frozenset(), frozenset({"due_before"})])
def test_the_due_sort_and_filters_use_the_due_index(sort: str, filters: frozenset[str]) -> None:
    # SQLite's plan (PostgreSQL's depends on its statistics): the index on the very expression
    # serves the filter and the order, with no sorting step.
    engine = sa.create_engine("sqlite://")
    try:
        Base.metadata.create_all(engine)
        statement = str(list_statement(sort, False, filters).compile(engine))
        with engine.connect() as connection:
            plan = connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {statement}", (None,) * statement.count("?")
            ).all()
    finally:
        engine.dispose()
    steps = [row[-1] for row in plan]
    assert any("USING INDEX ix_todos_owner_due_at" in step for step in steps), steps
    assert not any("TEMP B-TREE" in step for step in steps), steps


@pytest.mark.parametrize(
    ("day", "zone", "starts", "hours"),
    [
        # Daylight saving starts and ends: a day of 23 hours, and one of 25.
        (date(2026, 3, 29), "Europe/Berlin", datetime(2026, 3, 28, 23, tzinfo=UTC), 23),
        (date(2026, 10, 25), "Europe/Berlin", datetime(2026, 10, 24, 22, tzinfo=UTC), 25),
        # Santiago skips midnight: the day starts at its first wall-clock time, 01:00.
        (date(2026, 9, 6), "America/Santiago", datetime(2026, 9, 6, 4, tzinfo=UTC), 23),
        (date(2026, 4, 4), "America/Santiago", datetime(2026, 4, 4, 3, tzinfo=UTC), 25),
        (date(2026, 4, 4), None, datetime(2026, 4, 4, tzinfo=UTC), 24),
    ],
)
def test_a_day_starts_and_ends_on_its_zone_s_wall_clock(
    day: date, zone: str | None, starts: datetime, hours: int
) -> None:
    instants = day_instants(day, zone)
    assert instants["due_day_starts_at"] == starts
    assert instants["due_day_ends_at"] - starts == timedelta(hours=hours)
