"""scripts/check_imports.py, which `make lint` runs: the import directions of issue 24 hold in
app/, and each rule reports the trees that break it (the shapes app/ had before: config.py
importing auth.schemas, auth and users importing each other)."""

import subprocess
import sys
from pathlib import Path

from scripts.check_imports import problems

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_imports.py"


def tree(root: Path, files: dict[str, str]) -> Path:
    """An app/ of these modules (path -> source), every package with its __init__.py."""
    for name, source in {"app/__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(source)
    return root


def test_app_keeps_the_import_rules() -> None:
    assert problems(ROOT) == []
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=False, timeout=60
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_config_reaching_a_domain_package_through_another_module_is_reported(
    tmp_path: Path,
) -> None:
    root = tree(
        tmp_path,
        {
            "app/config.py": "from app.keys import check\n",
            # Inside a function, and through `from package import module`: a dependency still.
            "app/keys.py": "def check():\n    from app.accounts import schemas\n",
            "app/accounts/schemas.py": "",
        },
    )
    # `from app.accounts import schemas` runs the package's __init__ first: that is reported.
    assert problems(root) == [
        "app.config must not import app.accounts: app.config -> app.keys -> app.accounts"
    ]


def test_accounts_importing_todos_or_lists_is_reported(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "app/accounts/users.py": "from app.todos.service import count\n",
            "app/accounts/service.py": "import app.lists.ordering\n",
            "app/todos/service.py": "from app.accounts import users\n",
            "app/lists/ordering.py": "",
        },
    )
    found = problems(root)
    assert "app.accounts must not import app.lists.ordering: " in "".join(found)
    assert any(p.startswith("app.accounts must not import app.todos.service") for p in found)
    assert "packages import each other: app.accounts -> app.todos -> app.accounts" in found
    assert "modules import each other: app.accounts.users -> app.todos.service -> " in "".join(
        found
    )


def test_two_packages_importing_each_other_are_reported(tmp_path: Path) -> None:
    """Before issue 24: auth.service imported users.service, users.password auth.logins."""
    root = tree(
        tmp_path,
        {
            "app/auth/service.py": "from app.users import service as users\n",
            "app/auth/logins.py": "",
            "app/users/service.py": "from app.users import password\n",
            "app/users/password.py": "from app.auth import logins\n",
        },
    )
    assert problems(root) == ["packages import each other: app.auth -> app.users -> app.auth"]
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, str(SCRIPT), str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == "packages import each other: app.auth -> app.users -> app.auth\n"


def test_modules_importing_each_other_are_reported(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "app/accounts/service.py": "from app.accounts import rotation\n",
            "app/accounts/rotation.py": "from .service import issue_pair\n",  # relative too
        },
    )
    assert problems(root) == [
        "modules import each other: "
        "app.accounts.rotation -> app.accounts.service -> app.accounts.rotation"
    ]
