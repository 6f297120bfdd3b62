"""GET /changes?since=…&wait=N: a poll that waits for the user's next change, holding no
database connection meanwhile, on both databases (the workers and PgBouncer:
tests/runtime/test_changes_wait.py)."""

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.config import Settings
from app.main import create_app
from tests.changes.helpers import (
    FEED,
    Replica,
    page,
    synced,
    wait_feed,
    wait_until,
    waiting_count,
)
from tests.conftest import ApiUser, make_user
from tests.lists.helpers import create_todo


def test_a_waiting_poll_answers_with_the_change_another_request_commits(
    client: TestClient, user: ApiUser
) -> None:
    token = synced(client, user)
    with ThreadPoolExecutor(max_workers=1) as pool:
        polled = pool.submit(wait_feed, client, user, token, 60)
        wait_until(lambda: waiting_count(client) == 1)
        todo = create_todo(client, user, title="while you waited")
        response = polled.result(timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(c["id"], c["item"]["title"]) for c in body["changes"]] == [
        (todo["id"], "while you waited")
    ]
    assert waiting_count(client) == 0
    # Its token goes on from there (PostgreSQL may repeat the change: tests/changes/helpers).
    again = page(client, user, body["next_token"])["changes"]
    assert [c["id"] for c in again] in ([], [todo["id"]])


def test_nothing_changes_an_empty_page_after_the_wait_with_a_token_as_good_as_since(
    client: TestClient, user: ApiUser
) -> None:
    token = synced(client, user)
    response = wait_feed(client, user, token, 1)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["changes"] == []
    assert body["has_more"] is False
    todo = create_todo(client, user)
    assert [c["id"] for c in page(client, user, body["next_token"])["changes"]] == [todo["id"]]


def test_a_change_already_there_answers_at_once(client: TestClient, user: ApiUser) -> None:
    token = synced(client, user)
    todo = create_todo(client, user)
    body = wait_feed(client, user, token, 60).json()
    assert [c["id"] for c in body["changes"]] == [todo["id"]]


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"wait": 5}, "wait without since"),
        ({"wait": 0}, "wait without since"),
        ({"wait": 61, "since": "x"}, "over 60"),
        ({"wait": -1, "since": "x"}, "negative"),
        ({"wait": "soon", "since": "x"}, "not a number"),
    ],
)
def test_wait_without_since_or_out_of_range_is_422(
    client: TestClient, user: ApiUser, params: dict[str, Any], why: str
) -> None:
    if "since" in params:
        params["since"] = synced(client, user)
    response = client.get(FEED, params=params, headers=user.headers)
    assert response.status_code == 422, why


def test_another_users_change_does_not_answer_a_waiting_poll(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    token = synced(client, user)
    with ThreadPoolExecutor(max_workers=1) as pool:
        polled = pool.submit(wait_feed, client, user, token, 60)
        wait_until(lambda: waiting_count(client) == 1)
        create_todo(client, other_user, title="not yours")
        create_todo(client, other_user, title="nor this")
        mine = create_todo(client, user, title="yours")
        body = polled.result(timeout=60).json()
    assert [c["id"] for c in body["changes"]] == [mine["id"]]
    # And a wait that nothing of the user's ends comes back empty.
    other = create_todo(client, other_user)
    quiet = wait_feed(client, user, body["next_token"], 1).json()
    assert quiet["changes"] == []
    assert other["id"] not in str(quiet)


@pytest.fixture
def small_pool(settings: Settings, client: TestClient) -> Iterator[TestClient]:
    """The app with 2 pooled connections (PostgreSQL; SQLite's pool: 5 and 10 more), which
    gives up on a free one after 2 seconds (a 503)."""
    few = settings.model_copy(update={"db_pool_size": 2, "db_pool_timeout": 2})
    with TestClient(create_app(few)) as small:
        yield small


WAITERS = 24  # more than either backend's pool can hold at once


def test_waiting_polls_hold_no_connection(small_pool: TestClient) -> None:
    user = make_user(small_pool)
    token = synced(small_pool, user)
    with ThreadPoolExecutor(max_workers=WAITERS) as pool:
        polls: list[Future[Any]] = [
            pool.submit(wait_feed, small_pool, user, token, 60) for _ in range(WAITERS)
        ]
        wait_until(lambda: waiting_count(small_pool) == WAITERS)
        # Everything else still gets a connection while they all wait.
        for _ in range(5):
            assert small_pool.get("/api/v1/todos", headers=user.headers).status_code == 200
        todo = create_todo(small_pool, user)
        answers = [poll.result(timeout=60) for poll in polls]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert [c["id"] for c in answer.json()["changes"]] == [todo["id"]]


def test_stopping_answers_the_waiting_polls_at_once(settings: Settings, client: TestClient) -> None:
    """The lifespan's end (and the server's shutdown, app.server) wakes every waiter with
    its empty page, instead of leaving them to the graceful timeout."""
    app = create_app(settings)
    with ThreadPoolExecutor(max_workers=1) as pool, TestClient(app) as stopping:
        user = make_user(stopping)
        token = synced(stopping, user)
        polled = pool.submit(wait_feed, stopping, user, token, 60)
        wait_until(lambda: waiting_count(stopping) == 1)
        # What app.server's shutdown calls (app.stopping), in the app's event loop.
        assert stopping.portal is not None
        stopping.portal.call(app.state.change_waiters.stop)
        response = polled.result(timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["changes"] == []


def test_behind_an_open_transaction_repeats_do_not_answer_a_waiting_poll(
    client: TestClient, user: ApiUser, db_engine: Engine, backend: str
) -> None:
    """PostgreSQL repeats changes at or above a token's watermark while a transaction that
    began before them stays open (app.changes.service): the poll must wait all the same,
    and answer with the next real change. (SQLite never repeats: the same poll, trivially.)"""
    with db_engine.connect() as holder:
        if backend == "postgres":  # an open transaction with an id: the watermark stays
            holder.execute(text("SELECT pg_current_xact_id()"))
        first = create_todo(client, user, title="before")
        replica = Replica(user)
        replica.sync(client)
        # On PostgreSQL the token's pass repeats `first` for as long as `holder` is open.
        assert replica.token is not None
        repeated = [c["id"] for c in page(client, user, replica.token)["changes"]]
        assert (first["id"] in repeated) == (backend == "postgres")
        with ThreadPoolExecutor(max_workers=1) as pool:
            polled = pool.submit(wait_feed, client, user, replica.token, 60)
            wait_until(lambda: waiting_count(client) == 1 or polled.done())
            assert not polled.done(), polled.result().text
            second = create_todo(client, user, title="after")
            body = polled.result(timeout=60).json()
        assert second["id"] in [c["id"] for c in body["changes"]]
        # Nothing but repeats after its token, and a wait that runs out: an empty page.
        quiet = wait_feed(client, user, body["next_token"], 1).json()
        assert quiet["changes"] == []
        assert quiet["has_more"] is False
        holder.rollback()
