"""GET /api/v1/changes over HTTP: the contract's rows on both databases."""

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text, update

from app.changes.models import Change
from app.changes.tokens import ChangeTokens, FeedPosition
from app.config import Settings
from app.database import create_sessionmaker, utcnow
from app.engines import create_db_engine
from app.purge import purge_expired
from tests.changes.helpers import Replica, feed, page, server_state
from tests.conftest import ApiUser, assert_bearer_401
from tests.lists.helpers import create_list, create_todo


def test_without_since_every_list_and_todo_comes(client: TestClient, user: ApiUser) -> None:
    work = create_list(client, user)
    todos = [create_todo(client, user, title=f"t{i}") for i in range(3)]
    todos.append(create_todo(client, user, list_id=work["id"]))
    replica = Replica(user)
    replica.sync(client)
    assert replica.objects == server_state(client, user)
    assert {key[0] for key in replica.objects} == {"list", "todo"}
    assert len(replica.objects) == 2 + len(todos)


def test_after_a_token_only_what_changed_comes_latest_state_once(
    client: TestClient, user: ApiUser
) -> None:
    kept, changed, gone = (
        create_todo(client, user, title=name) for name in ("kept", "changed", "gone")
    )
    replica = Replica(user)
    replica.sync(client)
    url = f"/api/v1/todos/{changed['id']}"
    client.patch(url, json={"title": "first"}, headers=user.headers)
    client.patch(url, json={"title": "second"}, headers=user.headers)
    client.delete(f"/api/v1/todos/{gone['id']}", headers=user.headers)
    seen = replica.news(client)
    assert sorted((c["id"], c["deleted"]) for c in seen) == sorted(
        [(changed["id"], False), (gone["id"], True)]
    )
    (update_,) = [c for c in seen if not c["deleted"]]
    assert update_["type"] == "todo"
    assert update_["item"]["title"] == "second"
    (tombstone,) = [c for c in seen if c["deleted"]]
    assert tombstone["item"] is None
    assert replica.objects == server_state(client, user)
    assert ("todo", kept["id"]) in replica.objects
    assert replica.news(client) == []  # nothing new


def test_pages_walk_every_change_once_in_commit_order(client: TestClient, user: ApiUser) -> None:
    created = [create_todo(client, user, title=f"t{i}") for i in range(7)]
    replica = Replica(user)
    seen = replica.sync(client, limit=3)
    assert replica.pages == 3  # inbox + 7 todos = 8 changes, 3 a page
    ids = [c["id"] for c in seen]
    assert len(ids) == len(set(ids)) == 8
    assert ids[1:] == [t["id"] for t in created]  # in the order they were committed


def test_a_token_from_before_a_list_deletion_reports_its_todos_deleted(
    client: TestClient, user: ApiUser
) -> None:
    work = create_list(client, user)
    inside = [create_todo(client, user, list_id=work["id"], title=f"in{i}") for i in range(3)]
    outside = create_todo(client, user)
    replica = Replica(user)
    replica.sync(client)
    assert client.delete(f"/api/v1/lists/{work['id']}", headers=user.headers).status_code == 204
    seen = replica.news(client)
    assert {(c["type"], c["id"]) for c in seen if c["deleted"]} == {
        ("list", work["id"]),
        *(("todo", t["id"]) for t in inside),
    }
    assert all(c["deleted"] for c in seen)
    assert replica.objects == server_state(client, user)
    assert ("todo", outside["id"]) in replica.objects


def test_moves_and_list_changes_are_changes(client: TestClient, user: ApiUser) -> None:
    work = create_list(client, user)
    a, b = create_todo(client, user), create_todo(client, user)
    replica = Replica(user)
    replica.sync(client)
    client.post(f"/api/v1/todos/{b['id']}/move", json={"after": None}, headers=user.headers)
    client.patch(f"/api/v1/todos/{a['id']}", json={"list_id": work["id"]}, headers=user.headers)
    client.patch(f"/api/v1/lists/{work['id']}", json={"name": "Job"}, headers=user.headers)
    seen = replica.news(client)
    assert {c["id"] for c in seen} == {a["id"], b["id"], work["id"]}
    assert replica.objects == server_state(client, user)


