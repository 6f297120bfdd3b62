"""What must happen as soon as the server starts stopping, before it waits for requests.

uvicorn's graceful shutdown stops accepting, then waits up to GRACEFUL_TIMEOUT for the
requests in flight, and only then runs the app's lifespan shutdown: a request that waits for
something (a feed request with `wait`) would hold the worker that long. The server calls
begin() first (app.server), and those requests answer at once.
"""

from collections.abc import Callable

_callbacks: list[Callable[[], None]] = []


def on_stop(callback: Callable[[], None]) -> Callable[[], None]:
    """Run `callback` when the server starts stopping; returns what unregisters it."""
    _callbacks.append(callback)
    return lambda: _callbacks.remove(callback) if callback in _callbacks else None


def begin() -> None:
    for callback in list(_callbacks):
        callback()
