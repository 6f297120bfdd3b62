"""bcrypt never runs on the event loop: every hash and verify happens on a worker thread."""

import asyncio

from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.auth.security import PasswordHasher
from tests.conftest import PASSWORD, make_user


class LoopWatchingHasher(PasswordHasher):
    """The real hasher (real bcrypt), noting whether each call ran inside an event loop."""

    def __init__(self, rounds: int) -> None:
        super().__init__(rounds)
        self.calls: list[bool] = []

    def hash(self, password: str) -> str:
        self.calls.append(_on_event_loop())
        return super().hash(password)

    def verify(self, password: str, hashed: str | None) -> bool:
        self.calls.append(_on_event_loop())
        return super().verify(password, hashed)


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
