"""Settings from the environment and `.env`; nothing here is read at import time."""

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app import settings_rules
from app.keys import check_key_strength, check_private, shared_key

# Outside production, with neither SECRET_KEY nor SECRET_KEY_FILE: the key generated here.
DEVELOPMENT_KEY_FILE = Path(".secret_key")


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected setting must not print every other one (the database
    # password, the superuser password) into the startup log. env_ignore_empty: compose
    # forwards every setting, as an empty variable when it is not set; empty means "default".
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", hide_input_in_errors=True, env_ignore_empty=True
    )

    project_name: str = "todo-api"
    version: str = "1.0.0"
    description: str = "Per-user todos over REST, with OAuth2 password login and JWTs."
    environment: Literal["development", "test", "production"] = "development"

    database_url: str = "sqlite:///./todo.db"
    # Schema work's own connection (default: DATABASE_URL). Direct to PostgreSQL when
    # DATABASE_URL goes through a transaction-mode pooler: the migration's session advisory
    # lock would not survive one.
    migration_database_url: str | None = None
    # Per worker process: workers x (pool size + overflow) must stay under max_connections.
    # No overflow by default: a connection opened for a burst and closed after it costs more
    # than waiting a moment for a pooled one (measured with bench/, issue 5).
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout: float = Field(default=5.0, gt=0)  # waiting for a free connection
    db_pool_recycle: int = Field(default=1800, ge=-1)  # replace connections older than this
    db_connect_timeout: int = Field(default=3, ge=1)
    # One bad query cannot hold a worker forever; 0 disables (migrations never have one).
    db_statement_timeout_ms: int = Field(default=5000, ge=0)
    # The longest a request waits for a lock (a list's, a row another request writes): then
    # 503 with Retry-After, so that waiters cannot pile up holding every pooled connection.
    # SQLite: 10x this is its busy timeout (every writer queues for its one write lock).
    lock_timeout_ms: int = Field(default=1000, ge=0)
    # "transaction": DATABASE_URL is a pooler in transaction mode (PgBouncer, CloudNativePG's
    # Pooler), where consecutive transactions may run on different server connections
    # (app.engines.create_db_engine says what changes, and what it costs).
    db_pooler: Literal["none", "transaction"] = "none"
    # PostgreSQL: the one connection per worker that LISTENs for committed changes (waiting
    # feed requests, app.changes.waiting). Direct to PostgreSQL: LISTEN does not survive a
    # transaction-mode pooler. Default: DATABASE_URL, unless DB_POOLER=transaction.
    database_listen_url: str | None = None

    secret_key: SecretStr | None = None
    # Where a generated key is kept (created once, 0600), so every worker and restart shares
    # it. Outside production it defaults to DEVELOPMENT_KEY_FILE; production uses one only when
    # this is set explicitly (compose does, in its private volume: README, "Security").
    secret_key_file: Path | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_expire_minutes: int = Field(default=30, ge=1)
    refresh_token_expire_days: int = Field(default=14, ge=1)
    # However often it is refreshed, a login ends this long after it began (each refresh
    # token's 14 days slide; the login's end does not).
    refresh_token_absolute_days: int = Field(default=90, ge=1)
    # A refresh token presented again this soon after its first use gets a pair too (two app
    # processes refreshing at once); later, it is reuse and ends the login (app.accounts.service).
    refresh_reuse_grace_seconds: int = Field(default=30, ge=0)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)

    allow_signup: bool = True
    first_superuser_email: str | None = None
    first_superuser_password: SecretStr | None = None
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    # Failures from one client address, across any emails, that lock the address for all.
    login_max_address_failures: int = Field(default=100, ge=1)
    # Failures for one account from clients without a device token, across all addresses,
    # past which only a client presenting one of the account's device tokens may try.
    login_max_account_failures: int = Field(default=50, ge=1)
    # Per worker: password checks and hashes that may wait for its hashing thread; past this,
    # a login, sign-up or password change is 503 at once instead of queueing for seconds.
    hash_queue_limit: int = Field(default=32, ge=1)
    # How often each worker deletes expired login failures, idempotency records and ended logins.
    purge_interval_seconds: float = Field(default=300, gt=0)

    # Tombstones of deleted lists and todos are kept this long; an older feed token is 410.
    changes_retention_days: int = Field(default=30, ge=1)

    # Requests under /api/v1 per user (valid access token) and per client address otherwise:
    # one or more "N/second|minute|hour|day" joined by ";" (app.ratelimit). The storage is
    # memory:// (per process) or a Redis URL shared by every worker and replica.
    rate_limit_enabled: bool = True
    rate_limit_user: str = "1200/minute"
    rate_limit_address: str = "300/minute"
    rate_limit_storage: str = "memory://"

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # Under gunicorn (app.server): a client must send its request head within HEADER_TIMEOUT
    # seconds and its body within BODY_TIMEOUT seconds after that, or it is disconnected; past
    # MAX_CONNECTIONS open connections a worker answers new requests 503.
    header_timeout: float = Field(default=10.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)
    # The sign-up, login, refresh and logout routes need no account, and their bodies are a
    # few hundred bytes: a smaller limit caps what an anonymous request can make us parse.
    auth_max_body_bytes: int = Field(default=16 * 1024, ge=1)
    # Account quotas (API.md, v1.2): bounded rows, and so bounded work, for any one account.
    max_todos_per_user: int = Field(default=10_000, ge=1)
    max_lists_per_user: int = Field(default=200, ge=1)
    # Serve /metrics from gunicorn's master on this port (not published with the API), and
    # answer 404 for it on the API port. Unset: /metrics on the API port.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    cors_origins: Annotated[list[str], NoDecode] = []
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "console"
    # One line per request (request id, method, route, status, duration). A deployment whose
    # ingress already logs every request can switch it off; errors are logged either way.
    access_log: bool = True

    migrate_on_startup: bool = True
    # Unset: one lock file per database (app.migrations.migration_lock_path), so that two
    # checkouts on one machine never wait for each other's migrations.
    migration_lock_path: Path | None = None
    reset_db: bool = False
    # Migrate at startup and load no demo data, whatever MIGRATE_ON_STARTUP says.
    update_db: bool = False

    @field_validator(
        "secret_key",
        "first_superuser_password",
        "migration_database_url",
        "database_listen_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # SECRET_KEY= (an empty variable, as compose passes an unset one) means "not set",
        # never an empty key that anyone could sign tokens with.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rate_limit_user", "rate_limit_address")
    @classmethod
    def _rate_limits(cls, value: str, info: ValidationInfo) -> str:
        settings_rules.check_rate_limits(value, (info.field_name or "").upper())
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_limit_storage(cls, value: str) -> str:
        settings_rules.check_rate_limit_storage(value)
        return value

    @field_validator("database_url", "migration_database_url", "database_listen_url")
    @classmethod
    def _known_database(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            settings_rules.check_database_url(value, (info.field_name or "").upper())
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _migrations_bypass_the_pooler(self) -> "Settings":
        # The migration lock is a session-level advisory lock, which a transaction-mode pooler
        # hands to another client at the end of the lock's own transaction.
        if self.db_pooler == "transaction" and self.migrates and not self.migration_database_url:
            raise ValueError(
                "DB_POOLER=transaction: set MIGRATION_DATABASE_URL to a direct connection to "
                "PostgreSQL for migrations, or MIGRATE_ON_STARTUP=false and migrate separately"
            )
        return self

    @field_validator("secret_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        # A forgeable token signs in as anyone, and a development server is often reachable
        # too: no environment runs on a weak or copied key.
        if value is not None:
            check_key_strength(value.get_secret_value(), "SECRET_KEY")
        return value

    @field_validator("first_superuser_password")
    @classmethod
    def _superuser_password_rule(cls, value: SecretStr | None) -> SecretStr | None:
        # The rule every other password follows.
        if value is not None:
            settings_rules.check_password(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _production_secret(self) -> "Settings":
        # Production never falls back to a key file nobody asked for.
        if self.environment == "production" and not (self.secret_key or self.secret_key_file):
            raise ValueError(
                "SECRET_KEY is required when ENVIRONMENT=production "
                "(or SECRET_KEY_FILE, a key file the service generates once: see the README)"
            )
        return self

    @property
    def schema_on_startup(self) -> Literal["reset", "migrate", "skip"]:
        """What startup does to the schema: a switch that asks for more work wins.

        RESET_DB=1 rebuilds with demo data (refused in production) whatever else is set;
        otherwise UPDATE_DB=1 or MIGRATE_ON_STARTUP=true migrates; only with both off (as on
        Kubernetes, where a Job migrates before the rollout) is the schema left alone.
        """
        if self.reset_db:
            return "reset"
        return "migrate" if self.update_db or self.migrate_on_startup else "skip"

    @property
    def migrates(self) -> bool:
        return self.schema_on_startup != "skip"

    def for_schema_work(self) -> "Settings":
        """These settings with MIGRATION_DATABASE_URL, when set, as the database to connect to."""
        if self.migration_database_url is None:
            return self
        return self.model_copy(update={"database_url": self.migration_database_url})

    @property
    def listen_url(self) -> str | None:
        """Where this worker LISTENs for changes; None: nowhere it would work (a pooler)."""
        if self.database_listen_url is not None:
            return self.database_listen_url
        return None if self.db_pooler == "transaction" else self.database_url

    @property
    def refresh_token_ttl(self) -> timedelta:
        return timedelta(days=self.refresh_token_expire_days)

    @property
    def login_lifetime(self) -> timedelta:
        return timedelta(days=self.refresh_token_absolute_days)

    @property
    def refresh_reuse_grace(self) -> timedelta:
        return timedelta(seconds=self.refresh_reuse_grace_seconds)

    @property
    def database_backend(self) -> str:
        """postgresql or sqlite (postgres:// URLs, as some hosts hand out, are PostgreSQL)."""
        return settings_rules.BACKENDS[settings_rules.scheme(self.database_url)]

    @property
    def is_sqlite(self) -> bool:
        return self.database_backend == "sqlite"

    def signing_key(self) -> str:
        """The JWT key: SECRET_KEY, or the one kept in SECRET_KEY_FILE (generated if missing)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.secret_key_file or DEVELOPMENT_KEY_FILE
        key = shared_key(path)
        source = f"SECRET_KEY_FILE ({path})"
        check_key_strength(key, source)
        if self.environment == "production":
            check_private(path, source)
        return key


@lru_cache
def get_settings() -> Settings:
    return Settings()
