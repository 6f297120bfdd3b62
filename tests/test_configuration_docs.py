"""The settings as documented and as read: the README's Configuration table, .env.example,
app/config.py's Settings and gunicorn_conf.py name the same settings (issue 18)."""

import re
from pathlib import Path

from app import tracing
from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
# Every way gunicorn_conf.py reads a variable, with either quote.
_GUNICORN_READ = re.compile(r"""(?:_env\(|os\.environ\.get\(|os\.environ\[)["']([A-Z_0-9]+)["']""")


def settings_fields() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def gunicorn_settings() -> set[str]:
    return set(_GUNICORN_READ.findall((ROOT / "gunicorn_conf.py").read_text()))


def every_setting() -> set[str]:
    # OTEL_*: OpenTelemetry's own variables, read by its SDK (app/tracing.py names them).
    return settings_fields() | gunicorn_settings() | set(tracing.VARIABLES)


def readme_table() -> dict[str, str]:
    """The Configuration table's rows by the names in their first cell."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = line.split(" | ")
        if line.startswith("| `") and len(cells) > 1:
            for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]):
                assert name not in rows, f"{name} has two rows"
                rows[name] = line
    return rows


def env_example() -> dict[str, str]:
    """.env.example's settings (set or commented out) and the comment block above each."""
    names: dict[str, str] = {}
    comment: list[str] = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^#?\s?([A-Z][A-Z0-9_]*)=", line)
        if match:
            names[match[1]] = "\n".join(comment)
        elif line.startswith("#"):
            comment.append(line)
            continue
        comment = []
    return names


def test_the_parsers_find_what_they_should() -> None:
    assert {"WEB_CONCURRENCY", "TIMEOUT", "PORT", "PROMETHEUS_MULTIPROC_DIR"} <= gunicorn_settings()
    assert {"DATABASE_URL", "PROJECT_NAME"} <= settings_fields()
    assert len(readme_table()) > 40


def test_the_readme_table_has_every_setting_and_no_other() -> None:
    assert set(readme_table()) == every_setting()


def test_env_example_names_every_setting_and_no_other() -> None:
    assert set(env_example()) == every_setting()


def test_the_settings_that_do_nothing_on_sqlite_are_the_database_pool_ones() -> None:
    # app/engines.py's SQLite engine takes none of these; a new one belongs in the list
    # (and in the table's SQLite column) when it does nothing there either.
    no_effect = {name for name, row in readme_table().items() if row.endswith("| no effect |")}
    assert no_effect == {
        "DB_POOL_SIZE",
        "DB_MAX_OVERFLOW",
        "DB_POOL_TIMEOUT",
        "DB_POOL_RECYCLE",
        "DB_CONNECT_TIMEOUT",
        "DB_STATEMENT_TIMEOUT_MS",
        "DB_POOLER",
    }
    marked = "(PostgreSQL only, down to DB_POOLER.)"
    assert marked in env_example()["DB_POOL_SIZE"]
