""".ci/run's verdict on the container check, with `make` and `pg_isready` stood in for (the
real ones run the whole suite): only the end of the script is under test here."""

import shutil
import subprocess
from pathlib import Path

import pytest

from app.migrations import ROOT

CLOSING = "======== 9 passed in 1.00s ========"


def run_ci(tmp_path: Path, container_check: str | None) -> subprocess.CompletedProcess[str]:
    """.ci/run in a copy of the repository's layout: repo/.ci/run next to shared/tools/."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy2(ROOT / ".ci" / "run", repo / ".ci" / "run")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, body in {"make": f"echo '{CLOSING}'", "pg_isready": "exit 0"}.items():
        (stubs / name).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / name).chmod(0o755)
    if container_check is not None:
        tools = tmp_path / "shared" / "tools"
        tools.mkdir(parents=True)
        (tools / "container-check.sh").write_text(f"{container_check}\n")
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "PYTHON": "python3", "HOME": str(tmp_path)}
    return subprocess.run(  # noqa: S603 - the repository's own script
        ["/bin/bash", str(repo / ".ci" / "run")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_missing_container_check_fails_ci(tmp_path: Path) -> None:
    result = run_ci(tmp_path, None)
    assert result.returncode != 0, result.stdout
    assert result.stdout.splitlines()[-1].startswith("container-check: FAILED"), result.stdout
    assert "not found" in result.stdout.splitlines()[-1]


def test_a_failing_container_check_fails_ci_after_the_closing_lines(tmp_path: Path) -> None:
    result = run_ci(tmp_path, "exit 5")
    assert result.returncode == 5, result.stdout
    assert result.stdout.splitlines()[-3:] == [CLOSING, CLOSING, "container-check: FAILED (exit 5)"]


@pytest.mark.parametrize(
    ("script", "verdict"),
    [("exit 0", "container-check: passed"), ("exit 3", "container-check: NOT RUN")],
)
def test_an_unavailable_environment_is_reported_last_on_stdout(
    tmp_path: Path, script: str, verdict: str
) -> None:
    """Exit 3 (no podman or base images here) does not fail CI, but it is the log's last line,
    after pytest's closing lines, not a stderr message above them."""
    result = run_ci(tmp_path, script)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-3:-1] == [CLOSING, CLOSING]
    assert lines[-1].startswith(verdict), lines[-1]
