"""Statements run in repositories: a call of execute / scalar / scalars / stream /
exec_driver_sql on a session or connection anywhere else in app/ is an error (issue 24).

Repositories are the modules named *repository.py; ALLOWED names the other places that may, each
with its reason. Run by `make lint` and tests/test_layers.py: `python tools/check_layers.py
[FILE ...]` (default: every module under app/).
"""

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = {"execute", "scalar", "scalars", "stream", "stream_scalars", "exec_driver_sql"}
RECEIVERS = {"session", "connection", "conn", "bind", "db"}
ALLOWED = {
    # Ids chosen by clients: the registry of lists' and todos' ids, which reads the changes
    # table (tombstones), so it sits above the domain packages (lists and todos use it).
    "app/client_ids.py": "client-chosen ids (lists and todos)",
    # Infrastructure, not a resource: migrations and their guard, readiness, the purge
    # loop's batches, the demo seed.
    "app/engines.py": "infrastructure (connection settings)",
    "app/migrations.py": "infrastructure",
    "app/migration_guard.py": "infrastructure",
    "app/health/probe.py": "infrastructure",
    "app/purge.py": "infrastructure",
    "app/changes/notifications.py": "infrastructure (the LISTEN connection's ping)",
    "app/demo.py": "infrastructure",
    # Shared placement and quota machinery: scope-generic statements both lists and todos use.
    "app/lists/ordering.py": "placement (lists and todos)",
    "app/quotas.py": "quotas (lists and todos)",
}


def _receiver_name(node: ast.expr) -> str | None:
    """The name a call is made on: session.execute -> session, self.session -> session,
    (await session.connection()).execute -> connection."""
    if isinstance(node, ast.Await):
        node = node.value
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def violations(path: Path, source: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source, str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr in RUNS and _receiver_name(node.func.value) in RECEIVERS:
            yield (
                f"{path}:{node.lineno}: {node.func.attr}() outside a repository: move the "
                "statement to the resource's repository.py (tools/check_layers.py)"
            )


def allowed(relative: str) -> bool:
    return relative.endswith("repository.py") or relative in ALLOWED


def main(argv: list[str]) -> int:
    paths = [Path(arg).resolve() for arg in argv] or sorted((ROOT / "app").rglob("*.py"))
    found = []
    for path in paths:
        relative = path.relative_to(ROOT).as_posix()
        if not allowed(relative):
            found += violations(Path(relative), path.read_text())
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
