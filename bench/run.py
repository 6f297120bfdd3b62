"""The load benchmark: `make bench` (BENCH_QUICK=1 for a run of under three minutes).

Starts the service as production does (start.sh, PostgreSQL, 2 workers, JSON logs), seeds
many users with todos, drives each scenario with wrk (bench/wrk/scenario.lua) at a fixed
concurrency, and measures two references under the same gunicorn setup in the same run:
the ceiling (bench/ceiling.py, one FastAPI route) and the server's limit (bench/ceiling_asgi.py,
a bare ASGI callable). After a warm-up, BENCH_REPEAT interleaved rounds of the references and
every scenario, each reported as its median round and as a ratio of both references. Then a
login storm, and lists at 1k and 1M todos. Prints a table and writes bench/results/<date-time>.json.

The service counts rate limits in a private Redis (tests/redis.py), at quotas high enough to
refuse nothing; a second copy with RATE_LIMIT_ENABLED=false serves the same database, and the
get_todo, list_todos, create_todo and update_todo rounds run against both, one after the
other: the limiter's cost, reported as each scenario's loss of throughput (ratio) with the
limits on (issue 25 budget: 10% of get and list).

BENCH_BASELINE=<git rev>: before and after in the same run (issue 24). The service as it was at
that commit (extracted with git archive into the work directory, started with its own start.sh
and this checkout's .venv, its own database migrated by its own code, seeded with the same
users, todos, ids and tokens) runs as one more variant, "baseline", every scenario on both in
each round; the report gives each scenario's ratio on both and the change (current/baseline - 1),
and with the limiter A/B the current service's limits-off figure against the baseline too.

PostgreSQL: BENCH_DATABASE_URL (a server where databases may be created), else the local
one at 127.0.0.1:5432; the run creates its own database and drops it afterwards.
"""

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import httpx2 as httpx
from sqlalchemy import MetaData, Table, create_engine, insert, text
from sqlalchemy.engine import Engine, make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.accounts.models import User  # noqa: E402
from app.accounts.security import PasswordHasher, TokenCodec  # noqa: E402
from app.config import Settings  # noqa: E402
from app.engines import create_migration_engine  # noqa: E402
from app.migrations import upgrade_to_head  # noqa: E402
from app.pagination import encode_cursor  # noqa: E402
from app.todos.models import Todo  # noqa: E402
from app.todos.pagination import query_signature  # noqa: E402
from app.todos.schemas import TodoListQuery  # noqa: E402
from bench import lists_10k  # noqa: E402
from tests.otlp import Receiver, http_receiver  # noqa: E402
from tests.pgbouncer import pgbouncer  # noqa: E402
from tests.redis import redis_server  # noqa: E402

