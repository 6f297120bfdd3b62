"""bcrypt never runs on the event loop: every hash and verify happens on the hasher's thread,
which runs at a lower priority than the rest of the process."""

import asyncio
import os
import threading

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.accounts.security import PasswordHasher
from tests.conftest import PASSWORD, make_user


class LoopWatchingHasher(PasswordHasher):
    """The real hasher (real bcrypt), noting whether each call ran inside an event loop."""

    def __init__(self, rounds: int) -> None:
        super().__init__(rounds)
        self.calls: list[bool] = []
        self.niceness: set[int] = set()

    def hash(self, password: str) -> str:
        self._note()
        return super().hash(password)

    def verify(self, password: str, hashed: str | None) -> bool:
        self._note()
        return super().verify(password, hashed)

    def _note(self) -> None:
        self.calls.append(_on_event_loop())
        self.niceness.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_no_hashing_on_the_event_loop(client: TestClient, app: FastAPI) -> None:
    hasher = LoopWatchingHasher(4)
    app.state.hasher = hasher
    user = make_user(client)  # register (hash) + login (verify)
    client.post("/api/v1/auth/token", data={"username": "nobody@example.com", "password": "x" * 9})
    client.post(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "another-password-1"},
        headers=user.headers,
    )
    assert len(hasher.calls) == 5  # hash, verify, dummy verify, verify current, hash new
    assert not any(hasher.calls)


def test_hashing_yields_the_cpu_to_other_requests(client: TestClient, app: FastAPI) -> None:
    hasher = LoopWatchingHasher(4)
    app.state.hasher = hasher
    make_user(client)
    process = os.getpriority(os.PRIO_PROCESS, 0)
    assert hasher.niceness == {min(process + 10, 19)}
    # ...and only the hashing thread: this one runs as the process does.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == process
