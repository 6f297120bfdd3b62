"""What the stack allows: the service's health and todo read beside the best the stack can do.

Issue 17 set targets as ratios to the server's limit (bench/ceiling_asgi.py). This measures,
in the same interleaved rounds and under the same gunicorn setup as `make bench`, how far
the stack itself goes on the same two requests (bench/floor.py):

    server      a bare ASGI callable                     GET /
    ceiling     one FastAPI route                        GET /
    middleware  ceiling + the service's middleware       GET /      (request id, headers,
    middleware, no access line                           GET /       metrics, access line)
    health      the service                              GET /health
    read        FastAPI + SessionDep + one SELECT        GET /api/v1/todos/{id}
    read, asyncpg  FastAPI + an asyncpg pool + one SELECT
    get_todo    the service                              GET /api/v1/todos/{id}

    .venv/bin/python bench/floors.py          # BENCH_QUICK=1: one short round

Prints a table (req/s, p50, p99, x server) and writes bench/results/floors-<date-time>.json.
"""

import json
import sys
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import (
    DURATION,
    REPEAT,
    RESULTS,
    ROOT,
    WORK,
    _commit,
    _database,
    _machine,
    _median,
    _server,
    _service_env,
    seed,
    wrk,
)

GUNICORN = ["gunicorn", "-c", "gunicorn_conf.py"]
# name: (app, environment, wrk scenario); "service" is the service itself (start.sh).
REFERENCES: dict[str, tuple[str, dict[str, str], str]] = {
    "server": ("bench.ceiling_asgi:app", {}, "ceiling"),
    "ceiling": ("bench.ceiling:app", {}, "ceiling"),
    "middleware": ("bench.floor:middleware_app", {}, "ceiling"),
    "middleware, no access line": (
        "bench.floor:middleware_app",
        {"ACCESS_LOG": "false"},
        "ceiling",
    ),
    "health": ("service", {}, "health"),
    "read": ("bench.floor:read_app", {}, "get_todo"),
    "read, asyncpg": ("bench.floor:asyncpg_app", {}, "get_todo"),
    "get_todo": ("service", {}, "get_todo"),
}


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in REFERENCES}
    with ExitStack() as stack:
        database_url = stack.enter_context(_database())
        env = stack.enter_context(_service_env(database_url))
        # The service first: it migrates the database the others read.
        urls = {"service": stack.enter_context(_server(["./start.sh"], env, "service"))}
        engine = create_engine(database_url)
        try:
            data, _ = seed(engine)
        finally:
            engine.dispose()
        for name, (app, extra, _) in REFERENCES.items():
            if app != "service":
                command = [*GUNICORN, app]
                urls[name] = stack.enter_context(_server(command, {**env, **extra}, name))
        for name, (app, _, scenario) in REFERENCES.items():  # warm: pools full, statements ready
            wrk(urls["service" if app == "service" else name], scenario, duration=2, data=data)
        for _ in range(REPEAT):
            for name, (app, _, scenario) in REFERENCES.items():
                url = urls["service" if app == "service" else name]
                samples[name].append(wrk(url, scenario, data=data))
    report(samples)


def report(samples: dict[str, list[dict[str, Any]]]) -> None:
    server = _median(samples["server"])["rps"]
    rows = {name: {**_median(runs), "samples": [run["rps"] for run in runs]}
            for name, runs in samples.items()}  # fmt: skip
    for row in rows.values():
        row["ratio_server"] = round(row["rps"] / server, 4)
    rounds = f"median of {REPEAT}" if REPEAT > 1 else "one run"
    print(f"\n{_machine()}, {DURATION} s per run, {rounds}")
    print(f"{'':<28}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'x server':>10}")
    for name, row in rows.items():
        print(f"{name:<28}{row['rps']:>10.1f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
              f"{row['ratio_server']:>10.4f}")  # fmt: skip
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": _machine(),
        "duration_s": DURATION,
        "repeat": REPEAT,
        "runs": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"floors-{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