QUICK = os.environ.get("BENCH_QUICK") == "1"
# Seconds per measured run; BENCH_DURATION=N for a short check of a scenario (not a figure).
DURATION = int(os.environ.get("BENCH_DURATION") or (5 if QUICK else 15))
# Each scenario (and the ceiling) is measured this many times, in interleaved rounds, and
# reported as the median: this machine's speed drifts by tens of percent within minutes.
REPEAT = int(os.environ.get("BENCH_REPEAT") or (1 if QUICK else 3))
WARMUP = 2  # seconds of each scenario before the first round, not measured
CONNECTIONS, WORKERS, WRK_THREADS = 32, 2, 2
USERS, TODOS_PER_USER, DELETABLE_PER_USER = 200, 40, 20
# The changes scenario reads a first feed page of 100 for users of its own, each with more
# than a page of lists and todos (the others keep the todo scenarios as they were).
FEED_USERS, FEED_TODOS_PER_USER = 20, 150
PASSWORD = "bench-password-1"  # noqa: S105 - throwaway accounts in a throwaway database
SECRET = "bench-signing-key-" + "x" * 40
SCRIPT = ROOT / "bench" / "wrk" / "scenario.lua"
RESULTS = ROOT / "bench" / "results"
WORK = Path(os.environ.get("BENCH_WORKDIR", Path(tempfile.gettempdir()) / "todo-bench"))
DEFAULT_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
# Login last: wrk stops sending, but the server still works through a queue of bcrypt hashes.
# update_todo changes the row every time; update_noop is the PATCH that changes nothing (the
# no-write path), its own line.
# create_crowded: the same creates as create_todo, but all into 6 users' lists (their default
# ones), so concurrent appends meet in the same list (issue 24: within 20% of create_todo).
# list_*_10k: pages of 20 of one user's 10,000 todos, labelled and with subtasks
# (bench/lists_10k.py): plain, label=, parent_id=, top_level=; the others also as multiples
# of the plain one.
ALL_SCENARIOS = (
    "health,get_todo,list_todos,list_plain_10k,list_labelled_10k,list_parent_10k,"
    "list_top_level_10k,create_todo,create_crowded,update_todo,update_noop,mixed,changes,"
    "changes_wait,login"
)
# changes_wait: get_todo's reads while LONG_POLLS feed requests wait for a change
# (bench/long_polls.py, a process of its own): reported beside get_todo, their ratio is what
# the waiting polls cost everyone else (API.md: "as fast as before").
LONG_POLLS = 500
WAITING_SEEN: list[int] = []  # how many the server reported waiting, per changes_wait run
CROWDED_USERS = 6
# BENCH_SCENARIOS=get_todo,list_todos: only those (and no login storm or scale runs), for A/B.
SCENARIOS = os.environ.get("BENCH_SCENARIOS", ALL_SCENARIOS).split(",")
PARTIAL = "BENCH_SCENARIOS" in os.environ
# The rate limiter's A/B: these scenarios run against the service with limits off too. The
# issue 25 budget names get and list; creates and updates are here for BENCH_BASELINE, whose
# older service may have had no limiter: their limits-off figure is the like-for-like one.
LIMITER_AB = [
    name for name in ("get_todo", "list_todos", "create_todo", "update_todo") if name in SCENARIOS
]
LIMITS_OFF = "limits-off"  # the variant: "get_todo/limits-off"
LIMITER_BUDGET = 0.10  # the most of its ratio a scenario may lose to the limiter
# Counted, never refused: wrk's users each send far less, and every login comes from 127.0.0.1.
QUOTA = "100000000/minute"
# BENCH_POOLER=pgbouncer: the service reaches PostgreSQL through PgBouncer in transaction mode
# (DB_POOLER=transaction, migrated beforehand over a direct connection), as on Kubernetes.
POOLER = os.environ.get("BENCH_POOLER") or None
# BENCH_TRACING=1: tracing's cost, A/B. Beside the service as it runs by default (tracing off),
# the same service exporting to a real OTLP receiver (tests/otlp.py, in this process) with
# every trace sampled, and with a tenth (parentbased_traceidratio 0.1); every scenario runs
# on all three in each round, and the report gives each one's loss against the first.
TRACING = os.environ.get("BENCH_TRACING") == "1"
TRACED_VARIANTS = {
    "traced": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    "sampled": {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    },
}
# BENCH_BASELINE=<git rev>: the service at that commit, as the variant "baseline" (it ran with
# the settings it knew, limiter and all, as this one runs as shipped). A scenario's change
# against it is "within" when it lost no more than the tolerance (issue 24: 5%).
BASELINE_REV = os.environ.get("BENCH_BASELINE") or None
BASELINE = "baseline"
BASELINE_TOLERANCE = 0.05
# What the baseline does not run: before issue 28 a feed request with wait= answers at once
# (its 500 polls would be a storm, not a wait); a baseline from before labels and subtasks
# (its schema has neither: seed_lists_10k) skips the list_*_10k scenarios.
BASELINE_SKIPS = {"changes_wait"}
# The statuses each scenario must be answered with. Anything else (a cheap 422, a 503 from a
# full hash queue, a 404) would flatter its figures: the run reports it and exits 1.
EXPECTED = {
    "mixed": frozenset({200, 201, 204}),
    "create_todo": frozenset({201}),
    "create_crowded": frozenset({201}),
}
OK = frozenset({200})
UNEXPECTED: list[str] = []  # every run whose answers were not all expected, in order
SERVED: Counter[str] = Counter()  # requests wrk sent to each server, warm-ups included


def main() -> None:
    # Stopped from outside (SIGTERM, as `kill` sends): unwind, so the servers and the database
    # this run started are stopped and dropped instead of left behind holding connections.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench does this)")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "machine": _machine(),
        "workers": WORKERS,
        "connections": CONNECTIONS,
        "duration_s": DURATION,
        "repeat": REPEAT,
        "quick": QUICK,
        "pooler": POOLER,
        "tracing_ab": TRACING,
        "baseline": BASELINE_REV,
    }
    ceiling_cmd = ["gunicorn", "-c", "gunicorn_conf.py", "bench.ceiling:app"]
    server_cmd = ["gunicorn", "-c", "gunicorn_conf.py", "bench.ceiling_asgi:app"]
    with (
        _database() as database_url,
        _server(ceiling_cmd, {}, "ceiling") as ceiling_url,
        _server(server_cmd, {}, "server") as server_url,
        _service_env(database_url) as env,
        _server(["./start.sh"], env, "service") as url,
        _limits_off(env) as off_url,
        _traced_services(env) as traced,
        _baseline(env) as baseline,
    ):
        engine = create_engine(database_url)
        engines = [engine] + ([create_engine(baseline.database_url)] if baseline else [])
        try:
            data, deletable = seed(engines)
            services = {"": url, **({LIMITS_OFF: off_url} if LIMITER_AB else {})}
            services.update({variant: service for variant, (service, _) in traced.items()})
            if baseline:
                services[BASELINE] = baseline.url
                results["baseline_commit"] = baseline.commit
            for name in SCENARIOS:  # every path warm: pools full, statements prepared
                if name != "login":
                    for variant, service in services.items():
                        if _runs_on(variant, name):
                            wrk(service, name, duration=WARMUP, data=_data(name, data),
                                delete=deletable.take(name))  # fmt: skip
            # A login alone, before any login run: how fast an idle bcrypt queue answers.
            alone = min(_login_seconds(url, data) for _ in range(3))
            references = {"ceiling": ceiling_url, "server": server_url}
            receivers = {variant: receiver for variant, (_, receiver) in traced.items()}
            samples = _rounds(references, services, data, deletable, receivers)
            for reference in ("ceiling", "server"):
                runs = samples.pop(reference)
                results[f"{reference}_rps"] = _median(runs)["rps"]
                results[f"{reference}_samples"] = [run["rps"] for run in runs]
            results["scenarios"] = {
                name: _figures(runs, results["ceiling_rps"], results["server_rps"])
                for name, runs in samples.items()
            }
            results["rate_limit_cost"] = _limiter_cost(results["scenarios"])
            if baseline:
                results["baseline_change"] = _baseline_change(results["scenarios"])
            results["waiting_cost"] = _waiting_cost(results["scenarios"])
            results["lists_10k"] = lists_10k.versus_plain(results["scenarios"])
            if not PARTIAL:
                results["login_storm"] = login_storm(url, data, alone)
                results["scale"] = scale(engine, url)
        finally:
            for each in engines:
                each.dispose()
    if traced:  # now that the services stopped, and flushed what they held
        results["tracing"] = _tracing_costs(results["scenarios"], traced)
    results["unexpected_statuses"] = UNEXPECTED
    report(results)
    if UNEXPECTED:
        lines = "\n  ".join(UNEXPECTED)
        raise SystemExit(f"UNEXPECTED STATUSES: these figures measure errors too:\n  {lines}")


