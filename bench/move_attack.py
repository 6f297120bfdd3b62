"""The move attack (issue 29 HIGH 2): a measurement, beside the fault test that bounds it.

Starts the service as the fault tests do (gunicorn, 2 workers, PostgreSQL, the default
settings), gives one account a list of --todos todos (populated with SQL), and has --attackers
connections each move two todos in turn into their own gap of that list at --pace moves a
second, while another account reads its first page. Prints, and writes to
bench/results/move-attack-<date-time>.json: the moves' statuses and slowest time, the reader's
p99 idle and under attack, how many of the list's todos were ever rewritten (the whole list,
before renumbering around the gap), and what was left running afterwards.

    .venv/bin/python bench/move_attack.py [--todos 10000] [--attackers 4] [--pace 12]
        [--seconds 15] [--reads 200]   # about 40 s with these; --pace 0: unpaced

The fault test, tests/faults/test_rebalance_attack.py, runs the same with these defaults.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine  # noqa: E402

from tests.conftest import DEFAULT_POSTGRES_URL, TempPostgres  # noqa: E402
from tests.faults import move_attack  # noqa: E402
from tests.runtime.server import app_env, gunicorn  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--todos", type=int, default=10_000)
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--pace", type=float, default=12, help="moves a second per attacker")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--database-url", default=DEFAULT_POSTGRES_URL, help="an admin URL")
    args = parser.parse_args()
    database = TempPostgres.create(args.database_url, prefix="todo_bench_attack")
    observer = create_engine(database.url)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            env = app_env(database.url, Path(workdir), LOG_LEVEL="WARNING")
            with gunicorn(env, Path(workdir), workers=2) as server:
                result = move_attack.run(
                    server,
                    observer,
                    todos=args.todos,
                    attackers=args.attackers,
                    moves_per_second=args.pace or 1e9,
                    seconds=args.seconds,
                    reads=args.reads,
                )
    finally:
        observer.dispose()
        database.drop()
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "arguments": vars(args) | {"database_url": None},
        "result": result.summary(args.todos),
    }
    print(json.dumps(record, indent=2))
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S")
    (RESULTS / f"move-attack-{stamp}.json").write_text(json.dumps(record, indent=2) + "\n")


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == "__main__":
    main()
