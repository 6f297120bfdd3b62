"""Settings for an app built in a test without the conftest fixtures (a module-level schema,
an app per test): the test secret, real bcrypt at its lowest cost, no .env."""

from app.config import Settings
from tests.conftest import TEST_SECRET


def app_settings(database_url: str, **overrides: object) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        bcrypt_rounds=4,
        **overrides,  # type: ignore[arg-type]
    )