def _rounds(
    references: dict[str, str],
    services: dict[str, str],
    data: Path,
    deletable: "Deletable",
    receivers: dict[str, Receiver],
) -> dict[str, list[dict[str, Any]]]:
    """REPEAT rounds of the references (the ceilings) and every scenario, one after another;
    each scenario on every service it runs on ("get_todo", then "get_todo/limits-off",
    "get_todo/traced", ...: _runs_on)."""
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in references}
    for name in SCENARIOS:  # the report's order: each scenario, then its variants
        for variant in services:
            if _runs_on(variant, name):
                samples[f"{name}/{variant}" if variant else name] = []
    for round_number in range(REPEAT):
        for reference, reference_url in references.items():
            samples[reference].append(wrk(reference_url, "ceiling"))
        for position, name in enumerate(SCENARIOS):
            # The services take turns going first: the machine drifts, and a write scenario
            # leaves more rows for the next run than the one before had.
            turn = (round_number + position) % len(services)
            order = list(services.items())
            for variant, url in order[turn:] + order[:turn]:
                if not _runs_on(variant, name):
                    continue
                with _long_polls(url, data) if name == "changes_wait" else nullcontext():
                    run = wrk(url, name, data=_data(name, data), delete=deletable.take(name))
                samples.setdefault(f"{name}/{variant}" if variant else name, []).append(run)
                _drain(url)
                if variant in receivers:  # its workers still encoding a backlog of spans
                    _quiet(receivers[variant])
                if os.environ.get("BENCH_PROFILE"):  # hold the server for a profiler
                    time.sleep(float(os.environ["BENCH_PROFILE"]))
    return samples


def _runs_on(variant: str, scenario: str) -> bool:
    """The limiter's A/B runs only LIMITER_AB on the service with limits off; the tracing
    variants run every scenario, the baseline every one it can answer (BASELINE_SKIPS)."""
    if variant == BASELINE and scenario in BASELINE_SKIPS:
        return False
    return variant != LIMITS_OFF or scenario in LIMITER_AB


def _limiter_cost(scenarios: dict[str, Any]) -> dict[str, Any]:
    """Each A/B scenario's ratio with the limiter on and off, and the share it lost."""
    cost: dict[str, Any] = {}
    for name in LIMITER_AB:
        on, off = scenarios[name]["ratio"], scenarios[f"{name}/{LIMITS_OFF}"]["ratio"]
        loss = round(1 - on / off, 4)
        cost[name] = {"ratio_on": on, "ratio_off": off, "loss": loss,
                      "within_budget": loss <= LIMITER_BUDGET}  # fmt: skip
    return cost


def _waiting_cost(scenarios: dict[str, Any]) -> dict[str, Any]:
    """get_todo's ratio with LONG_POLLS feed requests waiting and without, and the share lost."""
    if not {"get_todo", "changes_wait"} <= scenarios.keys():
        return {}
    alone, crowded = scenarios["get_todo"]["ratio"], scenarios["changes_wait"]["ratio"]
    return {"long_polls": LONG_POLLS, "waiting_seen": WAITING_SEEN,
            "ratio_without": alone, "ratio_with": crowded,
            "loss": round(1 - crowded / alone, 4)}  # fmt: skip


def _baseline_change(scenarios: dict[str, Any]) -> dict[str, Any]:
    """Each scenario's ratio on this commit and on the baseline, and the change
    (current/baseline - 1); beside it, the current service with limits off where the limiter's
    A/B ran (the baseline may have had no limiter: this separates its cost from the rest)."""
    change: dict[str, Any] = {}
    for name, current in scenarios.items():
        base = scenarios.get(f"{name}/{BASELINE}")
        if "/" in name or base is None:
            continue
        entry = {"ratio": current["ratio"], "ratio_baseline": base["ratio"],
                 "change": round(current["ratio"] / base["ratio"] - 1, 4)}  # fmt: skip
        entry["within_tolerance"] = entry["change"] >= -BASELINE_TOLERANCE
        off = scenarios.get(f"{name}/{LIMITS_OFF}")
        if off is not None:
            entry["ratio_limits_off"] = off["ratio"]
            entry["change_limits_off"] = round(off["ratio"] / base["ratio"] - 1, 4)
        change[name] = entry
    return change


