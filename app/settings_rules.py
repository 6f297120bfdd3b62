"""What some settings' values must look like: the checks app.config's validators run, apart
from the fields they check. Each raises ValueError with the message a failed startup shows
(never the value itself: it may be a secret)."""

from limits import parse_many
from pydantic import TypeAdapter, ValidationError

from app.passwords import Password

BACKENDS = {"postgresql": "postgresql", "postgres": "postgresql", "sqlite": "sqlite"}
_PASSWORD_RULE: TypeAdapter[str] = TypeAdapter(Password)
# What `limits` can count in across processes (Redis, Sentinel, Cluster), or memory://.
_RATE_LIMIT_STORAGES = {
    "memory",
    "redis",
    "rediss",
    "redis+unix",
    "redis+sentinel",
    "redis+cluster",
}


def scheme(url: str) -> str:
    """postgresql+asyncpg://... -> postgresql: the URL's database, without its driver."""
    return url.partition(":")[0].partition("+")[0]


def check_database_url(url: str, name: str) -> None:
    # The driver part is ours to choose (app.database): any PostgreSQL or SQLite URL works.
    if scheme(url) not in BACKENDS:
        raise ValueError(f"{name} must start with postgresql:// or sqlite://")


def check_rate_limits(value: str, name: str) -> None:
    try:
        items = parse_many(value)
    except ValueError:
        items = []
    if not items or any(item.amount < 1 for item in items):
        raise ValueError(f"{name} must be N/second|minute|hour|day (N >= 1), joined by ';'")


def check_rate_limit_storage(value: str) -> None:
    if value.partition("://")[0].removeprefix("async+") not in _RATE_LIMIT_STORAGES:
        raise ValueError(
            "RATE_LIMIT_STORAGE must be memory:// or a Redis URL (redis://, rediss://, "
            "redis+unix://, redis+sentinel://, redis+cluster://)"
        )


def check_password(password: str) -> None:
    """The rule every password follows (and bcrypt's 72-byte limit). Only the rule's message
    goes on, never the inner error, which would carry the password itself."""
    try:
        _PASSWORD_RULE.validate_python(password)
    except ValidationError as exc:
        raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
