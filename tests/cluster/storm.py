"""A login storm against one replica, in a process of its own (so that its threads do not
compete with the test's own clients for one interpreter lock).

    python -m tests.cluster.storm URL --start T --on S --off S --cycles N --concurrency C

registers C users on URL, waits until time.monotonic() reaches T (the clock is the machine's,
shared with the test), then logs them in from C keep-alive connections at once, one user per
connection, for S seconds, pauses S seconds, N times over: mostly good passwords, some wrong
ones (for addresses that exist nowhere, so the throttle records them and never locks anyone
out). Many users, as after an outage: one user's logins queue behind its own lock.
Prints one JSON line: the storm windows, the statuses, how many requests the replica
answered.
"""

import argparse
import json
import sys
import threading
import time
import uuid
from collections import Counter

import httpx2 as httpx

PASSWORD = "correct-horse-battery"
WRONG_EVERY = 4  # one login in four has a wrong password
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


def _storm(url: str, email: str, until: float, statuses: Counter[int]) -> None:
    with httpx.Client(base_url=url, timeout=TIMEOUT) as http:
        n = 0
        while time.monotonic() < until:
            n += 1
            if n % WRONG_EVERY:
                form = {"username": email, "password": PASSWORD}
            else:
                form = {"username": f"nobody-{uuid.uuid4().hex}@example.com", "password": "x" * 9}
            try:
                status = http.post("/api/v1/auth/token", data=form).status_code
            except httpx.TransportError:
                status = -1
            statuses[status] += 1  # this thread's own Counter


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
    windows = []
    per_thread: list[Counter[int]] = [Counter() for _ in range(args.concurrency)]
    begin = args.start
    for _ in range(args.cycles):
        time.sleep(max(0.0, begin - time.monotonic()))
        until = begin + args.on
        threads = [
            threading.Thread(target=_storm, args=(args.url, email, until, counter))
            for email, counter in zip(emails, per_thread, strict=True)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        windows.append((started, time.monotonic()))
        begin = until + args.off
    statuses: Counter[int] = sum(per_thread, Counter())
    answered += sum(n for status, n in statuses.items() if status != -1)
    print(json.dumps({"windows": windows, "statuses": statuses, "answered": answered}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
