"""`make dev` (python -m app.devserver): when a reload cannot start the server (a branch switch
left the app unimportable, or the database at a revision this code does not know), it says so
and releases the port, instead of holding it with nobody serving; the next change starts the
server again, and Ctrl+C ends it."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
from sqlalchemy import create_engine, text

from alembic import command
from app.config import Settings
from app.migrations import ROOT, alembic_config, head_revision
from tests.conftest import TEST_SECRET
from tests.isolation import free_port

DEVAPP = "from app.main import app  # noqa: F401 - what make dev serves, from a module we edit\n"


def _wait_for(what: str, check: Callable[[], bool], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def _serves(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _refused(port: int) -> bool:
    """Nothing listens: a connection is refused at once (a held port accepts, then hangs)."""
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _edit(path: Path, content: str) -> None:
    path.write_text(content)
    os.utime(path)  # a change watchfiles reports, whatever the clock's resolution


@contextmanager
def _devserver(tmp_path: Path, url: str) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    watched = tmp_path / "watched"
    watched.mkdir()
    _edit(watched / "devapp.py", DEVAPP)
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env = clean | {
        "PYTHONPATH": os.pathsep.join([str(watched), str(ROOT)]),
        "DATABASE_URL": url,
        "SECRET_KEY": TEST_SECRET,
        "BCRYPT_ROUNDS": "4",
        "MIGRATION_LOCK_PATH": str(tmp_path / "m.lock"),
    }
    log = tmp_path / "devserver.log"
    command = [sys.executable, "-m", "app.devserver", "--app", "devapp:app", "--port", str(port)]
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [*command, "--reload-dir", str(watched)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for("serving", lambda: _serves(port), log)
        yield process, port, watched
        process.send_signal(signal.SIGINT)  # Ctrl+C
        assert process.wait(timeout=60) == 0, log.read_text()[-4000:]
        assert _refused(port)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _set_revision(url: str, revision: str | None) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if revision is None:
                command.upgrade(alembic_config(connection), "head")
            else:
                connection.execute(
                    text("UPDATE alembic_version SET version_num = :v"), {"v": revision}
                )
    finally:
        engine.dispose()


def test_a_reload_onto_an_unknown_revision_fails_plainly_and_releases_the_port(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    _set_revision(url, None)
    with _devserver(tmp_path, url) as (process, port, watched):
        _set_revision(url, "f00dfeedbeef")  # what the other branch's migrations left
        _edit(watched / "devapp.py", DEVAPP + "# switched branch\n")
        log = tmp_path / "devserver.log"
        _wait_for("released", lambda: _refused(port), log)
        output = log.read_text()
        assert "at revision f00dfeedbeef, which this code does not know" in output
        assert f"released port {port}" in output
        assert "Traceback" not in output
        assert process.poll() is None  # still watching: fixing it needs no restart
        _set_revision(url, head_revision())
        _edit(watched / "devapp.py", DEVAPP + "# switched back\n")
        _wait_for("serving again", lambda: _serves(port), log)


def test_a_reload_that_cannot_import_the_app_releases_the_port(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dev.db'}"
    with _devserver(tmp_path, url) as (process, port, watched):
        _edit(watched / "devapp.py", 'raise ImportError("half of a branch switch")\n')
        log = tmp_path / "devserver.log"
        _wait_for("released", lambda: _refused(port), log)
        lines = log.read_text().splitlines()
        assert "ImportError: half of a branch switch" in lines  # a real, multi-line traceback
        assert any(f"released port {port}" in line for line in lines)
        assert process.poll() is None
        _edit(watched / "devapp.py", DEVAPP)
        _wait_for("serving again", lambda: _serves(port), log)
