"""Login timing, unknown email vs known email: a measurement, not a test.

A wrong password and an unknown email must be indistinguishable by response time (the
unknown email pays for a dummy bcrypt check). This prints the median and spread of each, at
the production bcrypt cost, through the real app in-process. Every answer's status is
counted and must be the case's own (401, 401, 200): a registration that failed would send
every login down the unknown-email path and the ratio would come out near 1 whatever the
app does, so any other status ends the run with exit 1.

    .venv/bin/python bench/login_timing.py [--rounds 40] [--database-url URL]
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import Settings
from app.main import create_app

PASSWORD = "correct-horse-battery"  # noqa: S105 - a throwaway benchmark account
EXPECTED = {
    "known email, wrong password": 401,
    "unknown email": 401,
    "known email, right password": 200,
}


def _timed_login(client: TestClient, email: str, password: str) -> tuple[float, int]:
    start = time.perf_counter()
    response = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    return (time.perf_counter() - start) * 1000, response.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="login-timing-"))
    settings = Settings(
        _env_file=None,
        database_url=args.database_url or f"sqlite:///{workdir / 'timing.db'}",
        secret_key="timing-benchmark-key-" + "x" * 32,
        # Measure the checks themselves, not the throttle.
        login_max_failures=10**6,
        login_max_address_failures=10**6,
        login_max_account_failures=10**6,
        migration_lock_path=workdir / "migrate.lock",
    )
    samples: dict[str, list[float]] = {name: [] for name in EXPECTED}
    statuses: dict[str, Counter[int]] = {name: Counter() for name in EXPECTED}
    with TestClient(create_app(settings)) as client:
        known = f"known-{time.time_ns()}@example.com"
        registered = client.post(
            "/api/v1/auth/register", json={"email": known, "password": PASSWORD}
        )
        if registered.status_code != 201:
            raise SystemExit(f"registration failed ({registered.status_code}): {registered.text}")
        _timed_login(client, known, PASSWORD)  # warm-up
        for i in range(args.rounds):  # interleaved, so drift hits every case alike
            cases = [
                ("known email, wrong password", known, "wrong-password"),
                ("unknown email", f"nobody-{i}-{time.time_ns()}@example.com", "wrong-password"),
                ("known email, right password", known, PASSWORD),
            ]
            for name, email, password in cases:
                elapsed, status = _timed_login(client, email, password)
                samples[name].append(elapsed)
                statuses[name][status] += 1
    backend = settings.database_url.split(":")[0]
    print(f"bcrypt rounds {settings.bcrypt_rounds}, {args.rounds} logins each, {backend}")
    print(f"{'case':<30} {'median ms':>10} {'p10 ms':>8} {'p90 ms':>8}  statuses")
    for name, values in samples.items():
        deciles = statistics.quantiles(values, n=10)
        print(
            f"{name:<30} {statistics.median(values):>10.1f} {deciles[0]:>8.1f} {deciles[-1]:>8.1f}"
            f"  {dict(statuses[name])}"
        )
    unknown, wrong = (
        statistics.median(samples[k]) for k in ("unknown email", "known email, wrong password")
    )
    print(f"unknown / known-wrong median ratio: {unknown / wrong:.3f}")
    unexpected = [f"{name}: {dict(statuses[name])}" for name, status in EXPECTED.items()
                  if set(statuses[name]) != {status}]  # fmt: skip
    if unexpected:
        raise SystemExit(
            "UNEXPECTED STATUSES, the timings measure errors:\n  " + "\n  ".join(unexpected)
        )


if __name__ == "__main__":
    main()
