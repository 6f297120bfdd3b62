"""`make dev`: uvicorn's reloader, where a server that cannot start says so and frees the port.

`uvicorn --reload` binds the port in its supervising process and runs the server in a child.
When a reload cannot start the server (a branch switch left the app unimportable, or the
database at a revision this code does not know), the child exits and the supervisor goes on
watching while it holds the port: requests hang with nobody to answer them, and the reason
has scrolled away. Here the supervisor notices that the server ended on its own, says so, and
closes the socket, so connections are refused and another process may take the port. It
keeps watching: the next change under the watched directories binds the port again and starts
a new server. Ctrl+C ends it, as before.
"""

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from socket import socket

from pydantic import ValidationError
from uvicorn import Config, Server
from uvicorn.supervisors.watchfilesreload import WatchFilesReload
from watchfiles import watch

from app.config import Settings
from app.logs import logging_config

logger = logging.getLogger("app.devserver")


class Reloader(WatchFilesReload):
    """WatchFilesReload that releases the port while no server runs."""

    def __init__(
        self, config: Config, target: Callable[[list[socket] | None], None], sockets: list[socket]
    ) -> None:
        super().__init__(config, target, sockets)
        # Wake every half second (watchfiles waits 5 s for a change by default): that is how
        # soon a server that died is noticed.
        self.watcher = watch(
            *self.reload_dirs,
            watch_filter=None,
            stop_event=self.should_exit,
            yield_on_timeout=True,
            ignore_permission_denied=True,
            rust_timeout=500,
        )
        self.released = False

    def should_restart(self) -> list[Path] | None:
        if not self.released and not self.process.is_alive():
            self._release()
        return super().should_restart()

    def restart(self) -> None:
        if self.released:  # the old server is gone: take the port back for the new one
            self.sockets = [self.config.bind_socket()]
            self.released = False
        super().restart()

    def _release(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.released = True
        watched = ", ".join(str(path) for path in self.reload_dirs)
        logger.error(
            "The server stopped (exit code %s; the reason is above) and released port %s. "
            "Still watching %s: the next change there starts it again (Ctrl+C to quit).",
            self.process.exitcode,
            self.config.port,
            watched,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.devserver", description=__doc__)
    parser.add_argument("--app", default="app.main:app", help="what to serve (module:attribute)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--reload-dir",
        action="append",
        dest="reload_dirs",
        help="restart when a .py file under it changes (repeatable; default: app)",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings()
        level, fmt = settings.log_level, settings.log_format
    except ValidationError:  # the server reports the bad setting itself, as it starts
        level, fmt = os.environ.get("LOG_LEVEL") or "INFO", "console"
    config = Config(
        args.app,
        host=args.host,
        port=args.port,
        reload=True,
        reload_dirs=args.reload_dirs or ["app"],
        http="app.server:BoundedHttpToolsProtocol",
        server_header=False,
        log_config=logging_config(level, fmt),
    )
    server = Server(config)
    Reloader(config, target=server.run, sockets=[config.bind_socket()]).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
