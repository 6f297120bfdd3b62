"""The promises of deploy/kubernetes, read off the rendered manifests (`kubectl kustomize`):
an edit that breaks one fails here, not on a cluster."""

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; tests only

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = ["deploy/kubernetes", "deploy/kubernetes/cloudnativepg"]
Manifest = dict[str, Any]
CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598: some clusters number pods from it


def _kubectl() -> str:
    found = ROOT / ".venv-k8s/bin/kubectl"  # make lint-k8s installs it
    if found.exists():
        return str(found)
    on_path = shutil.which("kubectl")
    if on_path:
        return on_path
    reason = "kubectl not found (make lint-k8s installs it into .venv-k8s)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires the Kubernetes manifest tests to run: {reason}")
    pytest.skip(f"SKIPPING KUBERNETES MANIFEST TESTS: {reason}")


def _render(kustomization: str) -> list[Manifest]:
    result = subprocess.run(  # noqa: S603 - a fixed command on the repository's own files
        [_kubectl(), "kustomize", str(ROOT / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return _render(request.param)


def _one(
    manifests: list[Manifest], kind: str, name: str | None = None, app: str = "todo-api"
) -> Manifest:
    """The one `kind` (named `name`) of `app`: the service's own, not the Redis beside it."""
    found = [
        m
        for m in manifests
        if m["kind"] == kind
        and name in (None, m["metadata"]["name"])
        and m["metadata"].get("labels", {}).get("app.kubernetes.io/name", app) == app
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _settings(manifests: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = _one(manifests, "ConfigMap")["data"]
    return data


def _env(container: Manifest) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def _pod(manifests: list[Manifest], kind: str) -> Manifest:
    spec: Manifest = _one(manifests, kind)["spec"]["template"]["spec"]
    return spec


def _server(manifests: list[Manifest]) -> Manifest:
    container: Manifest = _pod(manifests, "Deployment")["containers"][0]
    return container


def test_probes_liveness_never_touches_the_database(rendered: list[Manifest]) -> None:
    server = _server(rendered)
    assert server["startupProbe"]["httpGet"]["path"] == "/health"
    assert server["livenessProbe"]["httpGet"]["path"] == "/health"
    assert server["readinessProbe"]["httpGet"]["path"] == "/health/ready"


def test_grace_period_outlasts_the_pause_and_the_graceful_timeout(
    rendered: list[Manifest],
) -> None:
    pod = _pod(rendered, "Deployment")
    pause = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    graceful = int(_settings(rendered).get("GRACEFUL_TIMEOUT", "30"))  # gunicorn_conf's default
    assert pause > 0
    assert pod["terminationGracePeriodSeconds"] > pause + graceful


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_every_container_runs_locked_down(rendered: list[Manifest], kind: str) -> None:
    pod = _pod(rendered, kind)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    writable = {volume["name"] for volume in pod["volumes"]}
    assert all("emptyDir" in volume for volume in pod["volumes"])
    for container in pod.get("initContainers", []) + pod["containers"]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 10001  # the image's user (Dockerfile)
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert {mount["name"] for mount in container.get("volumeMounts", [])} <= writable


def test_metrics_files_live_on_a_writable_volume(rendered: list[Manifest]) -> None:
    mounts = {mount["mountPath"] for mount in _server(rendered)["volumeMounts"]}
    assert {"/tmp", _settings(rendered)["PROMETHEUS_MULTIPROC_DIR"]} <= mounts  # noqa: S108


def test_pods_never_migrate_the_job_does(rendered: list[Manifest]) -> None:
    env = _env(_server(rendered))
    assert env["MIGRATE_ON_STARTUP"] == "false"
    assert env["UPDATE_DB"] == "0"
    assert env["RESET_DB"] == "0"
    job = _pod(rendered, "Job")["containers"][0]
    assert job["command"] == ["python", "-m", "app.migrations"]
    wait = _pod(rendered, "Deployment")["initContainers"][0]
    assert wait["command"][:4] == ["python", "-m", "app.migrations", "--wait"]
    for container in (job, wait, _server(rendered)):
        assert container["image"] == _server(rendered)["image"]
        assert {"secretRef": {"name": "todo-api"}} in container["envFrom"]
    spec = _one(rendered, "Job")["spec"]
    assert {"backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"} <= set(spec)


def test_no_secret_is_shipped(rendered: list[Manifest]) -> None:
    # The pods need the Secret the user creates; the repository holds none, not even a
    # placeholder that a cluster would accept.
    assert [m for m in rendered if m["kind"] == "Secret"] == []
    assert not {"SECRET_KEY", "DATABASE_URL", "MIGRATION_DATABASE_URL"} & set(_settings(rendered))
    assert _settings(rendered)["ENVIRONMENT"] == "production"  # refuses a missing or weak key


def test_hpa_pdb_and_service_select_the_server_pods(rendered: list[Manifest]) -> None:
    deployment = _one(rendered, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    target = _one(rendered, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    selectors = [
        _one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"],
        _one(rendered, "Service")["spec"]["selector"],
    ]
    job_labels = _one(rendered, "Job")["spec"]["template"]["metadata"]["labels"]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
        assert not selector.items() <= job_labels.items()  # the Job's pod is no endpoint


def test_connections_fit_under_max_connections(rendered: list[Manifest]) -> None:
    settings = _settings(rendered)
    # The request pool, the readiness probe's own connection (app.health.probe) and the one
    # that LISTENs for changes (app.changes.notifications).
    per_worker = int(settings["DB_POOL_SIZE"]) + int(settings.get("DB_MAX_OVERFLOW", "0")) + 2
    most = _one(rendered, "HorizontalPodAutoscaler")["spec"]["maxReplicas"]
    # PostgreSQL's default max_connections (100) less superuser_reserved_connections (3) and
    # the migration Job's one.
    assert most * int(settings["WEB_CONCURRENCY"]) * per_worker <= 100 - 3 - 1


def test_cloudnativepg_requests_go_through_the_transaction_pooler() -> None:
    manifests = _render("deploy/kubernetes/cloudnativepg")
    assert _one(manifests, "Cluster")["spec"]["instances"] == 3
    assert _one(manifests, "Pooler")["spec"]["pgbouncer"]["poolMode"] == "transaction"
    assert _settings(manifests)["DB_POOLER"] == "transaction"


def test_metrics_have_a_port_of_their_own_off_the_service(rendered: list[Manifest]) -> None:
    port = int(_settings(rendered)["METRICS_PORT"])
    server = _server(rendered)
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports["metrics"] == port
    assert ports["http"] != port
    annotations = _one(rendered, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    # The Service (so any Ingress in front of it) carries only the API.
    service_targets = {p["targetPort"] for p in _one(rendered, "Service")["spec"]["ports"]}
    assert service_targets <= {"http", ports["http"]}


# The namespace the README tells you to run Prometheus in (or to patch the policy for).
MONITORING_NAMESPACE = "monitoring"


def test_network_policy_lets_in_the_api_and_scrapes_from_the_monitoring_namespace_only(
    rendered: list[Manifest],
) -> None:
    port = int(_settings(rendered)["METRICS_PORT"])
    http = next(p["containerPort"] for p in _server(rendered)["ports"] if p["name"] == "http")
    rules = _one(rendered, "NetworkPolicy")["spec"]["ingress"]
    by_port = {p["port"]: rule for rule in rules for p in rule["ports"]}
    assert set(by_port) == {http, port}
    assert "from" not in by_port[http]  # ingress controllers: their labels are the cluster's
    # Scrapes only from pods of one namespace, the documented one (every namespace carries
    # its name as this label), never from any pod of the cluster or from outside it.
    sources = by_port[port]["from"]
    assert sources == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}
            }
        }
    ]
    readme = (ROOT / "README.md").read_text()
    assert f"`{MONITORING_NAMESPACE}` namespace" in readme


def test_proxies_in_the_cluster_are_trusted_for_x_forwarded_for(
    rendered: list[Manifest],
) -> None:
    """Behind an ingress controller every client would otherwise share its address, and five
    wrong guesses by anyone would lock an account for everyone (issue 29, MEDIUM 3)."""
    value = _settings(rendered)["FORWARDED_ALLOW_IPS"]
    networks = [ipaddress.ip_network(entry.strip()) for entry in value.split(",")]
    assert "*" not in value
    # The private ranges pods and nodes are numbered from (RFC 1918, RFC 6598, IPv6 ULA),
    # and no address on the internet: a client there cannot name its own address.
    assert all(network.is_private or network.subnet_of(CGNAT) for network in networks)
    for pod_address in ("10.244.1.7", "172.17.0.3", "192.168.3.4", "100.96.0.5", "fd00::5"):
        assert any(ipaddress.ip_address(pod_address) in network for network in networks)
    assert not any(ipaddress.ip_address("203.0.113.7") in network for network in networks)


def test_the_example_runs_a_locked_down_redis_only_the_servers_reach() -> None:
    rendered = _render("deploy/kubernetes/cloudnativepg")
    redis = _one(rendered, "Deployment", "todo-redis", app="todo-redis")
    pod = redis["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert container["args"][:4] == ["--save", "", "--appendonly", "no"]  # counts, not data
    service = _one(rendered, "Service", "todo-redis", app="todo-redis")
    port = service["spec"]["ports"][0]["port"]
    assert _settings(rendered)["RATE_LIMIT_STORAGE"] == f"redis://todo-redis:{port}/0"
    policy = _one(rendered, "NetworkPolicy", "todo-redis", app="todo-redis")["spec"]
    server_labels = _one(rendered, "Deployment")["spec"]["selector"]["matchLabels"]
    assert policy["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": server_labels}}],
         "ports": [{"port": port, "protocol": "TCP"}]}
    ]  # fmt: skip
    assert policy["egress"] == []
    # The servers may reach it: the base policy lets them out to Redis's port.
    egress = _one(rendered, "NetworkPolicy")["spec"]["egress"]
    assert any(p["port"] == port for rule in egress for p in rule["ports"])


def test_the_base_documents_where_the_rate_limits_count(rendered: list[Manifest]) -> None:
    assert "RATE_LIMIT_STORAGE" in _settings(rendered)
    text = (ROOT / "deploy/kubernetes/base/settings.env").read_text()
    assert "redis://" in text


def test_the_example_shows_the_tracing_variables_and_lets_spans_out(
    rendered: list[Manifest],
) -> None:
    # Commented out (tracing is off until a collector is named), but there to uncomment.
    example = (ROOT / "deploy/kubernetes/base/settings.env").read_text()
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"):
        assert f"# {name}=" in example
    egress = _one(rendered, "NetworkPolicy")["spec"]["egress"]
    assert {4317, 4318} <= {p["port"] for rule in egress for p in rule["ports"]}