class Baseline(NamedTuple):
    url: str
    database_url: str
    commit: str


@contextmanager
def _baseline(env: dict[str, str]) -> Iterator[Baseline | None]:
    """BENCH_BASELINE: the service at that commit, from its own files (git archive into the
    work directory, removed afterwards), on a database of its own that its start.sh migrates
    with its own migrations, with the same settings as this one (what it does not know, it
    ignores)."""
    if BASELINE_REV is None:
        yield None
        return
    if POOLER is not None:  # its database would need migrating by its own code, directly
        raise SystemExit("BENCH_BASELINE with BENCH_POOLER: not supported; run them apart")
    git = partial(subprocess.run, cwd=ROOT, capture_output=True, check=True)
    try:
        commit = git(["git", "rev-parse", "--short", f"{BASELINE_REV}^{{commit}}"], text=True)
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"BENCH_BASELINE={BASELINE_REV}: {error.stderr.strip()}") from None
    checkout = WORK / "baseline"
    checkout.mkdir()
    try:
        archive = git(["git", "archive", "--format=tar", commit.stdout.strip()]).stdout
        subprocess.run(["tar", "-x", "-C", str(checkout)], input=archive, check=True)  # noqa: S603, S607
        with _database() as database_url:
            settings = {**env, "DATABASE_URL": database_url}
            _check_imports(checkout, settings)
            with _server(["./start.sh"], settings, BASELINE, cwd=checkout) as url:
                yield Baseline(url, database_url, commit.stdout.strip())
    finally:
        shutil.rmtree(checkout, ignore_errors=True)


def _check_imports(checkout: Path, env: dict[str, str]) -> None:
    """The baseline's app imports with this checkout's .venv (a superset of what older
    commits needed); if a module it needs is missing, say which, not a server that exited."""
    python = str(ROOT / ".venv" / "bin" / "python")
    check = subprocess.run(  # noqa: S603
        [python, "-c", "import app.main"], cwd=checkout, env={**os.environ, **env},
        capture_output=True, text=True,
    )  # fmt: skip
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["(no output)"])[-1]
        hint = " (this checkout's .venv lacks it)" if "ModuleNotFoundError" in last else ""
        raise SystemExit(f"the baseline {BASELINE_REV} does not import: {last}{hint}")


def _quiet(receiver: Receiver) -> None:
    """Wait until a traced service has stopped exporting (no span arrived for a second, at
    most 30 s): the next run must not share the CPU with the last one's spans."""
    deadline, last = time.monotonic() + 30, -1
    while receiver.received != last and time.monotonic() < deadline:
        last = receiver.received
        time.sleep(1)


@contextmanager
def _traced_services(env: dict[str, str]) -> Iterator[dict[str, tuple[str, Receiver]]]:
    """BENCH_TRACING: the service again for each variant, each exporting to a receiver of its
    own (which counts the spans: a variant that exported nothing would measure nothing)."""
    if not TRACING:
        yield {}
        return
    with ExitStack() as stack:
        traced = {}
        for variant, sampler in TRACED_VARIANTS.items():
            receiver = stack.enter_context(http_receiver(keep=False))
            otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **sampler}
            url = stack.enter_context(_server(["./start.sh"], {**env, **otel}, variant))
            traced[variant] = (url, receiver)
        yield traced


def _tracing_costs(
    scenarios: dict[str, dict[str, Any]], traced: dict[str, tuple[str, Receiver]]
) -> dict[str, Any]:
    """Each variant's throughput lost against tracing off, per scenario, and the spans its
    receiver got per request sent to it (sampled should get about a tenth of traced's)."""
    costs: dict[str, Any] = {}
    for variant, (url, receiver) in traced.items():
        served = SERVED[url]
        if receiver.received == 0:
            UNEXPECTED.append(f"{variant}: its receiver got no spans (tracing was not on)")
        costs[variant] = {
            "spans_per_request": round(receiver.received / max(served, 1), 2),
            "loss": {
                name: round(1 - scenarios[f"{name}/{variant}"]["rps"] / s["rps"], 3)
                for name, s in scenarios.items()
                if "/" not in name and f"{name}/{variant}" in scenarios
            },
        }
    return costs


def _figures(runs: list[dict[str, Any]], ceiling_rps: float, server_rps: float) -> dict[str, Any]:
    """A scenario's median round, as ratios of both references, and its tail (p99/p50)."""
    median = _median(runs)
    return {
        **median,
        "ratio": round(median["rps"] / ceiling_rps, 4),
        "ratio_server": round(median["rps"] / server_rps, 4),
        "p99_over_p50": round(median["p99_ms"] / median["p50_ms"], 2) if median["p50_ms"] else None,
        "samples": [run["rps"] for run in runs],
    }


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (its latencies with it: one real run, not a mix)."""
    ordered = sorted(runs, key=lambda run: run["rps"])
    return dict(ordered[(len(ordered) - 1) // 2])


def wrk(
    url: str,
    scenario: str,
    *,
    connections: int = CONNECTIONS,
    threads: int = WRK_THREADS,
    duration: int = DURATION,
    data: Path | None = None,
    delete: Path | None = None,
    path: str | None = None,
    statuses: bool = False,
) -> dict[str, Any]:
    """One wrk run. `statuses`: count each status (costs wrk some CPU per response); without
    it, wrk's own count of statuses >= 400 and socket errors is what is checked."""
    env = {
        **os.environ,
        "SCENARIO": scenario,
        "WRK_THREADS": str(threads),
        "BENCH_PASSWORD": PASSWORD,
        "BENCH_STATUSES": "1" if statuses else "0",
    }
    env.update(
        {
            k: str(v)
            for k, v in (("BENCH_DATA", data), ("BENCH_DELETE", delete), ("BENCH_PATH", path))
            if v
        }
    )
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "30s",
               "-s", str(SCRIPT), url]  # fmt: skip
    run = subprocess.run(command, env=env, capture_output=True, text=True, check=True)  # noqa: S603
    figures = _figures_of(scenario, url, run.stdout)
    SERVED[url] += figures["requests"]
    return figures


