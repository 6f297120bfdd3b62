"""A login storm against one replica, in a process of its own (so that its threads do not
compete with the test's own clients for one interpreter lock).

    python -m tests.cluster.storm URL --start T --on S --off S --cycles N --concurrency C

registers C users on URL, opens C keep-alive connections, waits until time.monotonic()
reaches T (the clock is the machine's, shared with the test), then logs the users in over
them at once, one user per connection, for S seconds, pauses S seconds, N times over: mostly
good passwords, some wrong ones (for addresses that exist nowhere, so the throttle records
them and never locks anyone out). Many users, as after an outage: one user's logins queue
behind its own lock.
Prints one JSON line: the storm windows, the statuses, how many requests the replica
answered.
"""

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx

PASSWORD = "correct-horse-battery"
# One login in eight has a wrong password: a storm of real users, with the odd typo. Fewer than
# LOGIN_MAX_ADDRESS_FAILURES (100) from this one address, whose 429s would only be cheap.
WRONG_EVERY = 8
TIMEOUT = 10.0


def _register(url: str, count: int) -> tuple[list[str], int]:
    emails, answered = [], 0
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        for _ in range(count):
            email = f"storm-{uuid.uuid4().hex[:10]}@example.com"
            response = http.post(
                "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
            )
            answered += 1
            response.raise_for_status()
            emails.append(email)
    return emails, answered


def _login(http: httpx.Client, email: str, n: int) -> int:
    if n % WRONG_EVERY:
        form = {"username": email, "password": PASSWORD}
    else:
        form = {"username": f"nobody-{uuid.uuid4().hex}@example.com", "password": "x" * 9}
    try:
        return http.post("/api/v1/auth/token", data=form).status_code
    except httpx.TransportError:
        return -1


def _storm(
    url: str, email: str, windows: list[tuple[float, float]], statuses: Counter[int]
) -> list[float]:
    """One connection, kept across the bursts; when each burst's last answer came."""
    ends = []
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        n = 0
        for begin, until in windows:
            time.sleep(max(0.0, begin - time.monotonic()))
            while time.monotonic() < until:
                n += 1
                statuses[_login(http, email, n)] += 1  # this thread's own Counter
            ends.append(time.monotonic())
    return ends


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--start", type=float, required=True)
    parser.add_argument("--on", type=float, required=True)
    parser.add_argument("--off", type=float, required=True)
    parser.add_argument("--cycles", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    args = parser.parse_args()
    emails, answered = _register(args.url, args.concurrency)
    period = args.on + args.off
    planned = [
        (args.start + i * period, args.start + i * period + args.on) for i in range(args.cycles)
    ]
    counters: list[Counter[int]] = [Counter() for _ in emails]
    with ThreadPoolExecutor(len(emails)) as pool:
        futures = [
            pool.submit(_storm, args.url, email, planned, counter)
            for email, counter in zip(emails, counters, strict=True)
        ]
        ends = [future.result() for future in futures]
    # A burst lasts until its last answer: requests sent before its end finish after it.
    windows = [(begin, max(e[i] for e in ends)) for i, (begin, _) in enumerate(planned)]
    statuses: Counter[int] = sum(counters, Counter())
    answered += sum(n for status, n in statuses.items() if status != -1)
    print(json.dumps({"windows": windows, "statuses": statuses, "answered": answered}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
