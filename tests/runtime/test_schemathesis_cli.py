"""A judge we did not write: schemathesis' own CLI against the service as production runs it.

gunicorn with the project's configuration (as start.sh starts it) on PostgreSQL, reached over
HTTP like any client. Every phase (examples, coverage, fuzzing, stateful) and every check but
the ones named below, authenticated as a real user, with a fixed seed. Bounded in examples and
time: it runs in CI on two cores.
"""

import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx2 as httpx

from tests.conftest import PASSWORD, TempPostgres
from tests.runtime.server import app_env, gunicorn

SEED = 20261130
MAX_EXAMPLES = 20
MAX_SECONDS = 75
# Each excluded check with its reason.
EXCLUDED_CHECKS = {
    # Its stateful phase creates a todo with an Idempotency-Key, deletes it, and replays the
    # create with that key: the replay returns the first response (the idempotency draft's
    # semantics: same key and body, same answer, nothing created), whose Location no longer
    # exists. It reports that as "created resource not found".
    "ensure_resource_availability": "an Idempotency-Key replay answers with the first response",
}
# Where a schema-valid request may still get a documented 4xx, because what decides it is not
# a shape JSON Schema can state: positive_data_acceptance accepts that status there, and only
# there (its other expected statuses are its defaults).
POSITIVE_ALSO: dict[str, tuple[tuple[str, ...], str]] = {
    # Passwords are 8 to 72 bytes in UTF-8 (JSON Schema counts characters: 2 to 72 declared),
    # and email-validator refuses special-use domains (example.invalid, localhost, ...).
    "register": (("422",), "the password's byte length; special-use email domains"),
    # Changing the email needs the current password (v1.2): only the real one is accepted.
    "update_me": (
        ("400", "422"),
        "a current_password that is not the user's; special-use email domains",
    ),
    # The same Idempotency-Key with another body is 422 (the idempotency draft); the fuzzer
    # sends one key with many bodies. A list_id must be one of the user's lists (422), which
    # a schema cannot say of a UUID.
    "create_todo": (
        ("422",),
        "an Idempotency-Key reused with another body; a foreign list_id; a long title",
    ),
    # A list's name is 1 to 100 characters after trimming (API.md), which JSON Schema cannot
    # state: the schema gives no maxLength, and a longer name is 422.
    "create_list": (("422",), "a name over 100 characters after trimming"),
    "rename_list": (
        ("400", "412", "422"),
        "an If-Match that is not the current ETag (400: not an entity-tag); a name over 100",
    ),
    # A cursor or a feed token is opaque: only one this server made is valid.
    "list_todos": (("422",), "a cursor the server did not make"),
    "list_users": (("422",), "a cursor the server did not make"),
    "list_lists": (("422",), "a cursor the server did not make"),
    "list_changes": (("422",), "a since token the server did not make"),
    # If-Match naming anything but the current ETag is 412: the fuzzer cannot know it; one
    # that is not an entity-tag at all (7 unquoted) is 400.
    # A list_id or `after` must be the user's (and `after` in the same list): 422.
    "update_todo": (("400", "412", "422"), "a stale If-Match; a foreign list_id"),
    "replace_todo": (("400", "412", "422"), "a stale If-Match; a foreign list_id"),
    "delete_todo": (("400", "412"), "an If-Match that is not the current ETag"),
    "move_todo": (("400", "412", "422"), "a stale If-Match; `after` or list_id not the user's"),
    "delete_list": (("400", "412"), "an If-Match that is not the current ETag"),
    "move_list": (("400", "412", "422"), "a stale If-Match; `after` not one of the user's lists"),
}
DEFAULT_EXPECTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
# Operations that would end the run's own login (its bearer token) part-way through:
# DELETE /api/v1/users/me and POST /api/v1/users/me/password.
EXCLUDED_OPERATIONS = ("delete_me", "change_password")


def _access_token(base_url: str) -> str:
    email = f"judge-{uuid.uuid4().hex[:12]}@example.com"
    with httpx.Client(base_url=base_url, timeout=30) as client:
        registered = client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        tokens = client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        assert tokens.status_code == 200, tokens.text
        token: str = tokens.json()["access_token"]
        return token


def _config(tmp_path: Path) -> Path:
    blocks = []
    for operation_id, (statuses, _reason) in POSITIVE_ALSO.items():
        expected = ", ".join(f'"{code}"' for code in [*DEFAULT_EXPECTED, *statuses])
        blocks.append(
            f'[[operations]]\ninclude-operation-id = "{operation_id}"\n'
            f"checks.positive_data_acceptance.expected-statuses = [{expected}]\n"
        )
    path = tmp_path / "schemathesis.toml"
    path.write_text("\n".join(blocks))
    return path


def test_schemathesis_finds_nothing(database: TempPostgres, tmp_path: Path) -> None:
    env = app_env(database.url, tmp_path)
    with gunicorn(env, tmp_path, workers=2) as server:
        token = _access_token(server.base_url)
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            f"--config-file={_config(tmp_path)}",
            "run",
            f"{server.base_url}/openapi.json",
            "--phases=examples,coverage,fuzzing,stateful",
            "--checks=all",
            f"--exclude-checks={','.join(EXCLUDED_CHECKS)}",
            f"--seed={SEED}",
            f"--max-examples={MAX_EXAMPLES}",
            f"--max-time={MAX_SECONDS}",
            "--workers=2",
            "--no-color",
            f"--header=Authorization: Bearer {token}",
            "--request-timeout=30",
        ]
        for operation_id in EXCLUDED_OPERATIONS:
            command.append(f"--exclude-operation-id={operation_id}")
        run = subprocess.run(  # noqa: S603 - fixed arguments
            command,
            cwd=tmp_path,  # its .schemathesis/ cache goes there
            capture_output=True,
            text=True,
            timeout=MAX_SECONDS + 90,
            check=False,
        )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    # Every case passed every check (its warnings, e.g. that random refresh tokens are 401s,
    # are not failures).
    counts = re.search(r"(\d+) generated, (\d+) passed\n", output)
    assert counts is not None, output
    assert counts[1] == counts[2], output
    assert int(counts[1]) > 300, output  # every operation, every phase actually ran
