import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TempPostgres, postgres_admin_url
from tests.runtime import image


@pytest.fixture
def database() -> Iterator[TempPostgres]:
    """A fresh, empty PostgreSQL database for one server run."""
    created = TempPostgres.create(postgres_admin_url(), prefix="todo_runtime")
    try:
        yield created
    finally:
        created.drop()


@pytest.fixture(scope="session")
def image_runtime() -> Iterator[image.ImageRuntime]:
    python = image.unprivileged_python()
    if python is None:
        reason = f"no Python 3.11+ that user {image.USER!r} can run"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the non-root runtime tests: {reason}")
        pytest.skip(f"SKIPPING NON-ROOT RUNTIME TESTS: {reason}")
    destination = Path(tempfile.mkdtemp(prefix="todo-image-"))
    try:
        yield image.build(destination, python)
    finally:
        shutil.rmtree(destination, ignore_errors=True)
