"""The promises of docker-compose.yml and the image's defaults, read off the files themselves:
a first `docker compose up` needs no .env and runs in production; every setting the service
reads can be set from .env; nothing fails open when a setting is forgotten."""

import ipaddress
import re
from pathlib import Path
from typing import Any

from app import tracing
from app.config import Settings
from tests.deploy.compose import app_service, compose_app_environment, compose_file, interpolate
from tests.runtime.image import dockerfile_env

ROOT = Path(__file__).resolve().parents[2]
# The container's own listening address: compose publishes 8000 (APP_PORT moves the published
# side) and its healthcheck probes it there.
FIXED_IN_THE_CONTAINER = {"BIND", "HOST", "PORT"}
# Every way gunicorn_conf.py reads a variable.
_GUNICORN_READ = re.compile(r'(?:_env\(|os\.environ\.get\(|os\.environ\[)"([A-Z_0-9]+)"')


def gunicorn_settings() -> set[str]:
    return set(_GUNICORN_READ.findall((ROOT / "gunicorn_conf.py").read_text()))


def test_compose_forwards_every_setting_the_service_reads() -> None:
    # A setting missing here is silently dropped when a user puts it in .env.
    read = {name.upper() for name in Settings.model_fields} | gunicorn_settings()
    read |= set(tracing.VARIABLES)  # OpenTelemetry's own, read by its SDK (app/tracing.py)
    assert {"FORWARDED_ALLOW_IPS", "WEB_CONCURRENCY", "TIMEOUT"} <= read  # the parser works
    assert set(app_service()["environment"]) == read - FIXED_IN_THE_CONTAINER


def test_every_forwarded_setting_comes_from_the_users_environment() -> None:
    # ${NAME:-default} or ${NAME:-} (docker-compose 1.29 syntax), never a value .env can't change.
    fixed = {"DATABASE_URL"}  # built from POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB
    for key, value in app_service()["environment"].items():
        if key not in fixed:
            assert re.fullmatch(rf"\$\{{{key}:-[^}}]*\}}", str(value)), (key, value)


def test_a_first_compose_up_runs_production_on_a_key_in_its_private_volume() -> None:
    env = compose_app_environment()
    assert env["ENVIRONMENT"] == "production"  # RESET_DB refused, weak keys refused
    assert env["SECRET_KEY"] == ""
    volumes = {mount.split(":")[1]: mount.split(":")[0] for mount in app_service()["volumes"]}
    key_file = Path(env["SECRET_KEY_FILE"])
    assert str(key_file.parent) in volumes  # survives restarts, shared by the workers
    # A named volume, no host path.
    assert volumes[str(key_file.parent)] in compose_file()["volumes"]
    # These settings start: production accepts the generated key file.
    values = {k.lower(): v for k, v in env.items() if v and k.lower() in Settings.model_fields}
    settings = Settings(_env_file=None, **values)
    assert settings.environment == "production"
    assert settings.secret_key is None
    assert settings.secret_key_file == key_file


def test_a_configured_key_still_wins_incompose_file() -> None:
    env = compose_app_environment({"SECRET_KEY": "k" * 8 + "-from-the-users-env-file-0123456789"})
    values = {k.lower(): v for k, v in env.items() if v and k.lower() in Settings.model_fields}
    settings = Settings(_env_file=None, **values)
    assert settings.signing_key() == env["SECRET_KEY"]


def test_the_image_defaults_to_production_with_no_key_of_its_own() -> None:
    env = dockerfile_env()
    assert env["ENVIRONMENT"] == "production"
    # A bare `docker run` without SECRET_KEY refuses to start rather than invent a key in the
    # container's layer: the key-file opt-in belongs to a deployment with a private volume.
    assert "SECRET_KEY" not in env
    assert "SECRET_KEY_FILE" not in env


def published_ports(ports: list[Any]) -> list[tuple[str, str, str]]:
    """(host address, published port, container port) of every mapping, in compose's short
    syntax ("[IP:][PUBLISHED:]TARGET[/PROTOCOL]") or its long one (a mapping with target,
    published, host_ip). No host address: every interface ("")."""
    mappings = []
    for port in ports:
        if isinstance(port, dict):
            mappings.append(
                (
                    interpolate(str(port.get("host_ip", "")), {}),
                    interpolate(str(port.get("published", "")), {}),
                    interpolate(str(port["target"]), {}),
                )
            )
            continue
        parts = interpolate(str(port), {}).split("/")[0].rsplit(":", 2)
        host, published, target = ["", "", *parts][-3:]
        mappings.append((host.strip("[]"), published, target))
    return mappings


