"""An image-like runtime on this machine: what the Dockerfile copies, run the way it runs it.

There is no container engine here, so the runtime tests rebuild the image's layout in a
temporary directory: the files the Dockerfile copies, a virtualenv installed from the same
locked requirements (main group only) and cut down by the same docker/slim-venv.sh, the
Dockerfile's ENV, and a non-root user. The Python must be one that user can run (pyenv's
interpreters under /root are not).
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from app.migrations import ROOT

RUNTIME_FILES = ("app", "alembic", "alembic.ini", "gunicorn_conf.py", "start.sh")
USER, GROUP = "nobody", "nogroup"
DOCKERFILE = ROOT / "Dockerfile"
SLIM_VENV = ROOT / "docker" / "slim-venv.sh"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


@dataclass
class ImageRuntime:
    root: Path  # stands for the image's WORKDIR
    venv: Path  # stands for the image's virtualenv

    def env(self, **overrides: str) -> dict[str, str]:
        """The Dockerfile's ENV, with its paths mapped into this runtime, plus overrides."""
        env = {"HOME": "/nonexistent", "LANG": "C.UTF-8"}
        for key, value in dockerfile_env().items():
            env[key] = value.replace(WORKDIR, str(self.root)).replace(VENV, str(self.venv))
        env["PATH"] = f"{self.venv}/bin:/usr/local/bin:/usr/bin:/bin"
        return {**env, **overrides}


def _dockerfile_value(pattern: str) -> str:
    match = re.search(pattern, DOCKERFILE.read_text(), re.MULTILINE)
    if match is None:
        raise AssertionError(f"Dockerfile has no line matching {pattern!r}")
    return match.group(1).strip()


def _joined_lines() -> str:
    return DOCKERFILE.read_text().replace("\\\n", " ")


WORKDIR = "/app"
VENV = "/opt/venv"


def dockerfile_env() -> dict[str, str]:
    """Every ENV key=value of the Dockerfile's final stage."""
    final_stage = _joined_lines().split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for line in final_stage.splitlines():
        if line.strip().startswith("ENV "):
            for token in shlex.split(line.strip()[4:]):
                key, _, value = token.partition("=")
                env[key] = value
    env.pop("PATH", None)
    return env


def dockerfile_healthcheck() -> list[str]:
    """The HEALTHCHECK's exec-form CMD."""
    line = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])\s*$", _joined_lines(), re.MULTILINE)
    if line is None:
        raise AssertionError("Dockerfile has no exec-form HEALTHCHECK CMD")
    command: list[str] = json.loads(line.group(1))
    return command


def dockerfile_cmd() -> list[str]:
    command: list[str] = json.loads(_dockerfile_value(r"^CMD (\[.*\])\s*$"))
    return command


def unprivileged_python() -> str | None:
    """An interpreter (3.11+) the unprivileged user can run, or None."""
    candidates = [
        os.path.realpath(sys._base_executable),
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    ]
    check = "import sys, venv; assert sys.version_info >= (3, 11)"
    for python in candidates:
        if not os.path.exists(python):
            continue
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [RUNUSER, "-u", USER, "--", python, "-c", check], capture_output=True, timeout=60
        )
        if result.returncode == 0:
            return python
    return None


def build(destination: Path, python: str) -> ImageRuntime:
    """Lay out the runtime in `destination`, a fresh directory the app user can traverse."""
    root, venv = destination / "app", destination / "venv"
    root.mkdir(parents=True)
    for name in RUNTIME_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    requirements = ROOT / ".venv" / "requirements-main.txt"  # written by `make install`
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)  # noqa: S603
    subprocess.run(  # noqa: S603 - the locked, hashed requirements
        [str(venv / "bin" / "pip"), "install", "-q", "--no-compile", "--require-hashes",
         "--no-deps", "-r", str(requirements)],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    # The Dockerfile's own cuts and bytecode, so these tests run the image's slimmed venv.
    for step in (["cut", str(venv)], ["bytecode", str(venv), str(root)]):
        subprocess.run(  # noqa: S603 - the repository's script
            ["/bin/sh", str(SLIM_VENV), *step], check=True, timeout=600, capture_output=True
        )
    # Readable by everyone, like an image's layers; only the data directory is the app's.
    for path in [destination, *destination.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))
    data = root / "data"
    data.mkdir()
    shutil.chown(data, USER, GROUP)
    return ImageRuntime(root, venv)
