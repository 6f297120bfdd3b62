"""What two checkouts testing on one machine must not share: database names and TCP ports.

Every PostgreSQL database the tests create is named by `database_name(role)`, and every port a
test server, PgBouncer, HAProxy or private PostgreSQL listens on comes from `free_port()`.

- `TEST_DB_PREFIX` (default `todo`): databases are `<prefix>_<role>_<12 random hex>`, so one
  checkout's leftovers (a run killed before its cleanup) can be told from another's, and
  dropped by prefix.
- `TEST_PORTS` (default unset: the kernel picks a free ephemeral port, as before): a range
  `FIRST-LAST` the ports come from. A port picked by the kernel is free when picked, but
  another run on the machine can take it before the server binds it; two checkouts given
  ranges that do not overlap never meet. Within one run, each pytest-xdist worker takes its
  own slice of the range, and ports are handed out in turn, not the same one twice in a row.
"""

import os
import random
import re
import socket
import uuid

DEFAULT_DB_PREFIX = "todo"
# PostgreSQL names are at most 63 bytes: prefix + "_" + role + "_" + 12 hex digits.
_PREFIX = re.compile(r"[a-z][a-z0-9_]{0,29}")
_RANGE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")
_next_port: int | None = None


def database_name(role: str) -> str:
    """A new database's name: TEST_DB_PREFIX, what it is for, and a random part."""
    prefix = os.environ.get("TEST_DB_PREFIX") or DEFAULT_DB_PREFIX
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(
            f"TEST_DB_PREFIX={prefix!r}: use 1-30 lowercase letters, digits or underscores, "
            "starting with a letter"
        )
    return f"{prefix}_{role}_{uuid.uuid4().hex[:12]}"


def port_range() -> range | None:
    """This process's share of TEST_PORTS (None: unset, the kernel chooses)."""
    spec = os.environ.get("TEST_PORTS", "").strip()
    if not spec:
        return None
    match = _RANGE.fullmatch(spec)
    first, last = (int(match[1]), int(match[2])) if match else (0, -1)
    if not (match and 1024 <= first <= last <= 65535):
        raise ValueError(f"TEST_PORTS={spec!r}: write a range such as 20000-20999 (1024-65535)")
    # pytest-xdist sets these in its workers: gw0, gw1, ... of N.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    worker = int((os.environ.get("PYTEST_XDIST_WORKER") or "gw0").removeprefix("gw"))
    share = (last - first + 1) // workers
    if share < 1:
        raise ValueError(f"TEST_PORTS={spec!r} has fewer ports than the {workers} test workers")
    start = first + worker * share
    return range(start, start + share)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, from TEST_PORTS when it is set."""
    ports = port_range()
    if ports is None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    global _next_port
    if _next_port is None or _next_port not in ports:
        _next_port = random.choice(ports)
    for offset in range(len(ports)):
        candidate = ports[(ports.index(_next_port) + offset) % len(ports)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        _next_port = ports[(ports.index(candidate) + 1) % len(ports)]
        return candidate
    raise RuntimeError(f"no free port in TEST_PORTS ({ports.start}-{ports.stop - 1})")
