import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime import image


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
