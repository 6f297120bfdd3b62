"""Property-based run of the app's own OpenAPI schema: no 5xx, every response as documented.

Every operation is generated from the schema (valid and invalid inputs), sent authenticated
as a real user to the real app on each database, and each response is checked against the
status codes, headers, content types and bodies the schema declares. Fixed seed
(derandomize) and no example database, so runs repeat.

The schema object is built once from the app's routes (no database needed for that); the
requests go in-process to the app fixture through schemathesis' ASGI client.
"""

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import ASGIClient, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from app.main import create_app
from tests.conftest import PASSWORD, empty_tables
from tests.support.settings import app_settings

# What the contract asks of every response. Positive-data acceptance is left out: the schema
# cannot express every rule (passwords count UTF-8 bytes; emails must have a real domain).
CONTRACT_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


API_SCHEMA = schemathesis.openapi.from_dict(create_app(app_settings("sqlite://")).openapi())


@pytest.fixture(scope="module")
def api_client(
    database_url: str, db_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ASGIClient]:
    lock = tmp_path_factory.mktemp("fuzz") / "migrations.lock"
    app: FastAPI = create_app(app_settings(database_url, migration_lock_path=lock))
    try:
        with ASGIClient(app) as client:
            yield client
    finally:
        shutdown_lifespans()  # close the app's engine before its database is dropped
        empty_tables(db_engine)


@pytest.fixture
def auth_headers(api_client: ASGIClient) -> dict[str, str]:
    # A fresh user per operation: DELETE /users/me and the password change would otherwise
    # leave every later operation nothing but 401s to explore.
    email = f"fuzzer-{uuid.uuid4().hex[:12]}@example.com"
    created = api_client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert created.status_code == 201, created.text
    tokens = api_client.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


@API_SCHEMA.parametrize()
@settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case, api_client: ASGIClient, auth_headers: dict[str, str]
) -> None:
    case.call_and_validate(
        base_url="http://testserver",
        session=api_client,
        headers=auth_headers,
        checks=CONTRACT_CHECKS,
    )
