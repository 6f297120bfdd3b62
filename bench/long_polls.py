"""Hold N feed requests waiting (`GET /changes?since=…&wait=60`) against a server until
stopped: the load of the `changes_wait` scenario (bench/run.py), in a process of its own so
that its event loop competes with the server as a crowd of phones would, not with wrk.

    python bench/long_polls.py URL DATA COUNT

DATA is bench/run.py's "token todo_id email" file; the polls go round its users. Prints
"ready N" once the server reports N of them waiting (all, or after a minute what it has),
then re-sends each poll that is answered (a wait that ran out) until SIGTERM.
"""

import asyncio
import re
import signal
import sys
from pathlib import Path

import httpx2 as httpx

WAIT = 60
_WAITING = re.compile(r"^todo_changes_waiting(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


async def _quiet_token(client: httpx.AsyncClient, token: str) -> str:
    """The user's feed read to its end: a since with nothing after it."""
    headers = {"Authorization": f"Bearer {token}"}
    params: dict[str, str | int] = {"limit": 1000}
    while True:
        body = (await client.get("/api/v1/changes", params=params, headers=headers)).json()
        params = {"limit": 1000, "since": body["next_token"]}
        if not body["has_more"]:
            return str(body["next_token"])


async def _hold(client: httpx.AsyncClient, token: str, since: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        params = {"since": since, "wait": WAIT}
        try:
            response = await client.get("/api/v1/changes", params=params, headers=headers)
            since = response.json()["next_token"]
        except httpx.TransportError:
            await asyncio.sleep(1)


async def _parked(client: httpx.AsyncClient, count: int) -> int:
    """Until the workers report `count` feed requests waiting (their todo_changes_waiting
    gauges), or a minute has passed: how many wait."""
    waiting = 0
    for _ in range(120):
        metrics = (await client.get("/metrics")).text
        waiting = int(sum(float(n) for n in _WAITING.findall(metrics)))
        if waiting >= count:
            break
        await asyncio.sleep(0.5)
    return waiting


async def main(url: str, tokens: list[str], count: int) -> None:
    users = sorted(set(tokens))
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    timeout = httpx.Timeout(WAIT + 30)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        since = {}
        for token in users[:count]:
            since[token] = await _quiet_token(client, token)
        polls = [
            asyncio.create_task(_hold(client, users[i % len(since)], since[users[i % len(since)]]))
            for i in range(count)
        ]
        parked = await _parked(client, count)
        print(f"ready {parked}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        for poll in polls:
            poll.cancel()


if __name__ == "__main__":
    lines = Path(sys.argv[2]).read_text().splitlines()
    asyncio.run(
        main(sys.argv[1], [line.split()[0] for line in lines if line.strip()], int(sys.argv[3]))
    )
