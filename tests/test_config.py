"""Settings: production refuses weak signing keys; development shares one generated key.

Unit tests of app.config.Settings need no database; only the restart test starts apps.
"""

import os
import secrets
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine

from app.config import Settings, get_settings
from app.engines import database_url
from app.main import create_app
from tests.conftest import empty_tables, make_user

ROOT = Path(__file__).resolve().parents[1]
ME = "/api/v1/users/me"
PROCESSES = 8

# Each child builds its settings, reports ready, waits for the go line on stdin, then asks
# for the key: all of them reach signing_key() at about the same moment.
CHILD = """
import sys
from pathlib import Path
from app.config import Settings
settings = Settings(
    _env_file=None, environment="development", secret_key=None, secret_key_file=Path(sys.argv[1])
)
print("ready", flush=True)
sys.stdin.readline()
print(settings.signing_key(), flush=True)
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SECRET_KEY, ENVIRONMENT or other setting leaks in from the shell running the tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def production(secret_key: str | None) -> Settings:
    return Settings(_env_file=None, environment="production", secret_key=secret_key)


def development(key_file: Path) -> Settings:
    return Settings(
        _env_file=None, environment="development", secret_key=None, secret_key_file=key_file
    )


def test_production_without_a_secret_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production")


def test_production_with_an_empty_secret_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        production("")


@pytest.mark.parametrize(
    "key",
    [
        secrets.token_hex(16)[:31],  # 31 bytes
        "é" * 15 + "a",  # 16 characters, 31 bytes: the limit is in bytes
        "tooshort-key-value",
    ],
    ids=["31-bytes", "31-bytes-multibyte", "short"],
)
def test_production_with_a_key_under_32_bytes_is_refused(key: str) -> None:
    assert len(key.encode()) < 32
    with pytest.raises(ValidationError, match="SECRET_KEY") as excinfo:
        production(key)
    assert key not in str(excinfo.value)
    assert key not in repr(excinfo.value)


@pytest.mark.parametrize("key", ["changethis", "changeme", "secret"])
def test_production_with_a_placeholder_key_is_refused(key: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        production(key)


# Each is 32 bytes or more and has at least 12 different characters: only the placeholder
# check refuses them, so these fail if it is gone (issue 30: the short placeholders above are
# refused by the length check first, whether or not the placeholder check exists).
PADDED_PLACEHOLDERS = [
    "changeme-0123456789-0123456789-0123",
    "CHANGE-ME " * 4 + "123456",
    "your-secret-key-your-secret-key-2026",
    "0123456789abcdefghijk-changethis",
    "secret!@#$%^&*()_+secret!@#$%^&*()_+",
    "<python3 -c 'import secrets; print(secrets.token_urlsafe(48))'>",
]


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize("key", PADDED_PLACEHOLDERS)
def test_a_placeholder_padded_to_any_length_is_refused(environment: str, key: str) -> None:
    assert len(key.encode()) >= 32
    assert len(set(key)) >= 12
    with pytest.raises(ValidationError, match="SECRET_KEY is a placeholder value") as excinfo:
        Settings(_env_file=None, environment=environment, secret_key=key)
    assert key not in str(excinfo.value)


def test_a_padded_placeholder_in_a_key_file_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(PADDED_PLACEHOLDERS[0] + "\n")
    key_file.chmod(0o600)
    settings = development(key_file)
    with pytest.raises(ValueError, match=r"SECRET_KEY_FILE \(.*\) is a placeholder value"):
        settings.signing_key()


@pytest.mark.parametrize(
    "key",
    ["0" * 32, "ab" * 32, "0123456789a" * 3, "é" * 40, "a" * 36 + "-bcdefghij"],
)
def test_a_key_of_few_different_characters_is_refused(key: str) -> None:
    assert len(key.encode()) >= 32
    assert len(set(key)) < 12
    with pytest.raises(ValidationError, match="SECRET_KEY must have at least 12 different") as exc:
        production(key)
    assert key not in str(exc.value)


def test_a_key_of_exactly_12_different_characters_is_accepted() -> None:
    key = "0123456789ab" * 3
    assert production(key).signing_key() == key


def test_refusal_never_echoes_a_long_bad_key() -> None:
    key = "not-a-placeholder-but-too-short"  # 31 bytes
    assert len(key.encode()) == 31
    with pytest.raises(ValidationError, match="SECRET_KEY") as excinfo:
        production(key)
    text = str(excinfo.value) + repr(excinfo.value)
    assert key not in text
    assert key[-12:] not in text
    assert key[:12] not in text


@pytest.mark.parametrize(
    "key",
    [
        # Fixed, not drawn: about one random 32-character hex key in 60 has fewer than 12
        # different characters, and is refused (test_a_key_of_few_different_characters_...).
        "0123456789abcdef" * 2,  # exactly 32 bytes
        "0123456789abcdef" + "é" * 8,  # 24 characters, 32 bytes
        secrets.token_urlsafe(48),
    ],
    ids=["32-bytes", "32-bytes-multibyte", "64-bytes"],
)
def test_production_with_a_random_key_of_32_bytes_or_more_is_accepted(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = production(key)
    assert settings.signing_key() == key
    assert list(tmp_path.iterdir()) == []  # a configured key never writes a key file


def test_the_app_refuses_to_start_in_production_with_a_bad_key() -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production", secret_key="short")


@pytest.mark.usefixtures("fresh_settings_cache")
def test_the_app_refuses_to_start_on_a_bad_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file here
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "short-env-key")
    app = create_app()  # reads its settings as it starts (app.main:app is built so)
    with pytest.raises(ValidationError, match="SECRET_KEY") as excinfo, TestClient(app):
        pass
    assert "short-env-key" not in str(excinfo.value)


def test_configured_key_is_used_as_is_in_development(tmp_path: Path) -> None:
    key = secrets.token_urlsafe(32)
    settings = Settings(
        _env_file=None, environment="development", secret_key=key, secret_key_file=tmp_path / "k"
    )
    assert settings.signing_key() == key
    assert not (tmp_path / "k").exists()


def test_development_generates_a_private_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "dev.key"
    key = development(key_file).signing_key()

    assert len(key.encode()) >= 32
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [key_file]  # no temporary file left behind


def test_development_key_is_the_same_for_every_settings_object(tmp_path: Path) -> None:
    key_file = tmp_path / "dev.key"
    first = development(key_file).signing_key()
    assert development(key_file).signing_key() == first
    assert development(key_file).signing_key() == first
    assert development(tmp_path / "other.key").signing_key() != first


def test_processes_starting_at_once_share_one_development_key(tmp_path: Path) -> None:
    key_file = tmp_path / "dev.key"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SECRET_KEY", None)
    children = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-c", CHILD, str(key_file)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        assert not key_file.exists()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=60) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()

    for child, (_, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr
    keys = {stdout.strip() for stdout, _ in outputs}
    assert len(keys) == 1, keys
    (key,) = keys
    assert len(key.encode()) >= 32
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [key_file]


def test_development_tokens_survive_a_restart(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    key_file = tmp_path / "k"
    dev = settings.model_copy(
        update={"environment": "development", "secret_key": None, "secret_key_file": key_file}
    )
    with TestClient(create_app(dev)) as before:
        user = make_user(before)
        assert before.get(ME, headers=user.headers).status_code == 200
    key = key_file.read_text()

    with TestClient(create_app(dev)) as after:
        response = after.get(ME, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == user.id
    assert key_file.read_text() == key

    # The control: an app with another generated key rejects the same token.
    other = dev.model_copy(update={"secret_key_file": tmp_path / "other"})
    with TestClient(create_app(other)) as stranger:
        assert stranger.get(ME, headers=user.headers).status_code == 401


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_secret_key_means_unset_not_an_empty_key(tmp_path: Path, blank: str) -> None:
    # Compose passes SECRET_KEY= when it is not set; signing with "" would let anyone forge.
    settings = Settings(_env_file=None, secret_key=blank, secret_key_file=tmp_path / "key")
    assert settings.secret_key is None
    assert len(settings.signing_key()) >= 32
    with pytest.raises(ValidationError, match="SECRET_KEY is required"):
        Settings(_env_file=None, environment="production", secret_key=blank)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db",
        "postgres://u@h/db",
        "postgresql+psycopg2://u@h/db",
        "postgresql+asyncpg://u@h/db",
    ],
)
def test_any_postgresql_url_gets_our_drivers(url: str) -> None:
    settings = Settings(_env_file=None, database_url=url)
    assert database_url(settings, asynchronous=True).drivername == "postgresql+asyncpg"
    assert database_url(settings, asynchronous=False).drivername == "postgresql+psycopg2"
    assert database_url(settings, asynchronous=True).database == "db"


def test_sqlite_urls_get_our_drivers() -> None:
    settings = Settings(_env_file=None, database_url="sqlite:///./todo.db")
    assert database_url(settings, asynchronous=True).drivername == "sqlite+aiosqlite"
    assert database_url(settings, asynchronous=False).drivername == "sqlite+pysqlite"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "todo.db", ""])
def test_other_databases_are_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings(_env_file=None, database_url=url)


def test_the_service_runs_on_a_postgres_scheme_url(settings: Settings, db_engine: Engine) -> None:
    """postgres://, as some hosts hand it out, is served like postgresql://."""
    if settings.is_sqlite:
        pytest.skip("a PostgreSQL URL")
    url = "postgres://" + settings.database_url.split("://", 1)[1]
    try:
        with TestClient(create_app(settings.model_copy(update={"database_url": url}))) as client:
            make_user(client)
    finally:
        empty_tables(db_engine)


