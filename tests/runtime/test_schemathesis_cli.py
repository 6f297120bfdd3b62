"""A judge we did not write: schemathesis' own CLI against the service as production runs it.

gunicorn with the project's configuration (as start.sh starts it) on PostgreSQL, reached over
HTTP like any client. Every phase (examples, coverage, fuzzing, stateful) and every check but
the ones named below, authenticated as a real user, with a fixed seed. Bounded in examples and
time: it runs in CI on two cores.
"""

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


def test_schemathesis_finds_nothing(database: TempPostgres, tmp_path: Path) -> None:
    env = app_env(database.url, tmp_path)
    with gunicorn(env, tmp_path, workers=2) as server:
        token = _access_token(server.base_url)
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
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
            command, capture_output=True, text=True, timeout=MAX_SECONDS + 90, check=False
        )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "No issues found" in output, output
