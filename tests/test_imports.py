"""No test module imports from another test module.

A helper imported from a test module ties the importer to whatever that module happens to
define, hides who owns the helper, and (for a name starting with test_) makes pytest collect
the imported test a second time. Shared helpers live in modules pytest does not collect:
tests/<area>/helpers.py, tests/support/, tests/conftest.py.
"""

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _is_test_module(dotted: str) -> bool:
    """`dotted` names a module pytest collects: a test_*.py file of this repository."""
    name = dotted.rpartition(".")[2]
    return name.startswith("test_") and (ROOT / (dotted.replace(".", "/") + ".py")).is_file()


def imported_test_modules(source: str, package: str) -> list[str]:
    """Every test module `source` (a module of `package`) imports, or imports from: `import
    tests.a.test_b`, `from tests.a.test_b import x`, `from tests.a import test_b`, `from
    .test_b import x`, at module level or inside a function."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*base, node.module or ""] if node.level else [node.module or ""])
            module = module.strip(".")
            if _is_test_module(module):
                found.append(module)
            found += [
                f"{module}.{alias.name}"
                for alias in node.names
                if _is_test_module(f"{module}.{alias.name}")
            ]
    return found


def _modules() -> list[Path]:
    return sorted(path for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)


def test_no_module_under_tests_imports_a_test_module() -> None:
    offenders = {}
    for path in _modules():
        package = ".".join(path.relative_to(ROOT).parts[:-1])
        if imported := imported_test_modules(path.read_text(), package):
            offenders[str(path.relative_to(ROOT))] = imported
    assert not offenders, (
        f"{offenders}: move what these import into a helpers module (tests/<area>/helpers.py "
        "or tests/support/) and import it from there"
    )


@pytest.mark.parametrize(
    "source",
    [
        "from tests.todos.test_crud import create",
        "import tests.todos.test_crud",
        "from tests.todos import test_crud",
        "from .test_crud import create",
        "def helper():\n    from tests.todos.test_crud import create\n",
    ],
)
def test_the_check_finds_every_form_of_import(source: str) -> None:
    assert imported_test_modules(source, "tests.todos") == ["tests.todos.test_crud"]


@pytest.mark.parametrize(
    "source",
    [
        "from tests.todos.helpers import create",
        "from tests.conftest import ApiUser",
        "from tests.support.old_release import T0",
        "from .helpers import create",
        "import pytest",
    ],
)
def test_the_check_lets_helpers_modules_be(source: str) -> None:
    assert imported_test_modules(source, "tests.todos") == []