def test_another_users_changes_never_show(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    mine = create_todo(client, user)
    replica = Replica(user)
    replica.sync(client)
    theirs = create_todo(client, other_user)
    create_list(client, other_user)
    client.delete(f"/api/v1/todos/{theirs['id']}", headers=other_user.headers)
    assert replica.news(client) == []
    assert ("todo", mine["id"]) in replica.objects
    assert all(key[1] != theirs["id"] for key in replica.objects)


def test_a_token_is_bound_to_its_user(
    client: TestClient, user: ApiUser, other_user: ApiUser
) -> None:
    token = page(client, user, None)["next_token"]
    response = feed(client, other_user, token)
    assert response.status_code == 422


@pytest.mark.parametrize("since", ["", "garbage", "a.b", "e30.AAAA", "x" * 1025])
def test_a_since_that_is_not_ours_is_422(client: TestClient, user: ApiUser, since: str) -> None:
    response = feed(client, user, since)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list)


def test_a_tampered_token_is_422(client: TestClient, user: ApiUser) -> None:
    token = page(client, user, None)["next_token"]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for index in (0, 12, len(raw) - 1):  # the nonce, the ciphertext, the tag
        flipped = raw.copy()
        flipped[index] ^= 1
        forged = base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip("=")
        assert feed(client, user, forged).status_code == 422
    assert feed(client, user, token[:-2]).status_code == 422


@pytest.mark.parametrize("limit", [0, 1001, -1, "x"])
def test_limit_out_of_range_is_422(client: TestClient, user: ApiUser, limit: Any) -> None:
    assert feed(client, user, None, limit).status_code == 422


def test_limit_bounds_are_accepted(client: TestClient, user: ApiUser) -> None:
    assert page(client, user, None, 1)["has_more"] is False  # just the inbox
    assert page(client, user, None, 1000)["has_more"] is False


def test_a_token_older_than_the_retention_is_410(
    client: TestClient, user: ApiUser, settings: Settings
) -> None:
    tokens = ChangeTokens(settings)  # the app's key: these are tokens it issued
    now = int(utcnow().timestamp())
    old = FeedPosition(since=1, since_at=now - int(timedelta(days=31).total_seconds()))
    response = feed(client, user, tokens.encode(old, uuid.UUID(user.id)))
    assert response.status_code == 410
    assert isinstance(response.json()["detail"], str)
    recent = FeedPosition(since=1, since_at=now - int(timedelta(days=29).total_seconds()))
    assert feed(client, user, tokens.encode(recent, uuid.UUID(user.id))).status_code == 200


def test_needs_a_user_who_may_act(client: TestClient, user: ApiUser) -> None:
    assert_bearer_401(client.get("/api/v1/changes"))


def test_deleting_the_account_leaves_no_changes_and_its_token_is_401(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    work = create_list(client, user)
    create_todo(client, user, list_id=work["id"])
    create_todo(client, user)
    token = page(client, user, None)["next_token"]
    assert _changes_of(db_engine, user.id) == 4
    deleted = client.request(
        "DELETE", "/api/v1/users/me", json={"current_password": user.password}, headers=user.headers
    )
    assert deleted.status_code == 204
    assert _changes_of(db_engine, user.id) == 0
    assert_bearer_401(feed(client, user, token))
    assert_bearer_401(feed(client, user, None))


def _changes_of(engine: Engine, user_id: str) -> int:
    with engine.connect() as connection:
        stmt = select(func.count()).where(Change.owner_id == uuid.UUID(user_id))
        return int(connection.execute(stmt).scalar_one())


def test_old_tombstones_are_purged_and_recent_ones_kept(
    client: TestClient, user: ApiUser, db_engine: Engine, settings: Settings
) -> None:
    old, recent = create_todo(client, user), create_todo(client, user)
    for item in (old, recent):
        client.delete(f"/api/v1/todos/{item['id']}", headers=user.headers)
    with db_engine.begin() as connection:
        connection.execute(
            update(Change)
            .where(Change.object_id == uuid.UUID(old["id"]))
            .values(changed_at=utcnow() - timedelta(days=32))
        )
    assert asyncio.run(_purge(settings)) >= 1  # (and whatever else app.purge finds expired)
    with db_engine.connect() as connection:
        left = connection.execute(select(Change.object_id).where(Change.deleted)).scalars().all()
    assert uuid.UUID(recent["id"]) in left
    assert uuid.UUID(old["id"]) not in left


async def _purge(settings: Settings) -> int:
    engine = create_db_engine(settings)
    try:
        return await purge_expired(create_sessionmaker(engine), settings, utcnow())
    finally:
        await engine.dispose()


def test_changes_rows_are_written_by_the_database_itself(
    client: TestClient, user: ApiUser, db_engine: Engine
) -> None:
    """A writer that knows nothing of the feed (a script, the release before) is recorded."""
    item = create_todo(client, user)
    replica = Replica(user)
    replica.sync(client)
    with db_engine.begin() as connection:
        connection.execute(
            text("UPDATE todos SET title = 'by hand', version = version + 1 WHERE id = :id"),
            {"id": uuid.UUID(item["id"]).hex if db_engine.dialect.name == "sqlite" else item["id"]},
        )
    (change,) = replica.news(client)
    assert change["item"]["title"] == "by hand"


BIGINT_MAX = 2**63 - 1


@pytest.mark.parametrize(
    "position",
    [
        FeedPosition(since=10**30, since_at=0),
        FeedPosition(since=BIGINT_MAX + 1, since_at=0),
        FeedPosition(since=1, since_at=10**30),
        FeedPosition(1, 0, (10**30, uuid.UUID(int=1)), mark=1, mark_at=0),
        FeedPosition(1, 0, (1, uuid.UUID(int=1)), mark=10**30, mark_at=10**30),
    ],
)
def test_a_token_of_ours_with_a_huge_value_is_422(
    client: TestClient, user: ApiUser, settings: Settings, position: FeedPosition
) -> None:
    # Signed (now encrypted) with the app's key, but no server ever issued it: a number past
    # PostgreSQL's bigint reached the driver and was a 500.
    now = int(utcnow().timestamp())
    if position.since_at == 0:
        position = FeedPosition(position.since, now, position.after, position.mark, now)
    token = ChangeTokens(settings).encode(position, uuid.UUID(user.id))
    response = feed(client, user, token)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "since"]


