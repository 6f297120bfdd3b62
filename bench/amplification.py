"""Unauthenticated amplification: what one 1 MB body of unknown keys costs the server.

Issue 29 (MEDIUM 4): a register body of ~96,000 unknown keys took ~0.5 s of CPU and came back
as an 8 MB 422. This sends that body to the register route and, signed in, to the todo create
route (which keeps the 1 MiB limit), through the real app in-process, and prints each answer's
status, size and the process CPU time it cost (median of a few runs). A measurement, not a test.

    .venv/bin/python bench/amplification.py [--runs 5]
"""

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import Settings
from app.main import create_app

PASSWORD = "correct-horse-battery"  # noqa: S105 - a throwaway benchmark account


def unknown_keys_body(limit: int = 1024 * 1024) -> bytes:
    """As many unknown keys as fit under `limit` bytes: {"k0":0,"k1":0,...}."""
    fields, size, i = [], 2, 0
    while size + len(f'"k{i}":0,') <= limit:
        fields.append(f'"k{i}":0')
        size += len(fields[-1]) + 1
        i += 1
    return ("{" + ",".join(fields) + "}").encode()


def cost(client: TestClient, url: str, body: bytes, headers: dict[str, str], runs: int) -> None:
    seconds, answer = [], None
    for _ in range(runs):
        start = time.process_time()
        answer = client.post(url, content=body, headers=headers)
        seconds.append(time.process_time() - start)
    assert answer is not None
    print(
        f"{url:22} {answer.status_code}  {len(answer.content):>9,} bytes  "
        f"{statistics.median(seconds) * 1000:7.1f} ms CPU (median of {runs})"
    )


def main() -> None:
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    body = unknown_keys_body()
    print(f"body: {len(body):,} bytes, {body.count(b':'):,} unknown keys")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite:///{tmp}/bench.db",
            secret_key="amplification-benchmark-key-0123456789",  # noqa: S106 - throwaway
            bcrypt_rounds=4,
            access_log=False,
        )
        with TestClient(create_app(settings)) as client:
            json_headers = {"content-type": "application/json"}
            cost(client, "/api/v1/auth/register", body, json_headers, args.runs)
            account = {"email": "bench@example.com", "password": PASSWORD}
            client.post("/api/v1/auth/register", content=json.dumps(account), headers=json_headers)
            login = {"username": account["email"], "password": PASSWORD}
            token = client.post("/api/v1/auth/token", data=login).json()["access_token"]
            signed_in = {**json_headers, "authorization": f"Bearer {token}"}
            cost(client, "/api/v1/todos", body, signed_in, args.runs)


if __name__ == "__main__":
    main()
