"""Adding a plain nullable field to todos takes four files, and its downgrade leaves a working
service (issue 24). In a copy of app/ and alembic/: the model, the schemas and the field table
get one line each (as docs/adding-a-field.md says), `alembic revision --autogenerate` writes
the migration; the copy's service writes and reads the field (GET, the list, the feed). Then
the migration is downgraded and this checkout's service, which knows nothing of the field,
writes, reads and serves the feed again. On SQLite and PostgreSQL."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

# (file, after this line, the line added): the documented edits, one per file.
EDITS = [
    (
        "app/todos/models.py",
        "    description: Mapped[str | None] = mapped_column(Text)\n",
        "    effort_points: Mapped[int | None] = mapped_column(Integer)\n",
    ),
    (
        "app/todos/schemas.py",
        "    due_date: DateTimeIn | None = None\n",  # TodoCreate's and TodoUpdate's
        "    effort_points: int | None = Field(default=None, ge=0, le=100)\n",
    ),
    ("app/todos/schemas.py", "    position: str\n", "    effort_points: int | None\n"),
    ("app/todos/fields.py", '    "position",\n', '    "effort_points",\n'),
    ("app/todos/fields.py", "WRITABLE = (\n", '    "effort_points",\n'),
]

# Drives a service from whichever checkout is first on sys.path, against DATABASE_URL.
DRIVER = r"""
import json, os, sys, uuid
from fastapi.testclient import TestClient
from app.config import Settings
from app.main import create_app

with_field = sys.argv[1] == "with"
settings = Settings(
    _env_file=None, environment="test", database_url=os.environ["DATABASE_URL"],
    secret_key=os.environ["SECRET_KEY"], bcrypt_rounds=4,
    migration_lock_path=os.environ["LOCK_PATH"],
)
password = "correct horse battery"
with TestClient(create_app(settings)) as client:
    email = f"u{uuid.uuid4().hex[:8]}@example.com"
    account = {"email": email, "password": password}
    assert client.post("/api/v1/auth/register", json=account).status_code == 201
    form = {"username": email, "password": password}
    token = client.post("/api/v1/auth/token", data=form).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    body = {"title": "t", **({"effort_points": 5} if with_field else {})}
    created = client.post("/api/v1/todos", json=body, headers=headers)
    assert created.status_code == 201, created.text
    todo = created.json()
    if with_field:
        assert todo["effort_points"] == 5, todo
    else:
        assert "effort_points" not in todo, todo
    patch = {"title": "u", **({"effort_points": None} if with_field else {})}
    patched = client.patch(f"/api/v1/todos/{todo['id']}", json=patch, headers=headers)
    assert patched.status_code == 200, patched.text
    put = client.put(f"/api/v1/todos/{todo['id']}", json=body, headers=headers)
    assert put.status_code == 200, put.text
    gone = client.post("/api/v1/todos", json=body, headers=headers).json()
    assert client.delete(f"/api/v1/todos/{gone['id']}", headers=headers).status_code == 204
    listed = client.get("/api/v1/todos", headers=headers)
    assert listed.status_code == 200 and listed.json()["items"][0] == put.json(), listed.text
    feed = client.get("/api/v1/changes", headers=headers)
    assert feed.status_code == 200, feed.text
    items = {c["id"]: c["item"] for c in feed.json()["changes"]}
    assert items[todo["id"]] == client.get(f"/api/v1/todos/{todo['id']}", headers=headers).json()
    assert items[gone["id"]] is None
    print("RESULT " + json.dumps(put.json()))
"""


def _digests(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for directory in ("app", "alembic")
        for path in (root / directory).rglob("*.py")
    }


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 - our own interpreter and files
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _result(output: str) -> dict[str, object]:
    (line,) = [line for line in output.splitlines() if line.startswith("RESULT ")]
    result: dict[str, object] = json.loads(line.removeprefix("RESULT "))
    return result


def test_a_nullable_field_takes_four_files_and_survives_its_downgrade(
    empty_database_url: str, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    ignore = shutil.ignore_patterns("__pycache__")
    for directory in ("app", "alembic"):
        shutil.copytree(ROOT / directory, copy / directory, ignore=ignore)
    shutil.copy(ROOT / "alembic.ini", copy / "alembic.ini")
    before = _digests(copy)
    for name, anchor, added in EDITS:
        path = copy / name
        text = path.read_text()
        assert anchor in text, (name, anchor)
        path.write_text(text.replace(anchor, anchor + added))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {
        **os.environ,
        "DATABASE_URL": empty_database_url,
        "ENVIRONMENT": "test",
        "SECRET_KEY": "k3y-F0r-The-Field-Test-abcdefghijklmnop",
        "LOCK_PATH": str(tmp_path / "migrations.lock"),
    }
    alembic = [sys.executable, "-m", "alembic"]
    _run([*alembic, "upgrade", "head"], copy, env)
    _run([*alembic, "revision", "--autogenerate", "-m", "todo effort points"], copy, env)

    after = _digests(copy)
    changed = sorted(name for name in after if before.get(name) != after[name])
    (migration,) = [name for name in changed if name not in before]
    assert changed == sorted(
        ["app/todos/models.py", "app/todos/schemas.py", "app/todos/fields.py", migration]
    )
    text = (copy / migration).read_text()
    assert "effort_points" in text
    assert len(text.splitlines()) <= 40  # an ordinary autogenerated migration

    _run([*alembic, "upgrade", "head"], copy, env)
    written = _result(
        _run([sys.executable, str(driver), "with"], copy, {**env, "PYTHONPATH": str(copy)})
    )
    assert written["effort_points"] == 5
    _run([*alembic, "downgrade", "-1"], copy, env)
    # This checkout (the release without the field) on the downgraded database: it works.
    _run([sys.executable, str(driver), "without"], ROOT, {**env, "PYTHONPATH": str(ROOT)})