def test_a_token_with_a_lone_surrogate_is_422(
    client: TestClient, user: ApiUser, settings: Settings
) -> None:
    now = int(utcnow().timestamp())
    fields = {"s": 1, "t": now, "a": [1, "\ud800" * 32], "m": 1, "mt": now}
    token = legacy_token(settings, fields, user.id)
    assert feed(client, user, token).status_code == 422


def test_a_token_reveals_no_counter(client: TestClient, user: ApiUser, settings: Settings) -> None:
    create_todo(client, user)
    token = page(client, user, None)["next_token"]
    position = ChangeTokens(settings).decode(token, uuid.UUID(user.id))
    assert position.since > 0
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    # The counter as the signed tokens carried it (JSON `"s":N`): a lone digit would match random
    # ciphertext bytes by chance (one in seven on SQLite, whose counter is 1 digit here).
    for written in (f":{position.since},", f": {position.since},", f":{position.since}}}"):
        assert written.encode() not in raw
    assert b'"s"' not in raw
    # Encrypted with a fresh nonce each time: the same position never makes the same token.
    again = page(client, user, None)["next_token"]
    assert again != token
    assert feed(client, user, again).status_code == 200


def test_a_token_encrypted_for_another_user_is_422(
    client: TestClient, user: ApiUser, other_user: ApiUser, settings: Settings
) -> None:
    token = page(client, user, None)["next_token"]
    tampered = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    assert feed(client, user, tampered).status_code == 422
    assert feed(client, other_user, token).status_code == 422


def legacy_token(settings: Settings, fields: dict[str, object], user_id: str) -> str:
    """A token as the previous release wrote it: base64url JSON, a dot, an HMAC-SHA256."""
    key = hashlib.sha256(b"todo-api change feed\0" + settings.signing_key().encode()).digest()
    body = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")
    mac = hmac.new(key, uuid.UUID(user_id).bytes + body.encode(), hashlib.sha256).digest()
    return f"{body}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def test_a_token_of_the_previous_release_is_still_followed(
    client: TestClient, user: ApiUser, settings: Settings
) -> None:
    # A rolling deploy: clients hold tokens the previous release issued, and must not all
    # start over. Once the replica hands out its own, the feed goes on from there.
    replica = Replica(user)
    replica.sync(client)
    current = ChangeTokens(settings).decode(replica.token or "", uuid.UUID(user.id))
    fields = {"s": current.since, "t": current.since_at}
    replica.token = legacy_token(settings, fields, user.id)
    added = create_todo(client, user, title="after the upgrade")
    seen = replica.news(client)
    assert [c["id"] for c in seen] == [added["id"]]
    assert "." not in (replica.token or "")
    _, signature = legacy_token(settings, fields, user.id).split(".")
    forged, _ = legacy_token(settings, {**fields, "s": 0}, user.id).split(".")
    assert feed(client, user, f"{forged}.{signature}").status_code == 422