def _figures_of(scenario: str, url: str, output: str) -> dict[str, Any]:
    """wrk's JSON line as figures; answers the scenario does not expect go to UNEXPECTED."""
    raw = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    seconds = raw["duration_us"] / 1e6
    counted = {int(status): n for status, n in raw["statuses"].items()}
    expected = EXPECTED.get(scenario, OK)
    wrong = {status: n for status, n in counted.items() if status not in expected}
    if raw["non2xx"] or raw["socket_errors"] or wrong:
        UNEXPECTED.append(
            f"{scenario} at {url}: {raw['requests']} requests, {raw['non2xx']} answered >= 400, "
            f"{raw['socket_errors']} socket errors, statuses {counted or 'not counted'}"
        )
    return {
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "non2xx": raw["non2xx"] + raw["socket_errors"],
        "requests": raw["requests"],
        **({"statuses": counted} if counted else {}),
    }


class Deletable:
    """Todos the mixed scenario may delete: each wrk run gets its own share, so none is
    deleted twice (a second delete would be a 404)."""

    def __init__(self, lines: list[str], runs: int) -> None:
        self._lines, self._share, self._runs = lines, len(lines) // runs, 0

    def take(self, scenario: str) -> Path | None:
        if scenario != "mixed":
            return None
        share, self._lines = self._lines[: self._share], self._lines[self._share :]
        self._runs += 1
        path = WORK / f"deletable-{self._runs}.txt"
        path.write_text("".join(f"{line}\n" for line in share))
        return path


def seed(engines: list[Engine]) -> tuple[Path, Deletable]:
    """Users sharing one real bcrypt hash, their todos, and real tokens minted with the key;
    the same rows (ids, emails, tokens) in each database: the service's, and the baseline's."""
    hasher = PasswordHasher(12)
    hashed = hasher.hash(PASSWORD)
    hasher.close()
    codec = TokenCodec(Settings(_env_file=None, secret_key=SECRET, access_token_expire_minutes=600))
    now = datetime.now(UTC)
    users = [
        {"id": uuid.uuid4(), "email": f"bench-{i}@example.com", "hashed_password": hashed,
         "is_active": True, "is_superuser": False, "created_at": now, "updated_at": now}
        for i in range(USERS + FEED_USERS)
    ]  # fmt: skip
    todos, lines, deletable, feed = [], [], [], []
    for i, user in enumerate(users):
        token = codec.encode_access(user["id"], 0)  # a new user's credential generation
        count = TODOS_PER_USER + DELETABLE_PER_USER if i < USERS else FEED_TODOS_PER_USER
        for n in range(count):
            todo_id = uuid.uuid4()
            todos.append(
                _todo(todo_id, user["id"], f"todo {n}", now - timedelta(seconds=n))
                | {"position": f"{n + 1:010d}"}
            )
            target = feed if i >= USERS else lines if n < TODOS_PER_USER else deletable
            target.append(f"{token} {todo_id} {user['email']}")
    _insert(engines[0], users, todos, (User.__table__, Todo.__table__))  # type: ignore[arg-type]
    for baseline in engines[1:]:
        reflected = MetaData()
        tables = (Table("users", reflected, autoload_with=baseline),
                  Table("todos", reflected, autoload_with=baseline))  # fmt: skip
        _insert(baseline, users, todos, tables)
    if any(name in lists_10k.SCENARIOS for name in SCENARIOS):
        seed_lists_10k(engines, codec, now)
    data = WORK / "todos.txt"
    data.write_text("\n".join(lines) + "\n")
    (WORK / "feed.txt").write_text("\n".join(feed) + "\n")
    crowded = {user["email"] for user in users[:CROWDED_USERS]}
    (WORK / "crowded.txt").write_text(
        "\n".join(line for line in lines if line.split()[2] in crowded) + "\n"
    )
    # The warm-up, then each round, on each service that runs mixed (BENCH_TRACING: three of
    # them; BENCH_BASELINE: one more, in a database of its own, but counted all the same).
    services = 1 + len(TRACED_VARIANTS) * TRACING + (len(engines) - 1)
    return data, Deletable(deletable, runs=(1 + REPEAT) * services)