def metrics_exposed(ports: list[Any], metrics_port: str) -> list[tuple[str, str, str]]:
    """Mappings that publish the metrics port beyond the host's loopback."""
    return [
        mapping
        for mapping in published_ports(ports)
        if mapping[2] == metrics_port and mapping[0] not in ("127.0.0.1", "::1")
    ]


def test_compose_keeps_metrics_off_the_published_port() -> None:
    env = compose_app_environment()
    metrics_port = env["METRICS_PORT"]
    assert metrics_port.isdigit()
    ports = app_service().get("ports", [])
    assert ("", "8000", "8000") in published_ports(ports)  # the parser reads the file's syntax
    assert metrics_exposed(ports, metrics_port) == []


def test_the_metrics_check_reads_both_port_syntaxes() -> None:
    """The check above finds a published metrics port however compose spells it (the file
    publishes none, so without these it would never have seen one)."""
    exposed = [
        "9100",
        "9100:9100",
        "0.0.0.0:9100:9100/tcp",
        {"target": 9100, "published": "9100"},
        {"target": 9100, "host_ip": "0.0.0.0", "published": 9100, "protocol": "tcp"},  # noqa: S104 - a planted exposure
    ]
    kept = ["127.0.0.1:9100:9100", {"target": 9100, "host_ip": "127.0.0.1"}, "8000:8000"]
    for port in exposed:
        assert metrics_exposed([port], "9100") != [], port
    assert metrics_exposed(kept, "9100") == []


def test_a_proxy_on_the_docker_host_is_trusted_by_default() -> None:
    """A proxy on the host reaches the container from its network's gateway, in Docker's
    default address pools (172.17.0.0/16 to 172.31.0.0/16): untrusted, every client would
    share that address and lock the others out (issue 29, MEDIUM 3). Clients on the internet
    keep their own (public) addresses and cannot name another in X-Forwarded-For."""
    value = compose_app_environment()["FORWARDED_ALLOW_IPS"]
    networks = [ipaddress.ip_network(entry.strip()) for entry in value.split(",")]
    assert "*" not in value
    assert any(ipaddress.ip_address("172.18.0.1") in network for network in networks)
    assert all(network.is_private for network in networks)
    assert not any(ipaddress.ip_address("203.0.113.7") in network for network in networks)
    # A value from .env still wins.
    assert compose_app_environment({"FORWARDED_ALLOW_IPS": "10.0.0.5"})["FORWARDED_ALLOW_IPS"] == (
        "10.0.0.5"
    )


def test_the_tracing_profile_adds_a_trace_ui_the_readme_points_at() -> None:
    # Optional: a plain `docker compose up` starts no trace backend, and tracing stays off
    # (no endpoint) until the user points the app at it, as the README's command does.
    jaeger = compose_file()["services"]["jaeger"]
    assert jaeger["profiles"] == ["tracing"]
    assert all("profiles" not in compose_file()["services"][name] for name in ("db", "app"))
    assert compose_app_environment()["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""
    # The UI on the host's loopback only; OTLP stays on the compose network.
    [published] = jaeger["ports"]
    assert interpolate(published, {}) == "127.0.0.1:16686:16686"
    readme = (ROOT / "README.md").read_text()
    command = "OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318 docker compose --profile tracing up"
    assert command in readme
    assert "http://localhost:16686" in readme
    assert any("0.0.0.0:4318" in argument for argument in jaeger["command"])


def test_every_default_service_builds_here_or_takes_its_image_from_a_variable() -> None:
    """A plain `docker compose up` must come up where no registry is reachable once the base
    images are there (../shared/tools/container-check.sh supplies DB_IMAGE, APP_IMAGE and
    PYTHON_IMAGE): a fixed image such as redis:7-alpine would fail to pull there."""
    for name, service in compose_file()["services"].items():
        if "profiles" in service:  # optional (the trace UI): not part of the default stack
            continue
        assert "build" in service or str(service["image"]).startswith("${"), name
    redis = compose_file()["services"]["redis"]
    assert redis["build"]["context"] == "docker/redis"
    assert (ROOT / "docker/redis/Dockerfile").is_file()
