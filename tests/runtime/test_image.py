"""The image stand-in copies what the Dockerfile's final stage copies, and nothing else."""

from pathlib import Path

from app.migrations import ROOT
from tests.runtime import image


def _context(tmp_path: Path, dockerfile: str, dockerignore: str) -> Path:
    for name in ("app/main.py", "app/__pycache__/main.cpython-312.pyc", "app/.env", "run.sh"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / "Dockerfile").write_text(dockerfile)
    (tmp_path / ".dockerignore").write_text(dockerignore)
    return tmp_path


def _copies(context: Path) -> set[str]:
    copies = image.dockerfile_copies(context / "Dockerfile", context, context / ".dockerignore")
    return {target.as_posix() for target in copies}


def test_the_final_stage_copies_and_dockerignore_decide_the_layout(tmp_path: Path) -> None:
    context = _context(
        tmp_path,
        "FROM base AS builder\nCOPY run.sh ./early/\n"
        "FROM base\nCOPY --from=builder /opt/venv /opt/venv\nCOPY run.sh ./\nCOPY app/ ./app/\n",
        "*\n!app/\n!run.sh\n**/__pycache__\n**/.env\n",
    )
    # Not the builder stage's copy, not the cache or the secret .dockerignore keeps out.
    assert _copies(context) == {"run.sh", "app/main.py"}


def test_a_copy_dropped_from_the_dockerfile_is_missing_from_the_layout(tmp_path: Path) -> None:
    context = _context(tmp_path, "FROM base\nCOPY run.sh ./\n", "*\n!app/\n!run.sh\n")
    assert _copies(context) == {"run.sh"}


def test_the_real_dockerfile_ships_the_service_and_its_migrations() -> None:
    copies = image.dockerfile_copies()
    assert {"start.sh", "gunicorn_conf.py", "alembic.ini", "app/main.py", "alembic/env.py"} <= {
        target.as_posix() for target in copies
    }
    assert all("__pycache__" not in target.parts for target in copies)
    assert all(source.is_relative_to(ROOT) for source in copies.values())