# --- Weak keys in every environment (issue 12) ------------------------------------------------


@pytest.mark.parametrize("environment", ["development", "test"])
@pytest.mark.parametrize(
    "key",
    ["changeme", "your-secret-key", "tooshort-key-value", "é" * 15 + "a"],
    ids=lambda k: k[:8],
)
def test_a_weak_configured_key_is_refused_outside_production_too(
    environment: str, key: str, tmp_path: Path
) -> None:
    # Compose's old default was SECRET_KEY=changeme, published on 0.0.0.0.
    with pytest.raises(ValidationError, match="SECRET_KEY") as excinfo:
        Settings(
            _env_file=None,
            environment=environment,
            secret_key=key,
            secret_key_file=tmp_path / "key",
        )
    assert key not in str(excinfo.value)


@pytest.mark.parametrize("environment", ["development", "test", "production"])
@pytest.mark.parametrize(
    "content",
    ["", "\n", "changeme\n", "short-key"],
    ids=["empty", "newline", "placeholder", "short"],
)
def test_a_weak_key_file_is_refused_in_every_environment(
    environment: str, content: str, tmp_path: Path
) -> None:
    # An empty key file used to give the key "": anyone could sign tokens with it.
    key_file = tmp_path / "key"
    key_file.write_text(content)
    key_file.chmod(0o600)
    settings = Settings(
        _env_file=None, environment=environment, secret_key=None, secret_key_file=key_file
    )
    with pytest.raises(ValueError, match="SECRET_KEY_FILE") as excinfo:
        settings.signing_key()
    assert not content.strip() or content.strip() not in str(excinfo.value)
    assert key_file.read_text() == content  # refused, never silently replaced


