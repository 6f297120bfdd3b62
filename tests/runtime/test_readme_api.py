"""The README's API curl lines, run as a reader would: against a real server."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.migrations import ROOT
from tests.runtime.server import app_env, free_port, serve


def readme_api_blocks() -> list[str]:
    """The shell blocks of the README's "The API" section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## The API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)


def require_curl() -> str:
    """curl, or skip (fail under CI=true, like every other test that needs a tool)."""
    found = shutil.which("curl")
    if found is None:
        reason = "curl not found (apt-get install -y curl)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the README's curl lines to run: {reason}")
        pytest.skip(f"SKIPPING THE README'S CURL LINES: {reason}")
    return found


def test_the_readme_api_lines_work_as_written(tmp_path: Path) -> None:
    require_curl()
    blocks = readme_api_blocks()
    assert len(blocks) == 3  # log in, the five calls, then a recurring todo (v1.3)
    calls = [line for line in blocks[1].splitlines() if line.startswith(("ID=", "curl"))]
    assert len(calls) == 5
    port = free_port()
    # The reader's server is make dev's; this one is uvicorn on a port of its own. -f: an HTTP
    # error fails the script (the README leaves it out, to show the error bodies).
    script = "\n".join(blocks).replace("localhost:8000", f"127.0.0.1:{port}")
    script = script.replace("curl -s", "curl -sf")
    env = app_env(f"sqlite:///{tmp_path / 'readme.db'}", tmp_path)
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port)]
    with serve(command, env, tmp_path / "server.log", port):
        result = subprocess.run(  # noqa: S603 - the README's own lines
            ["bash", "-euo", "pipefail", "-c", script],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r'(?im)^etag: "1"', result.stdout), result.stdout  # the read
    assert '"completed":true' in result.stdout  # the update, then the list
    # The recurring all-day todo: completing it moved it to its next occurrence, still open.
    moved = re.search(r'"title":"Water the plants"[^}]*"due_day":"2030-01-10"', result.stdout)
    assert moved, result.stdout
    assert '"title":"The balcony too"' in result.stdout  # the parent_id= list
    assert '{"name":"home","count":1}' in result.stdout  # GET /labels
