"""An image-like runtime on this machine: what the Dockerfile copies, run the way it runs it.

There is no container engine here, so the runtime tests rebuild the image's layout in a
temporary directory: the files the Dockerfile's final stage copies from the build context
(its COPY lines, filtered by .dockerignore as the build context is), a virtualenv installed
from the same locked requirements (main group only) and cut down by the same
docker/slim-venv.sh, the Dockerfile's ENV, and a non-root user. The Python must be one that
user can run (pyenv's interpreters under /root are not).
"""

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.migrations import ROOT

USER, GROUP = "nobody", "nogroup"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
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


def _joined_lines(dockerfile: Path = DOCKERFILE) -> str:
    return dockerfile.read_text().replace("\\\n", " ")


def _final_stage(dockerfile: Path = DOCKERFILE) -> str:
    return _joined_lines(dockerfile).split("\nFROM ")[-1]


WORKDIR = "/app"
VENV = "/opt/venv"


def dockerfile_env() -> dict[str, str]:
    """Every ENV key=value of the Dockerfile's final stage."""
    final_stage = _final_stage()
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


def _ignore_pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: `**` spans directories, `*` and `?` do not."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern.strip("/"))
    regex = ""
    for part in parts:
        if part in ("**/", "**"):
            regex += "(?:.*/)?" if part == "**/" else ".*"
        elif part == "*":
            regex += "[^/]*"
        elif part == "?":
            regex += "[^/]"
        else:
            regex += fnmatch.translate(part).removeprefix("(?s:").removesuffix(")\\Z")
    return re.compile(f"(?s:{regex})\\Z")


def dockerignore_filter(dockerignore: Path = DOCKERIGNORE) -> Callable[[str], bool]:
    """Whether a context-relative path reaches the build: the last matching pattern decides,
    and a pattern that matches a parent directory matches everything under it (as Docker's
    patternmatcher does), so `*` then `!app/` then `**/__pycache__` keeps app/ minus caches."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    if dockerignore.exists():
        for line in dockerignore.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            included = line.startswith("!")
            rules.append((included, _ignore_pattern(line.removeprefix("!"))))

    def sent(relative: str) -> bool:
        parts = relative.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        keep = True
        for included, rule in rules:
            if any(rule.match(prefix) for prefix in prefixes):
                keep = included
        return keep

    return sent


def dockerfile_copies(
    dockerfile: Path = DOCKERFILE, context: Path = ROOT, dockerignore: Path = DOCKERIGNORE
) -> dict[Path, Path]:
    """What the final stage COPYs from the build context: image path (relative to WORKDIR)
    to the context file it comes from. `COPY --from=...` (the venv) is built separately."""
    sent = dockerignore_filter(dockerignore)
    copies: dict[Path, Path] = {}
    for line in _final_stage(dockerfile).splitlines():
        instruction = line.strip().split(" ", 1)[0].upper()
        if instruction == "ADD":
            raise AssertionError(f"image.py does not emulate ADD: {line.strip()}")
        if instruction != "COPY":
            continue
        words = shlex.split(line.strip())
        if any(w.startswith("--from") for w in words):
            continue
        arguments = [w for w in words[1:] if not w.startswith("--")]
        *sources, destination = arguments
        if destination.startswith("/"):
            raise AssertionError(f"image.py maps only WORKDIR-relative copies: {line.strip()}")
        for source in sources:
            origin = context / source
            if origin.is_dir():
                files = [p for p in origin.rglob("*") if p.is_file()]
                for file in files:
                    relative = file.relative_to(context).as_posix()
                    if sent(relative):
                        copies[Path(destination) / file.relative_to(origin)] = file
            elif origin.is_file() and sent(source.strip("/")):
                target = Path(destination)
                if destination.endswith("/") or len(sources) > 1:
                    target = target / origin.name
                copies[target] = origin
            else:
                # Docker fails the build when a source is missing or not in the context.
                raise AssertionError(f"COPY source {source!r} is not in the build context")
    return copies


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
    for target, source in dockerfile_copies().items():
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, root / target)
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
