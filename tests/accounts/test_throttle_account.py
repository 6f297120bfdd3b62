"""The account-wide cap (LOGIN_MAX_ACCOUNT_FAILURES) with OWASP device tokens, and IPv6 /64s.

Guesses spread over many addresses stay under every per-address limit; past the account-wide
count only a client presenting a device token of that account (from one of its earlier
successful logins) may still try, so the owner keeps logging in while the attack goes on.
Every client address here is a TestClient of its own (tests.accounts.helpers.from_address).
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response
from sqlalchemy import Engine, func, select, text

from app.accounts.models import DeviceToken, LoginFailure
from app.config import Settings
from tests.accounts.helpers import ATTACKER, OWNER, TOKEN, WRONG, assert_throttled, from_address
from tests.conftest import PASSWORD, ApiUser, make_user

CAP = 6  # a small account-wide cap keeps these tests quick; the default is checked below


def guess(
    client: TestClient, email: str, password: str = WRONG, device_token: str | None = None
) -> Response:
    form = {"username": email, "password": password}
    if device_token is not None:
        form["device_token"] = device_token
    return client.post(TOKEN, data=form)


def spread_attack(settings: Settings, email: str, guesses: int) -> list[int]:
    """One wrong guess from each of `guesses` addresses: never two from the same one."""
    statuses = []
    for n in range(guesses):
        with from_address(settings, (f"192.0.2.{n + 1}", 50000)) as attacker:
            statuses.append(guess(attacker, email).status_code)
    return statuses


@pytest.fixture
def capped(settings: Settings) -> Settings:
    return settings.model_copy(update={"login_max_account_failures": CAP})


def test_the_account_cap_defaults_to_50() -> None:
    assert Settings(_env_file=None).login_max_account_failures == 50


def test_guesses_spread_over_many_addresses_hit_the_account_cap(
    client: TestClient, capped: Settings, user: ApiUser
) -> None:
    assert spread_attack(capped, user.email, CAP) == [401] * CAP
    # A fresh address, with the right password: the account is capped for untrusted clients.
    with from_address(capped, OWNER) as newcomer:
        retry_after = assert_throttled(guess(newcomer, user.email, PASSWORD))
        assert retry_after <= capped.login_window_seconds


def test_an_unknown_email_is_capped_the_same_way(client: TestClient, capped: Settings) -> None:
    # Otherwise the cap would tell which emails have accounts.
    assert spread_attack(capped, "nobody@example.com", CAP) == [401] * CAP
    with from_address(capped, OWNER) as newcomer:
        assert_throttled(guess(newcomer, "nobody@example.com"))


def test_the_owner_with_a_device_token_still_logs_in(
    client: TestClient, capped: Settings, user: ApiUser
) -> None:
    with from_address(capped, OWNER) as owner:
        first = guess(owner, user.email, PASSWORD)
        assert first.status_code == 200, first.text
        device_token = first.json()["device_token"]
        assert isinstance(device_token, str)
        assert len(device_token) >= 32

    assert spread_attack(capped, user.email, CAP) == [401] * CAP

    # From an address never seen before, with the device token: let in, and given a new one.
    with from_address(capped, ("198.51.100.77", 40002)) as owner:
        assert_throttled(guess(owner, user.email, PASSWORD))
        response = guess(owner, user.email, PASSWORD, device_token)
        assert response.status_code == 200, response.text
        renewed = response.json()["device_token"]
        assert renewed != device_token
        # Rotated: the old one no longer lets anyone past the cap, the new one does.
        assert_throttled(guess(owner, user.email, PASSWORD, device_token))
        assert guess(owner, user.email, PASSWORD, renewed).status_code == 200


def test_a_device_token_counts_only_for_its_own_account(
    client: TestClient, capped: Settings, user: ApiUser
) -> None:
    with from_address(capped, OWNER) as owner:
        other = make_user(owner)
        foreign_token = guess(owner, other.email, PASSWORD).json()["device_token"]
    assert spread_attack(capped, user.email, CAP) == [401] * CAP
    with from_address(capped, ATTACKER) as attacker:
        assert_throttled(guess(attacker, user.email, PASSWORD, foreign_token))
        assert_throttled(guess(attacker, user.email, PASSWORD, "made-up-token"))


def test_a_device_token_that_keeps_failing_is_locked_out(
    client: TestClient, capped: Settings, user: ApiUser
) -> None:
    with from_address(capped, OWNER) as owner:
        device_token = guess(owner, user.email, PASSWORD).json()["device_token"]
    # Failures with the token, each from another address: LOGIN_MAX_FAILURES lock the token.
    for n in range(capped.login_max_failures):
        with from_address(capped, (f"203.0.113.{n + 10}", 40000)) as thief:
            assert guess(thief, user.email, WRONG, device_token).status_code == 401
    with from_address(capped, ("203.0.113.99", 40000)) as thief:
        assert_throttled(guess(thief, user.email, PASSWORD, device_token))
        # An untrusted client elsewhere is unaffected: those failures were the device's
        # (OWASP: they count for the device, not for untrusted clients).
        assert guess(thief, user.email, PASSWORD).status_code == 200


def test_parallel_spread_guesses_cannot_slip_past_the_cap(
    client: TestClient, capped: Settings, user: ApiUser, db_engine: Engine
) -> None:
    attackers = 3 * CAP
    with ExitStack() as stack:
        clients = [
            stack.enter_context(from_address(capped, (f"192.0.2.{n + 1}", 50000)))
            for n in range(attackers)
        ]
        with ThreadPoolExecutor(max_workers=attackers) as pool:
            statuses = sorted(pool.map(lambda c: guess(c, user.email).status_code, clients))
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) == CAP, statuses
    with db_engine.connect() as connection:
        count = connection.scalar(select(func.count()).select_from(LoginFailure))
    assert count == CAP


def test_the_token_response_carries_a_device_token_stored_only_as_a_hash(
    client: TestClient, capped: Settings, user: ApiUser, db_engine: Engine
) -> None:
    with from_address(capped, OWNER) as owner:
        body = guess(owner, user.email, PASSWORD).json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "device_token",
    }
    with db_engine.connect() as connection:
        rows = connection.execute(select(DeviceToken)).all()
        dump = " ".join(str(value) for row in rows for value in row)
        everything = connection.execute(text("SELECT * FROM device_tokens")).all()
    assert rows
    assert body["device_token"] not in dump
    assert all(body["device_token"] not in str(row) for row in everything)


def test_the_openapi_token_response_declares_device_token(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    login = schema["paths"]["/api/v1/auth/token"]["post"]
    form_ref = login["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    response_ref = login["responses"]["200"]["content"]["application/json"]["schema"]
    form = schema["components"]["schemas"][form_ref["$ref"].rsplit("/", 1)[1]]
    response = schema["components"]["schemas"][response_ref["$ref"].rsplit("/", 1)[1]]
    assert "device_token" in form["properties"]
    assert "device_token" in response["properties"]
    assert "device_token" in response["required"]


def test_a_device_token_is_never_logged(
    client: TestClient, capped: Settings, user: ApiUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with from_address(capped, OWNER) as owner:
        device_token = guess(owner, user.email, PASSWORD).json()["device_token"]
        assert guess(owner, user.email, WRONG, device_token).status_code == 401
        renewed = guess(owner, user.email, PASSWORD, device_token).json()["device_token"]
        too_long = guess(owner, user.email, PASSWORD, device_token * 20)
        assert too_long.status_code == 422
        assert device_token not in too_long.text
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert caplog.records
    assert device_token not in logged
    assert renewed not in logged


def test_addresses_of_one_ipv6_64_count_as_one(
    client: TestClient, settings: Settings, user: ApiUser, db_engine: Engine
) -> None:
    # Rotating the interface id within one /64 is free for an attacker: it buys nothing.
    for n in range(settings.login_max_failures):
        with from_address(settings, (f"2001:db8:1:2::{n + 1:x}", 40000)) as attacker:
            assert guess(attacker, user.email).status_code == 401
    with from_address(settings, ("2001:db8:1:2:ffff:ffff:ffff:ffff", 40000)) as attacker:
        assert_throttled(guess(attacker, user.email, PASSWORD))
    # The next /64 is another address.
    with from_address(settings, ("2001:db8:1:3::1", 40000)) as neighbour:
        assert guess(neighbour, user.email, PASSWORD).status_code == 200
    with db_engine.connect() as connection:
        stored = set(connection.scalars(select(LoginFailure.client_address)))
    assert stored == {"2001:db8:1:2::/64"}


def test_the_address_wide_limit_counts_a_64_as_one_address(
    client: TestClient, settings: Settings, user: ApiUser
) -> None:
    strict = settings.model_copy(update={"login_max_address_failures": 4})
    for n in range(4):
        with from_address(strict, (f"2001:db8:aa:bb:{n}::1", 40000)) as sprayer:
            assert guess(sprayer, f"target-{n}@example.com").status_code == 401
    with from_address(strict, ("2001:db8:aa:bb::99", 40000)) as sprayer:
        assert_throttled(guess(sprayer, user.email, PASSWORD))


def test_ipv4_addresses_keep_counting_one_by_one(
    client: TestClient, settings: Settings, user: ApiUser
) -> None:
    for _ in range(settings.login_max_failures):
        with from_address(settings, ("192.0.2.1", 40000)) as attacker:
            assert guess(attacker, user.email).status_code == 401
    with from_address(settings, ("192.0.2.2", 40000)) as neighbour:
        assert guess(neighbour, user.email, PASSWORD).status_code == 200
    # An IPv4 address mapped into IPv6 is that IPv4 address.
    with from_address(settings, ("::ffff:192.0.2.1", 40000)) as mapped:
        assert_throttled(guess(mapped, user.email, PASSWORD))


def test_parallel_guesses_with_one_device_token_cannot_slip_past_its_limit(
    client: TestClient, capped: Settings, user: ApiUser
) -> None:
    with from_address(capped, OWNER) as owner:
        device_token = guess(owner, user.email, PASSWORD).json()["device_token"]
        attempts = 4 * capped.login_max_failures
        with ThreadPoolExecutor(max_workers=attempts) as pool:
            responses = list(
                pool.map(lambda _: guess(owner, user.email, WRONG, device_token), range(attempts))
            )
        statuses = sorted(response.status_code for response in responses)
        assert set(statuses) <= {401, 429}, statuses
        assert statuses.count(401) == capped.login_max_failures, statuses
        assert_throttled(guess(owner, user.email, PASSWORD, device_token))
