"""Which way imports may go in app/ (issue 24), checked by `make lint`.

- app/config.py reaches no domain package (app/<package>/), not even through another module:
  the settings are read by everything, so anything they import is imported by everything.
- app.accounts reaches no other domain package: todos, lists and changes use accounts (the
  access rule, the current user's claims), never the other way round.
- Domain packages import each other in one direction only (no cycle between packages), and
  no two modules import each other, directly or round a longer loop.

Every import counts, also one inside a function or under TYPE_CHECKING: it is a dependency
all the same. Run: .venv/bin/python scripts/check_imports.py [ROOT]; exit status 1 and one line
per broken rule when any is.
"""

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

CONFIG = "app.config"
ACCOUNTS = "app.accounts"


def modules(root: Path) -> dict[str, Path]:
    """Every module under root/app, by dotted name (a package by its own name)."""
    found = {}
    for path in sorted((root / "app").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the module's package, up level - 1 more
            package = module.split(".")
            anchor = package if is_package else package[:-1]
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, *([base] if base else [])])
        yield base
        # `from app.accounts import users` imports the module app.accounts.users.
        yield from (f"{base}.{alias.name}" for alias in node.names)


def graph(root: Path) -> dict[str, set[str]]:
    """module -> the app modules it imports (a name that is no module counts as its package)."""
    known = modules(root)
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        targets = set()
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            for target in _imported(node, name, path.name == "__init__.py"):
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name and target != "app":
                    targets.add(target)
        edges[name] = targets
    return edges


def domain_packages(root: Path) -> set[str]:
    return {f"app.{p.parent.name}" for p in (root / "app").glob("*/__init__.py")}


def package_of(module: str, domains: set[str]) -> str | None:
    return next((d for d in domains if module == d or module.startswith(d + ".")), None)


def reached(edges: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """Every module `start` imports, directly or not, with the chain of imports that gets there."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        current = todo.pop()
        for target in sorted(edges.get(current, ())):
            if target not in paths:
                paths[target] = [*paths[current], target]
                todo.append(target)
    return paths


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One loop per strongly connected group of nodes (Tarjan), as the path round it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    loops = []
    for group in groups:
        inside = {n: edges.get(n, set()) & set(group) for n in group}
        start = group[0]
        back = next(n for n in group if start in inside[n])
        loops.append([*reached(inside, start)[back], start])
    return loops


def problems(root: Path) -> list[str]:
    edges = graph(root)
    domains = domain_packages(root)
    found = []
    for start, forbidden in ((CONFIG, domains), (ACCOUNTS, domains - {ACCOUNTS})):
        starts = [m for m in edges if m == start or m.startswith(start + ".")]
        for first in starts:
            for target, chain in sorted(reached(edges, first).items()):
                if package_of(target, forbidden) and not target.startswith(start):
                    found.append(f"{start} must not import {target}: {' -> '.join(chain)}")
                    break  # one chain per module is enough to act on
    between: dict[str, set[str]] = {}
    for module, targets in edges.items():
        package = package_of(module, domains)
        if package is not None:
            others = {package_of(t, domains) for t in targets} - {package, None}
            between.setdefault(package, set()).update(p for p in others if p is not None)
    for loop in cycles(between):
        found.append(f"packages import each other: {' -> '.join(loop)}")
    for loop in cycles(edges):
        found.append(f"modules import each other: {' -> '.join(loop)}")
    return sorted(set(found))


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    found = problems(root)
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