def test_an_app_with_an_empty_key_file_does_not_start(settings: Settings, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("")
    dev = settings.model_copy(
        update={"environment": "development", "secret_key": None, "secret_key_file": key_file}
    )
    with pytest.raises(ValueError, match="SECRET_KEY_FILE"), TestClient(create_app(dev)):
        pass


# --- Production's generated key file: an explicit opt-in (issue 12) ---------------------------


def test_production_generates_a_private_key_file_when_asked_to(tmp_path: Path) -> None:
    key_file = tmp_path / "data" / ".secret_key"
    key_file.parent.mkdir()
    settings = Settings(_env_file=None, environment="production", secret_key_file=key_file)
    key = settings.signing_key()
    assert len(key.encode()) >= 32
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Every worker and every restart reads the same key.
    again = Settings(_env_file=None, environment="production", secret_key_file=key_file)
    assert again.signing_key() == key


def test_production_never_uses_the_development_key_file_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".secret_key").write_text(secrets.token_urlsafe(48))
    with pytest.raises(ValidationError, match="SECRET_KEY is required"):
        Settings(_env_file=None, environment="production")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660], ids=oct)
def test_production_refuses_a_key_file_others_can_read(mode: int, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(secrets.token_urlsafe(48))
    key_file.chmod(mode)
    settings = Settings(_env_file=None, environment="production", secret_key_file=key_file)
    with pytest.raises(ValueError, match="SECRET_KEY_FILE"):
        settings.signing_key()


def test_production_accepts_an_operators_read_only_key_file(tmp_path: Path) -> None:
    key = secrets.token_urlsafe(48)
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o400)
    settings = Settings(_env_file=None, environment="production", secret_key_file=key_file)
    assert settings.signing_key() == key


# --- The first superuser's password follows the password rule (issue 12) ----------------------


@pytest.mark.parametrize(
    "password",
    ["short", "seven77", "é" * 36 + "x", "a" * 73, "nul\x00-in-the-password"],
    ids=["5-bytes", "7-bytes", "73-bytes-multibyte", "73-bytes", "nul"],
)
def test_first_superuser_password_follows_the_password_rule(password: str) -> None:
    with pytest.raises(ValidationError, match="first_superuser_password") as exc:
        Settings(
            _env_file=None,
            first_superuser_email="admin@example.com",
            first_superuser_password=password,
        )
    assert password not in str(exc.value)


@pytest.mark.parametrize("password", ["eight888", "é" * 36, "a" * 72])
def test_first_superuser_password_of_8_to_72_bytes_is_accepted(password: str) -> None:
    settings = Settings(
        _env_file=None, first_superuser_email="admin@example.com", first_superuser_password=password
    )
    assert settings.first_superuser_password is not None
    assert settings.first_superuser_password.get_secret_value() == password


# --- Empty variables mean "not set" (compose forwards every setting, empty when unset) ---------


def test_empty_environment_variables_fall_back_to_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in Settings.model_fields:
        monkeypatch.setenv(name.upper(), "")
    settings = Settings(_env_file=None)
    for name, field in Settings.model_fields.items():
        assert getattr(settings, name) == field.get_default(call_default_factory=True), name


def test_changes_are_heard_on_database_url_unless_it_is_a_transaction_pooler() -> None:
    direct = "postgresql://todo@db:5432/todo"
    pooled = "postgresql://todo@pooler:6432/todo"
    assert Settings(_env_file=None, database_url=direct).listen_url == direct
    behind = {"database_url": pooled, "db_pooler": "transaction", "migrate_on_startup": False}
    assert Settings(_env_file=None, **behind).listen_url is None  # type: ignore[arg-type]
    told = Settings(_env_file=None, database_listen_url=direct, **behind)  # type: ignore[arg-type]
    assert told.listen_url == direct
    assert Settings(_env_file=None, database_listen_url=" ").database_listen_url is None
    with pytest.raises(ValidationError):
        Settings(_env_file=None, database_listen_url="mysql://db/todo")
