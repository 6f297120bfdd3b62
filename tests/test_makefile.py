"""The Makefile as a newcomer meets it: `make help` lists every target, the README names only
targets that exist, and the Python check picks a supported Python or says what to install."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MAKEFILE = ROOT / "Makefile"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="no make on PATH")


def _lines() -> list[str]:
    """The Makefile's logical lines (backslash continuations joined)."""
    return MAKEFILE.read_text().replace("\\\n", " ").splitlines()


def phony_targets() -> set[str]:
    names: set[str] = set()
    for line in _lines():
        if line.startswith(".PHONY:"):
            names.update(line.removeprefix(".PHONY:").split())
    return names


def rule_targets() -> set[str]:
    """Targets named by a plain word (not a file path or a variable), as a user types them."""
    rule = re.compile(r"^([a-z][a-z0-9-]*)\s*:(?!=)")
    return {match[1] for line in _lines() if (match := rule.match(line))}


def make(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    assert MAKE is not None
    env = None
    if path is not None:  # the Python check under test: nothing may choose for it (.ci/run
        # exports PYTHON for make test, and make passes it on to this make)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "MAKEFLAGS", "MFLAGS")}
        env["PATH"] = path
    return subprocess.run(  # noqa: S603 - fixed arguments
        [MAKE, "--no-print-directory", "-C", str(ROOT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_target_is_phony_and_every_phony_is_a_target() -> None:
    assert rule_targets() == phony_targets()


def test_make_help_lists_every_target() -> None:
    # Without any Python at all: help is the one thing that must always work.
    result = make("help", "PYTHON=")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("make ")}
    assert listed == phony_targets()


def _code(markdown: str) -> list[str]:
    """What a reader would type: fenced blocks and `inline code`."""
    fenced = re.findall(r"```[^\n]*\n(.*?)```", markdown, flags=re.DOTALL)
    prose = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    return fenced + re.findall(r"`([^`\n]+)`", prose)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_make_target_a_document_names_exists(document: Path) -> None:
    named = {
        target
        for code in _code(document.read_text())
        for target in re.findall(r"(?:^|[\s;&|(])make ([a-z][a-z0-9-]*)", code, flags=re.M)
    }
    assert named, f"{document.name} names no make target at all"
    assert named <= rule_targets(), named - rule_targets()


def _fake_pythons(tmp_path: Path, **exit_codes: int) -> str:
    """A PATH of stand-in interpreters (exit 0: a Python 3.11-3.13; else not), and echo."""
    echo = tmp_path / "echo"
    if not echo.exists():
        echo.symlink_to(shutil.which("echo") or "/bin/echo")
    for name, code in exit_codes.items():
        script = tmp_path / name.replace("_", ".")
        script.write_text(f"#!/bin/sh\nexit {code}\n")
        script.chmod(0o755)
    return str(tmp_path)


def _chosen_python(path: str) -> subprocess.CompletedProcess[str]:
    return make("--eval", "chosen-python: ; @echo $(PYTHON)", "chosen-python", path=path)


def test_the_python_check_prefers_the_images_minor_and_knows_311(tmp_path: Path) -> None:
    both = _fake_pythons(tmp_path, python3_13=0, python3_11=0, python3=0)
    assert _chosen_python(both).stdout.strip() == "python3.13"  # before 3.11 and python3
    (tmp_path / "python3.13").unlink()
    assert _chosen_python(both).stdout.strip() == "python3.11"
    _fake_pythons(tmp_path, python3_12=0)
    assert _chosen_python(both).stdout.strip() == "python3.12"


def test_without_a_supported_python_make_says_what_to_install(tmp_path: Path) -> None:
    path = _fake_pythons(tmp_path, python3_12=1, python3_13=1, python3_11=1, python3=1)
    result = make("install", path=path)
    assert result.returncode != 0
    assert "No Python 3.11, 3.12 or 3.13 found" in result.stderr
    assert "Install Python 3.12" in result.stderr
    assert make("help", path=path).returncode == 0


def _recipe(target: str) -> list[str]:
    """The commands of one target's recipe, with $(BIN) and $(K8S_TOOLS) spelled out."""
    lines = MAKEFILE.read_text().replace("\\\n", " ").splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{target}\s*:(?!=)", line))
    commands = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        commands.append(line.strip().replace("$(BIN)", ".venv/bin"))
    return [c.replace("$(K8S_TOOLS)", ".venv-k8s") for c in commands]


def test_the_pre_commit_hooks_run_what_make_lint_runs() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]  # nothing to fetch
    entries = [hook["entry"] for hook in config["repos"][0]["hooks"]]
    # Each command of `make lint` and `make lint-k8s`, by its tool and what it checks
    # (the hooks add only flags that make per-file runs behave like the whole-tree ones).
    for command in [*_recipe("lint"), *_recipe("lint-k8s")]:
        words = [w for w in command.split() if w != "." and not w.startswith("K8S_TOOLS=")]
        assert any(all(w in entry.split() for w in words) for entry in entries), command


def _make_variable(name: str, *assignments: str) -> str:
    result = make(*assignments, "--eval", f"print-variable: ; @echo $({name})", "print-variable")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_make_dev_and_make_run_do_not_share_a_database_file() -> None:
    # `RESET_DB=1 make run` rebuilds the database make run uses: it must not be make dev's.
    from app.config import Settings

    dev = _make_variable("DEV_DATABASE_URL")
    run = Settings(_env_file=None).database_url
    example = re.search(r"^DATABASE_URL=(.*)$", (ROOT / ".env.example").read_text(), re.M)
    assert example is not None
    assert dev.startswith("sqlite:///")
    assert dev not in {run, example[1]}
    help_text = make("help", "PYTHON=").stdout
    dev_line = next(line for line in help_text.splitlines() if line.startswith("make dev "))
    assert dev.removeprefix("sqlite:///") in dev_line  # help names the file make dev uses


def test_make_dev_runs_the_reloader_that_releases_the_port() -> None:
    # uvicorn --reload held the port with no server behind it after a failed reload
    # (tests/test_devserver.py drives app.devserver itself).
    (command,) = _recipe("dev")
    assert ".venv/bin/python -m app.devserver --reload-dir app" in command
    assert "DATABASE_URL=$(DEV_DATABASE_URL) ENVIRONMENT=development" in command
    # make migrate goes through the same checks (a changed file, an unknown revision).
    assert _recipe("migrate") == [".venv/bin/python -m app.migrations"]


def _collected(markers: str, module: str) -> list[str]:
    result = subprocess.run(  # noqa: S603 - this interpreter's pytest, fixed arguments
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", markers, module],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_make_test_fast_runs_sqlite_only_unless_pg_1_adds_postgresql() -> None:
    # The recipe passes its markers to pytest; PYTEST_ARGS comes after (its own -m wins).
    assert _recipe("test-fast") == ['.venv/bin/pytest -m "$(TEST_FAST_MARKERS)" $(PYTEST_ARGS)']
    default = _make_variable("TEST_FAST_MARKERS")
    with_postgres = _make_variable("TEST_FAST_MARKERS", "PG=1")
    # What those markers select, on a module of the fast tier and one of the HTTP tier.
    for module in ("tests/test_fast_tier.py", "tests/accounts/test_me.py"):
        sqlite_only, both = _collected(default, module), _collected(with_postgres, module)
        assert sqlite_only
        assert all("[sqlite" in test for test in sqlite_only), sqlite_only
        assert set(sqlite_only) < set(both)
        assert any("[postgres" in test for test in both), both
    # The command line's -m replaces pyproject's: the cluster stays out (make test-cluster).
    assert "not cluster" in default
    assert "not cluster" in with_postgres
    help_text = make("help", "PYTHON=").stdout
    fast_line = next(line for line in help_text.splitlines() if line.startswith("make test-fast "))
    assert "SQLite only" in fast_line
    assert "PG=1" in fast_line