def _insert(
    engine: Engine,
    users: list[dict[str, Any]],
    todos: list[dict[str, Any]],
    tables: tuple[Table, Table],
) -> None:
    """The users, then their todos into each one's Inbox (made by the database's trigger).
    Only the columns the tables have: a baseline's older schema may lack some of today's."""
    user_table, todo_table = tables
    with engine.begin() as connection:
        connection.execute(insert(user_table), [_columns(user_table, row) for row in users])
        inboxes = dict(connection.execute(text("SELECT owner_id, id FROM lists")).all())
        rows = [_columns(todo_table, row | {"list_id": inboxes[row["owner_id"]]}) for row in todos]
        connection.execute(insert(todo_table), rows)
        connection.execute(text("ANALYZE"))


def seed_lists_10k(engines: list[Engine], codec: TokenCodec, now: datetime) -> None:
    """The list_*_10k scenarios' user and todos (bench/lists_10k.py), the same rows in each
    database whose schema has labels and subtasks; a baseline's without them skips the
    scenarios. Their data file: a line per parent, "token parent_id email" (the scenarios read
    the token; a parent_id= page, as BENCH_PATH, can take a parent from it)."""
    user_id = uuid.uuid4()
    user: dict[str, Any] = {
        "id": user_id, "email": "bench-10k@example.com", "hashed_password": "x",
        "is_active": True, "is_superuser": False, "created_at": now, "updated_at": now,
    }  # fmt: skip
    todos, labels, parents = lists_10k.rows(user_id, lists_10k.TODOS, now)
    for engine in engines:
        if not lists_10k.has_schema(engine):
            BASELINE_SKIPS.update(lists_10k.SCENARIOS)
            continue
        reflected = MetaData()
        users_table, todos_table, labels_table = (
            Table(name, reflected, autoload_with=engine)
            for name in ("users", "todos", "todo_labels")
        )
        with engine.begin() as connection:
            tables = (users_table, todos_table, labels_table)
            lists_10k.insert_user(connection, tables, user, todos, labels)
            connection.execute(text("ANALYZE"))
    token = codec.encode_access(user_id, 0)
    (WORK / "lists-10k.txt").write_text("".join(f"{token} {p} {user['email']}\n" for p in parents))


def _columns(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key in table.c}


def _data(scenario: str, data: Path) -> Path:
    files = {"changes": "feed.txt", "create_crowded": "crowded.txt"}
    files.update(dict.fromkeys(lists_10k.SCENARIOS, "lists-10k.txt"))
    return WORK / files[scenario] if scenario in files else data


def _todo(todo_id: uuid.UUID, owner: uuid.UUID, title: str, created: datetime) -> dict[str, Any]:
    return {"id": todo_id, "owner_id": owner, "title": title, "completed": False, "priority": 1,
            "created_at": created, "updated_at": created, "version": 1}  # fmt: skip


def login_storm(url: str, data: Path, alone: float) -> dict[str, Any]:
    """While wrk hammers the token endpoint, do health and authenticated reads still flow?
    The storm's own statuses are counted: logins refused cheaply would be no storm."""
    _drain_logins(url, data, alone)
    reads = {"connections": 8, "threads": 1, "data": data}
    before = wrk(url, "get_todo", **reads)
    storm = _wrk_background(url, "login", DURATION + 4, data)
    try:
        time.sleep(2)
        with _parallel() as run:
            health = run(url, "health", connections=2, threads=1)
            during = run(url, "get_todo", **reads)
    finally:
        output, _ = storm.communicate(timeout=DURATION + 60)
        _drain(url)
    logins = _figures_of("login", url, output)
    return {
        "health_p99_ms": health()["p99_ms"],
        "reads_rps_before": before["rps"],
        "reads_rps_during": during()["rps"],
        "logins": logins["requests"],
        "login_statuses": logins.get("statuses", {}),
    }


def scale(engine: Engine, url: str) -> dict[str, Any]:
    """First page and a page deep in the list, for a user with 1k and one with 1M todos.
    Statuses counted: a cursor refused with a cheap 422 would make a deep page look free."""
    sizes = {"1k": 1_000} if QUICK else {"1k": 1_000, "1m": 1_000_000}
    figures: dict[str, Any] = {}
    for label, count in sizes.items():
        token, deep_cursor = _big_user(engine, count)
        data = WORK / f"user-{label}.txt"
        data.write_text(f"{token} - bench-{label}@example.com\n")
        page = partial(wrk, url, "page", connections=4, threads=1, data=data, statuses=True)
        first = page(path="/api/v1/todos?limit=20")
        deep = page(path=f"/api/v1/todos?limit=20&cursor={deep_cursor}")
        figures[f"first_page_{label}_p50_ms"] = first["p50_ms"]
        figures[f"deep_page_{label}_p50_ms"] = deep["p50_ms"]
        figures[f"first_page_{label}_statuses"] = first["statuses"]
        figures[f"deep_page_{label}_statuses"] = deep["statuses"]
    return figures


