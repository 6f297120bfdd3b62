"""Where a rate-limit check's time goes, per request, against a private Redis (tests/redis.py):
`.venv/bin/python bench/limiter_cost.py` (a few seconds; no database, no server).

Times, in one process and one event loop, as a worker runs them: the whole check
(Limiter.check) and its parts, the middleware's key derivation and header building, and a bare
Redis PING round trip (the floor of anything that asks Redis). The figures are microseconds per
call, of wall time and of this process's CPU (Redis's own work is a few µs); bench/run.py gives
what that costs a whole request ("rate limiter on ...").

Then N (1, 4, 16, 64) checks at once, each of its own key and in its own task, as a worker
serving N requests at once runs them: µs per check, wall and CPU (the task's own creation
included; bench/run.py's 32 connections on 2 workers are about 16 at once per worker).
"""

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.accounts.security import TokenCodec  # noqa: E402
from app.config import Settings  # noqa: E402
from app.ratelimit.limiter import Limiter  # noqa: E402
from app.ratelimit.middleware import RateLimitMiddleware  # noqa: E402
from tests.redis import redis_server  # noqa: E402

ROUNDS = 5000
CONCURRENCY = (1, 4, 16, 64)
Figure = tuple[float, float]  # µs per call: wall, CPU
QUOTA = "100000000/minute"
SECRET = "limiter-cost-bench-key-0123456789abcdef"  # noqa: S105 - signs throwaway tokens


async def per_call(work: Callable[[], Awaitable[object]], rounds: int = ROUNDS) -> Figure:
    """Microseconds per call, wall and this process's CPU, the best of three runs (the
    machine is shared: CPU time is the steadier figure)."""
    wall = cpu = float("inf")
    for _ in range(3):
        started, started_cpu = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            await work()
        wall = min(wall, (time.perf_counter() - started) / rounds * 1e6)
        cpu = min(cpu, (time.process_time() - started_cpu) / rounds * 1e6)
    return wall, cpu


async def measure(url: str) -> dict[str, Figure]:
    settings = Settings(
        _env_file=None,
        rate_limit_storage=url,
        rate_limit_user=QUOTA,
        secret_key=SECRET,
    )
    limiter = Limiter(settings)
    codec = TokenCodec(settings)
    user_id = uuid.uuid4()
    token = codec.encode_access(user_id, 0)
    client = limiter.storage.bridge.get_connection()  # type: ignore[attr-defined]
    await client.ping()
    figures = {
        "redis PING round trip": await per_call(client.ping),
        "Limiter.check (user)": await per_call(lambda: limiter.check(limiter.user, "u1")),
    }
    verdict = await limiter.check(limiter.user, "u1")
    assert verdict is not None

    async def headers() -> object:
        return verdict.headers()

    async def key() -> object:
        claims = codec.decode_access(token)
        assert claims is not None
        return str(claims.user_id)

    figures["Verdict.headers()"] = await per_call(headers)
    figures["token -> key"] = await per_call(key)

    async def inner(scope: object, receive: object, send: object) -> None:
        return None

    middleware = RateLimitMiddleware(inner, "/api/v1")

    class State:
        pass

    state = State()
    state.limiter = limiter  # type: ignore[attr-defined]
    state.token_codec = codec  # type: ignore[attr-defined]

    class App:
        pass

    app = App()
    app.state = state  # type: ignore[attr-defined]
    headers_in = [(b"authorization", f"Bearer {token}".encode())]

    async def through_middleware() -> None:
        scope = {"type": "http", "path": "/api/v1/todos", "app": app, "headers": headers_in}
        await middleware(scope, None, None)  # type: ignore[arg-type]

    figures["middleware, whole"] = await per_call(through_middleware)
    for n in CONCURRENCY:
        figures[f"{n} checks at once, per check"] = await at_once(limiter, n)
    await limiter.close()
    return figures


async def at_once(limiter: Limiter, n: int) -> Figure:
    """Per check, n checks of distinct keys started together, each in its own task."""
    keys = [f"u{n}-{i}" for i in range(n)]

    async def together() -> None:
        verdicts = await asyncio.gather(*(limiter.check(limiter.user, key) for key in keys))
        assert all(verdict is not None for verdict in verdicts)

    wall, cpu = await per_call(together, max(20, ROUNDS // n))
    return wall / n, cpu / n


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, redis_server(Path(directory)) as redis:
        figures = asyncio.run(measure(redis.url))
    print(f"{'µs per call':32} {'wall':>7} {'CPU':>7}")
    for name, (wall, cpu) in figures.items():
        print(f"{name:32} {wall:7.1f} {cpu:7.1f}")


if __name__ == "__main__":
    main()
