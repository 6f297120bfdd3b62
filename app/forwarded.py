"""A warning for the operator when X-Forwarded-For comes from a peer that is not trusted.

uvicorn (through gunicorn's FORWARDED_ALLOW_IPS) takes the client's address from
X-Forwarded-For only when the peer is a trusted proxy; from anyone else the header is ignored,
rightly. But a real proxy missing from FORWARDED_ALLOW_IPS makes every client share the
proxy's address, and then five wrong guesses by anyone lock an account for everyone behind it
(issue 29). Nothing else would tell: so the first such request logs a warning naming the
peer, and the next one at most an hour later (per process: a log line per request would let
anyone flood the log).

This wraps the app outside uvicorn's proxy-headers middleware (app.server installs it), where
the peer is still the peer.
"""

import ipaddress
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

UNTRUSTED_MESSAGE = (
    "X-Forwarded-For ignored: it came from %s, which FORWARDED_ALLOW_IPS does not trust, so "
    "the client's address is taken to be that peer's. If it is your proxy, add its address "
    'or network to FORWARDED_ALLOW_IPS (README, "Behind a TLS proxy"); until then every '
    "client behind it shares one address for the login throttle and the rate limits. "
    "(Logged at most once an hour per process.)"
)
INTERVAL_SECONDS = 3600.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UntrustedForwardedForWarning:
    def __init__(
        self,
        app: ASGIApp,
        trusted: str | list[str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        entries = trusted.split(",") if isinstance(trusted, str) else trusted
        names = [entry.strip() for entry in entries if entry.strip()]
        self.trust_all = "*" in names
        self.networks: list[Network] = []
        self.hosts: set[str] = set()
        for name in names:
            try:
                self.networks.append(ipaddress.ip_network(name, strict=False))
            except ValueError:
                self.hosts.add(name)  # a literal uvicorn compares as is (a socket path)
        self.clock = clock
        self.last_warning: float | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not self.trust_all:
            client = scope.get("client")
            # No peer address (a unix socket): uvicorn trusts it, so there is nothing to say.
            if client and _has_forwarded_for(scope) and not self._trusted(client[0]):
                self._warn(client[0])
        await self.app(scope, receive, send)

    def _trusted(self, host: str) -> bool:
        if host in self.hosts:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def _warn(self, peer: str) -> None:
        now = self.clock()
        if self.last_warning is not None and now - self.last_warning < INTERVAL_SECONDS:
            return
        self.last_warning = now
        logger.warning(UNTRUSTED_MESSAGE, peer)


def _has_forwarded_for(scope: Scope) -> bool:
    return any(name == b"x-forwarded-for" for name, _ in scope["headers"])