def _big_user(engine: Engine, count: int) -> tuple[str, str]:
    """A user with `count` todos (inserted by PostgreSQL itself), a token, and a cursor 90% in."""
    user_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, email, hashed_password, is_active, is_superuser,"
                " created_at, updated_at) VALUES (:id, :email, 'x', true, false, now(), now())"
            ),
            {"id": user_id, "email": f"big-{count}-{user_id.hex[:6]}@example.com"},
        )
        connection.execute(
            text(
                "INSERT INTO todos (id, owner_id, title, completed, priority, created_at,"
                " updated_at, version, list_id, position) SELECT gen_random_uuid(), :owner,"
                " 'todo ' || g, false, g % 3, now() - g * interval '1 millisecond', now(), 1,"
                " (SELECT id FROM lists WHERE owner_id = :owner AND is_default),"
                " lpad(CAST(g AS TEXT), 10, '0') FROM generate_series(1, :count) AS g"
            ),
            {"owner": user_id, "count": count},
        )
        connection.execute(text("ANALYZE todos"))
        created_at, todo_id = connection.execute(
            text(
                "SELECT created_at, id FROM todos WHERE owner_id = :owner"
                " ORDER BY created_at DESC, id DESC OFFSET :offset LIMIT 1"
            ),
            {"owner": user_id, "offset": int(count * 0.9)},
        ).one()
    codec = TokenCodec(Settings(_env_file=None, secret_key=SECRET, access_token_expire_minutes=600))
    fingerprint = query_signature(TodoListQuery())
    cursor = encode_cursor(fingerprint, created_at.astimezone(UTC).isoformat(), todo_id)
    return codec.encode_access(user_id, 0), cursor


def report(results: dict[str, Any]) -> None:
    ceiling = results["ceiling_rps"]
    setup = f"{results['workers']} workers, {results['connections']} connections"
    rounds = f"median of {results['repeat']}" if results["repeat"] > 1 else "one run"
    print(f"\n{results['machine']}, {setup}, {results['duration_s']} s per scenario, {rounds}")
    print(f"ceiling (one FastAPI route): {ceiling:.0f} req/s (runs: {results['ceiling_samples']})")
    print(
        f"server (bare ASGI): {results['server_rps']:.0f} req/s (runs: {results['server_samples']})"
    )
    width = max(14, *(len(name) + 1 for name in results["scenarios"]))
    print(f"{'scenario':<{width}}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'p99/p50':>9}"
          f"{'non-2xx':>9}{'x ceiling':>11}{'x server':>10}")  # fmt: skip
    for name, s in results["scenarios"].items():
        print(f"{name:<{width}}{s['rps']:>10.1f}{s['p50_ms']:>10.2f}{s['p99_ms']:>10.2f}"
              f"{s['p99_over_p50'] or 0:>9.2f}{s['non2xx']:>9}{s['ratio']:>11.3f}"
              f"{s['ratio_server']:>10.4f}")  # fmt: skip
    for name, cost in results.get("rate_limit_cost", {}).items():
        verdict = "within" if cost["within_budget"] else "OVER"
        ratios = f"ratio {cost['ratio_on']:.3f} on, {cost['ratio_off']:.3f} off"
        print(f"rate limiter on {name}: {ratios}: {cost['loss']:+.1%} lost, "
              f"{verdict} the {LIMITER_BUDGET:.0%} budget")  # fmt: skip
    for name, change in results.get("baseline_change", {}).items():
        verdict = "within" if change["within_tolerance"] else "OVER"
        line = (f"{name} against baseline {results['baseline_commit']}: ratio "
                f"{change['ratio']:.3f} now, {change['ratio_baseline']:.3f} then: "
                f"{change['change']:+.1%}")  # fmt: skip
        if "ratio_limits_off" in change:
            line += (f" (limits off: {change['ratio_limits_off']:.3f}, "
                     f"{change['change_limits_off']:+.1%})")  # fmt: skip
        print(f"{line}, {verdict} the {BASELINE_TOLERANCE:.0%} tolerance")
    if waiting := results.get("waiting_cost"):
        print(f"get_todo with {waiting['long_polls']} feed requests waiting "
              f"(server saw {waiting['waiting_seen']}): ratio "
              f"{waiting['ratio_with']:.3f}, without {waiting['ratio_without']:.3f}: "
              f"{waiting['loss']:+.1%} lost")  # fmt: skip
    for name, multiple in results.get("lists_10k", {}).items():
        verdict = "within" if multiple["within_target"] else "OVER"
        print(f"{name}: {multiple['x_plain']:.2f}x the cost of {lists_10k.PLAIN} (its req/s "
              f"over this one's), {verdict} the {lists_10k.TARGET:g}x target")  # fmt: skip
    for variant, cost in results.get("tracing", {}).items():
        losses = ", ".join(f"{name} {loss:+.1%}" for name, loss in cost["loss"].items())
        print(f"tracing {variant}: throughput lost {losses}; "
              f"{cost['spans_per_request']} spans exported per request")  # fmt: skip
    for extra in ("login_storm", "scale"):
        if extra in results:
            print(f"{extra}:", json.dumps(results[extra]))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC).strftime('%Y-%m-%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {path.relative_to(ROOT)}")


def _drain(url: str) -> None:
    """Wait until the server is idle again (queued logins done), so runs do not overlap."""
    deadline, quick_answers = time.monotonic() + 60, 0
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline and quick_answers < 5:
            start = time.monotonic()
            client.get("/health")
            quick_answers = quick_answers + 1 if time.monotonic() - start < 0.02 else 0
            time.sleep(0.1)


def _login_seconds(url: str, data: Path) -> float:
    """One login on a new connection (so on either worker), answered 200: its seconds."""
    email = data.read_text().split("\n", 1)[0].split()[2]
    started = time.monotonic()
    response = httpx.post(
        url + "/api/v1/auth/token", data={"username": email, "password": PASSWORD}, timeout=120
    )
    if response.status_code != 200:
        raise SystemExit(f"a probe login was answered {response.status_code}: {response.text}")
    return time.monotonic() - started


def _drain_logins(url: str, data: Path, alone: float) -> None:
    """Wait until the workers' bcrypt queues are empty. wrk stops sending at the end of the
    login run, but the logins it had in flight are still queued (each worker hashes one at a
    time, in a low-priority thread that leaves /health fast, so _drain cannot see them); a
    storm started on them finds the queues full and is answered 503 at once, thousands of
    cheap answers instead of a storm. Empty: four logins in a row, each on a new connection,
    about as fast as one alone."""
    deadline, quick = time.monotonic() + 180, 0
    while quick < 4:
        if time.monotonic() > deadline:
            raise SystemExit("the bcrypt queues did not drain within 180 s")
        quick = quick + 1 if _login_seconds(url, data) < 2 * alone + 0.1 else 0


def _commit() -> str | None:
    """The commit measured (with "+" if the tree had changes), when run from a git checkout."""
    try:
        run = partial(subprocess.run, cwd=ROOT, capture_output=True, text=True, check=True)
        commit = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+" if dirty else "")


def _machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )  # fmt: skip
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


