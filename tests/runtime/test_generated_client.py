"""A judge we did not write: a typed client generated from the live /openapi.json.

The real server (gunicorn, as start.sh runs it) serves the schema; openapi-python-client turns
it into a package (in tmp_path, never in the repo) and must print no warning about it; then the
whole flow a client developer writes goes through the generated code only: its models, its
operation functions (named after the operations), its parsed responses.
"""

import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import PASSWORD
from tests.runtime.server import Server, app_env, gunicorn


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path = tmp_path_factory.mktemp("served")
    env = app_env(f"sqlite:///{tmp_path / 'todo.db'}", tmp_path)
    with gunicorn(env, tmp_path, workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def schema(server: Server) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    return document


@pytest.fixture(scope="module")
def generated(
    server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The generated package's name, and what the generator printed."""
    root = tmp_path_factory.mktemp("client")
    name = f"todo_client_{uuid.uuid4().hex[:8]}"
    bin_dir = Path(sys.executable).parent
    run = subprocess.run(  # noqa: S603 - fixed arguments
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--url",
            f"{server.base_url}/openapi.json",
            "--output-path",
            str(root / name),
            "--meta",
            "none",
        ],
        # Its post-generation hooks run ruff, which lives beside it.
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    sys.path.insert(0, str(root))
    try:
        yield name, output
    finally:
        sys.path.remove(str(root))
        for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[module]


def load(package: tuple[str, str], module: str) -> ModuleType:
    return importlib.import_module(f"{package[0]}.{module}")


def test_the_generator_has_nothing_to_say_about_the_schema(generated: tuple[str, str]) -> None:
    output = generated[1]
    assert "warning" not in output.lower(), output
    assert "error" not in output.lower(), output


def test_the_whole_flow_through_generated_code(
    server: Server, schema: dict[str, Any], generated: tuple[str, str]
) -> None:
    with ExitStack() as stack:
        _flow(stack, server, schema, generated)


def _flow(
    stack: ExitStack, server: Server, schema: dict[str, Any], generated: tuple[str, str]
) -> None:
    """One story, told in order."""
    client_module = load(generated, "client")
    models = load(generated, "models")
    auth = {op: load(generated, f"api.auth.{op}") for op in ("register", "login", "refresh")}
    auth["logout"] = load(generated, "api.auth.logout")
    todos = {
        op: load(generated, f"api.todos.{op}")
        for op in (
            "create_todo",
            "read_todo",
            "update_todo",
            "list_todos",
            "todo_stats",
            "delete_todo",
        )
    }
    # The generated clients hold connections: the stack closes them at the end.
    anonymous = stack.enter_context(
        client_module.Client(base_url=server.base_url, raise_on_unexpected_status=True)
    )
    email = f"gen-{uuid.uuid4().hex[:8]}@example.com"

    # Sign up and log in with the password form.
    user = auth["register"].sync(
        client=anonymous, body=models.UserRegister(email=email, password=PASSWORD)
    )
    assert isinstance(user, models.UserRead)
    assert user.email == email
    pair = auth["login"].sync(
        client=anonymous, body=models.LoginForm(username=email, password=PASSWORD)
    )
    assert isinstance(pair, models.LoginTokens)
    # The device token goes back with the next login (API.md v1.2) and is replaced.
    again = auth["login"].sync(
        client=anonymous,
        body=models.LoginForm(username=email, password=PASSWORD, device_token=pair.device_token),
    )
    assert isinstance(again, models.LoginTokens)
    assert again.device_token != pair.device_token
    client = stack.enter_context(
        client_module.AuthenticatedClient(
            base_url=server.base_url, token=pair.access_token, raise_on_unexpected_status=True
        )
    )

    # Create; read it back with its ETag, a header the schema declares on that response.
    created = todos["create_todo"].sync_detailed(
        client=client,
        body=models.TodoCreate(title="Buy milk", priority=models.PriorityName.HIGH),
    )
    assert created.status_code == 201
    assert created.parsed.title == "Buy milk"
    assert created.headers["Location"] == f"/api/v1/todos/{created.parsed.id}"
    todo_id = created.parsed.id
    read_200 = schema["paths"]["/api/v1/todos/{todo_id}"]["get"]["responses"]["200"]
    assert "ETag" in read_200["headers"]
    read = todos["read_todo"].sync_detailed(todo_id, client=client)
    assert read.status_code == 200
    assert isinstance(read.parsed, models.TodoRead)
    etag = read.headers["ETag"]
    assert etag == created.headers["ETag"]

    # PATCH with If-Match; the old tag is then stale: 412.
    patched = todos["update_todo"].sync_detailed(
        todo_id, client=client, body=models.TodoUpdate(completed=True), if_match=etag
    )
    assert patched.status_code == 200
    assert patched.parsed.completed is True
    assert patched.parsed.completed_at is not None
    new_etag = patched.headers["ETag"]
    assert new_etag != etag
    stale = todos["update_todo"].sync_detailed(
        todo_id, client=client, body=models.TodoUpdate(title="Nope"), if_match=etag
    )
    assert stale.status_code == 412
    assert isinstance(stale.parsed, models.ErrorBody)

    # If-None-Match with the current tag: 304, nothing to parse.
    unchanged = todos["read_todo"].sync_detailed(todo_id, client=client, if_none_match=new_etag)
    assert unchanged.status_code == 304
    assert unchanged.parsed is None
    assert unchanged.headers["ETag"] == new_etag

    # Walk a list with next_cursor, filter, stats.
    for number in range(4):
        todos["create_todo"].sync(client=client, body=models.TodoCreate(title=f"todo {number}"))
    seen: list[Any] = []
    cursor: Any = models.TodoPage  # anything but None, to start
    pages = 0
    kwargs: dict[str, Any] = {}
    while cursor is not None:
        page = todos["list_todos"].sync(
            client=client, limit=2, sort=models.TodoSort.TITLE_ASC, **kwargs
        )
        assert isinstance(page, models.TodoPage)
        seen.extend(item.id for item in page.items)
        cursor = page.next_cursor
        kwargs = {"cursor": cursor}
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    done = todos["list_todos"].sync(client=client, completed=True)
    assert [item.id for item in done.items] == [todo_id]
    high = todos["list_todos"].sync(client=client, priority=models.PriorityName.HIGH)
    assert [item.id for item in high.items] == [todo_id]
    stats = todos["todo_stats"].sync(client=client)
    assert stats.to_dict() == {"total": 5, "completed": 1, "open": 4, "overdue": 0}

    # The change feed, read as a sync client reads it: a change narrowed by its type.
    feed = load(generated, "api.changes.list_changes")
    lists = {op: load(generated, f"api.lists.{op}") for op in ("create_list", "rename_list")}
    copy: dict[tuple[str, Any], Any] = {}
    token = _sync(feed, models, client, copy, None, limit=3)  # two answers of 3
    assert {kind for kind, _ in copy} == {"list", "todo"}
    assert len([key for key in copy if key[0] == "todo"]) == 5
    # A list whose latest change comes after its todo's: still first in the answer.
    errands = lists["create_list"].sync(client=client, body=models.ListCreate(name="Errands"))
    inside = todos["create_todo"].sync(
        client=client, body=models.TodoCreate(title="Stamps", list_id=errands.id)
    )
    lists["rename_list"].sync(errands.id, client=client, body=models.ListUpdate(name="Post"))
    news: list[Any] = []
    token = _sync(feed, models, client, copy, token, news)
    order = [change.id for change in news]
    assert order.index(errands.id) < order.index(inside.id)
    assert copy[("list", errands.id)].name == "Post"
    assert copy[("todo", inside.id)].list_id == errands.id

    # Delete, then it is gone; the feed says so with a tombstone.
    assert todos["delete_todo"].sync_detailed(todo_id, client=client).status_code == 204
    gone = todos["read_todo"].sync_detailed(todo_id, client=client)
    assert gone.status_code == 404
    assert isinstance(gone.parsed, models.ErrorBody)
    tombstones: list[Any] = []
    _sync(feed, models, client, copy, token, tombstones)
    assert [(type(change), change.deleted, change.item) for change in tombstones] == [
        (models.TodoChange, True, None)
    ]
    assert ("todo", todo_id) not in copy

    # Refresh, then log out: that refresh token stops working.
    renewed = auth["refresh"].sync(
        client=anonymous, body=models.RefreshRequest(refresh_token=pair.refresh_token)
    )
    assert isinstance(renewed, models.TokenPair)
    assert renewed.refresh_token != pair.refresh_token
    logout = auth["logout"].sync_detailed(
        client=anonymous, body=models.RefreshRequest(refresh_token=renewed.refresh_token)
    )
    assert logout.status_code == 204
    refused = auth["refresh"].sync_detailed(
        client=anonymous, body=models.RefreshRequest(refresh_token=renewed.refresh_token)
    )
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.ErrorBody)


def _sync(
    feed: ModuleType,
    models: ModuleType,
    client: Any,
    copy: dict[tuple[str, Any], Any],
    token: str | None,
    seen: list[Any] | None = None,
    limit: int = 100,
) -> str:
    """Follow the feed from `token` into `copy`, narrowing each change by its type as a
    generated client's user does; the last next_token."""
    while True:
        kwargs = {} if token is None else {"since": token}
        page = feed.sync(client=client, limit=limit, **kwargs)
        assert isinstance(page, models.ChangePage)
        for change in page.changes:
            if isinstance(change, models.ListChange):
                assert change.type_ == "list"
                assert change.deleted or isinstance(change.item, models.ListRead)
            else:
                assert isinstance(change, models.TodoChange)
                assert change.type_ == "todo"
                assert change.deleted or isinstance(change.item, models.TodoRead)
            assert (change.item is None) == change.deleted
            if change.deleted:
                copy.pop((change.type_, change.id), None)
            else:
                copy[(change.type_, change.id)] = change.item
            if seen is not None:
                seen.append(change)
        token = page.next_token
        if not page.has_more:
            return token