@contextmanager
def _database() -> Iterator[str]:
    admin = os.environ.get(
        "BENCH_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    name = f"todo_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin).set(database=name).render_as_string(False)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@contextmanager
def _service_env(database_url: str) -> Iterator[dict[str, str]]:
    with redis_server(WORK) as redis:
        env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET, "ENVIRONMENT": "production",
               "RATE_LIMIT_STORAGE": redis.url, "RATE_LIMIT_USER": QUOTA,
               "RATE_LIMIT_ADDRESS": QUOTA}  # fmt: skip
        yield from _pooled(env, database_url)


def _pooled(env: dict[str, str], database_url: str) -> Iterator[dict[str, str]]:
    if POOLER is None:
        yield env
        return
    if POOLER != "pgbouncer":
        raise SystemExit(f"BENCH_POOLER={POOLER}: only pgbouncer is known")
    settings = Settings(
        _env_file=None, database_url=database_url, migration_lock_path=WORK / "migrate.lock"
    )
    engine = create_migration_engine(settings)
    try:
        upgrade_to_head(settings, engine)
    finally:
        engine.dispose()
    # As many server connections as the two workers' pools: this measures what the setting
    # costs per statement, not queueing for a scarce server connection.
    with pgbouncer(WORK, database_url, pool_size=WORKERS * 10) as bouncer:
        yield {**env, "DATABASE_URL": bouncer.url(database_url), "DB_POOLER": "transaction",
               "DATABASE_LISTEN_URL": database_url, "MIGRATE_ON_STARTUP": "false"}  # fmt: skip


@contextmanager
def _long_polls(url: str, data: Path) -> Iterator[None]:
    """LONG_POLLS feed requests waiting on `url` for as long as the block runs."""
    command = [sys.executable, str(ROOT / "bench" / "long_polls.py"), url, str(data),
               str(LONG_POLLS)]  # fmt: skip
    holder = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        if not line.startswith("ready"):
            raise SystemExit(f"bench/long_polls.py did not get ready: {line!r}")
        WAITING_SEEN.append(int(line.split()[1]))
        yield
    finally:
        holder.terminate()
        holder.wait(timeout=30)


@contextmanager
def _limits_off(env: dict[str, str]) -> Iterator[str]:
    """The same service with RATE_LIMIT_ENABLED=false, for the A/B (its URL; the limited
    service's when there is no A/B scenario to run)."""
    if not LIMITER_AB:
        yield ""
        return
    with _server(["./start.sh"], {**env, "RATE_LIMIT_ENABLED": "false"}, "service-off") as url:
        yield url


@contextmanager
def _server(command: list[str], env: dict[str, str], name: str, cwd: Path = ROOT) -> Iterator[str]:
    port = _free_port()
    settings = {**os.environ, "WEB_CONCURRENCY": str(WORKERS), "BIND": f"127.0.0.1:{port}",
                "LOG_FORMAT": "json", **env}  # fmt: skip
    settings["PATH"] = f"{ROOT / '.venv' / 'bin'}:{settings['PATH']}"
    with (WORK / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env=settings, stdout=log, stderr=log)  # noqa: S603
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited: see {WORK}")
        try:
            httpx.get(url + "/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"server did not start: see {WORK}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wrk_background(url: str, scenario: str, duration: int, data: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "SCENARIO": scenario, "WRK_THREADS": "1", "BENCH_PASSWORD": PASSWORD,
           "BENCH_DATA": str(data), "BENCH_STATUSES": "1"}  # fmt: skip
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "--timeout", "30s",
               "-s", str(SCRIPT), url]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)  # noqa: S603


@contextmanager
def _parallel() -> Iterator[Any]:
    """Run several wrk measurements at the same time; each call returns a result getter."""
    with ThreadPoolExecutor(4) as pool:
        yield lambda *args, **kwargs: pool.submit(wrk, *args, **kwargs).result
    # leaving the block waits for every measurement


if __name__ == "__main__":
    main()
