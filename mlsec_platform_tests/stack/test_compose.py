"""docker/: the compose stack holds together, without a Docker engine to run it here.

What is checked is what reading the files can show: each container mounts the credentials
of its own identity and no other, the Dagster workspace and the code-location servers match
the platform's locations, NATS knows every workload user with the rights the embedded server
gives it, every variable is a real setting, every secret has an example, OpenBao unseals
itself, the smoke script parses, and Prometheus scrapes what serves metrics while the Grafana
dashboard asks only for metrics the platform has. `docker/smoke.sh` runs it for real where
Docker is.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mlsec_platform.identities.catalog import IDENTITIES
from mlsec_platform.locations import LOCATIONS
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.bootstrap.server_certs import OPENBAO, PLATFORM_CA_SERVERS
from mlsec_platform.stack.servers.nats import NATS_USERS, connector_subjects

DOCKER = Path(__file__).resolve().parents[2] / "docker"
COMPOSE = yaml.safe_load((DOCKER / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
SERVERS = {"openbao", "minio", "postgres", "nats"}

#: Whose credentials each platform container may hold. Code-location servers launch runs,
#: which write to the Dagster instance: its login is the orchestrator's.
EXPECTED_IDENTITIES = {
    "bootstrap": set(IDENTITIES),
    "dagster-webserver": {"orchestrator"},
    "dagster-daemon": {"orchestrator"},
    "gateway": {"gateway"},
    "broker": {"broker"},
    "pipeline-metrics": {"orchestrator"},
    **{f"code-{name}": {loc.identity, "orchestrator"} for name, loc in LOCATIONS.items()},
}


def _mounts(service: dict) -> list[tuple[str, str]]:
    return [tuple(v.split(":")[:2]) for v in service.get("volumes", [])]


def _identities(service: dict) -> set[str]:
    found = set()
    for source, target in _mounts(service):
        if source.startswith("id-"):
            identity = source.removeprefix("id-")
            assert target == f"/var/lib/mlsec/identities/{identity}", (source, target)
            found.add(identity)
    return found


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_container_holds_its_own_identity_only(name):
    service = SERVICES[name]
    assert _identities(service) == EXPECTED_IDENTITIES.get(name, set())
    if name != "bootstrap":
        assert all(not s.startswith("./secrets") for s, _ in _mounts(service)), name
        held = [v for v in service.get("volumes", []) if v.startswith("id-")]
        assert all(v.endswith(":ro") for v in held), held


def test_every_identity_has_a_volume_the_bootstrap_fills():
    assert {f"id-{name}" for name in IDENTITIES} <= set(COMPOSE["volumes"])
    dockerfile = (DOCKER / "Dockerfile").read_text()
    # Created in the image with the user as owner, so a new volume starts out writable.
    listed = re.search(r"for identity in ([\w ]+); do", dockerfile)
    assert listed and set(listed[1].split()) == set(IDENTITIES)


def test_the_workspace_serves_each_location_from_its_own_server():
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    servers = {e["grpc_server"]["location_name"]: e["grpc_server"] for e in workspace["load_from"]}
    assert set(servers) == set(LOCATIONS)
    for name, server in servers.items():
        command = SERVICES[server["host"]]["command"]
        assert command[command.index("-m") + 1] == f"mlsec_platform.locations.{name}"
        assert command[command.index("-p") + 1] == str(server["port"])


def test_nats_knows_every_workload_user_with_the_embedded_servers_rights():
    conf = (DOCKER / "nats" / "nats.conf").read_text()
    users = re.findall(r'\{ user: "(\w+)", password: \$(\w+)', conf)
    assert {u for u, _ in users} == set(NATS_USERS)
    example = (DOCKER / "secrets.example" / "nats.env").read_text()
    for user, variable in users:
        assert f"{variable}=" in example
        assert (DOCKER / "secrets.example" / f"nats-{user}.json").exists()
    connector = conf.split('user: "connector"', 1)[1]
    allowed = re.findall(r'"(\$JS\.[^"]+)"', connector)
    assert allowed == connector_subjects()


def test_every_variable_is_a_setting_and_every_secret_has_an_example():
    names = {
        (field.alias or f"MLSEC_{name}").upper()
        for name, field in PlatformSettings.model_fields.items()
    }
    for service in SERVICES.values():
        for variable in service.get("environment", {}):
            if variable.startswith("MLSEC_"):
                assert variable in names, variable
    for secret in COMPOSE["secrets"].values():
        assert (DOCKER / "secrets.example" / Path(secret["file"]).name).exists(), secret
    for needed in ("openbao-bootstrap-token", "s3-admin.json", "postgres-vault-admin"):
        assert (DOCKER / "secrets.example" / needed).exists()


def test_openbao_unseals_itself_with_the_key_compose_mounts():
    config = (DOCKER / "openbao" / "config.hcl").read_text()
    seal = re.search(r'seal "static" \{[^}]*current_key\s*=\s*"file://([^"]+)"', config)
    assert seal and seal[1] == "/run/secrets/openbao_seal_key"
    assert "openbao_seal_key" in SERVICES["openbao"]["secrets"]


def test_the_smoke_script_parses():
    subprocess.run(["bash", "-n", str(DOCKER / "smoke.sh")], check=True)


def _exposed_metric_names() -> set[str]:
    """Every sample name the broker, the gateway and `mlsec metrics` can expose."""
    import dagster as dg
    from prometheus_client import CollectorRegistry

    from broker_api.metrics import BrokerMetrics
    from mlsec_platform.gateway.observed import GatewayMetrics
    from mlsec_platform.telemetry.lineage import LineageEmitter
    from mlsec_platform.telemetry.pipeline_metrics import PipelineMetrics

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "gauge": ("",),
    }
    broker = BrokerMetrics()
    LineageEmitter(None, registry=broker.registry)
    with dg.instance_for_test() as instance:
        pipeline = CollectorRegistry()
        pipeline.register(PipelineMetrics(instance))
        families = [
            family
            for registry in (broker.registry, GatewayMetrics().registry, pipeline)
            for family in registry.collect()
        ]
    return {f.name + suffix for f in families for suffix in suffixes[f.type]}


def test_the_dashboard_asks_only_for_metrics_that_exist():
    dashboard = json.loads((DOCKER / "grafana" / "dashboards" / "mlsec-platform.json").read_text())
    source = yaml.safe_load(
        (DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    (datasource,) = source["datasources"]
    exposed = _exposed_metric_names()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    asked: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        for target in panel["targets"]:
            names = set(
                re.findall(r"\b(?:broker|gateway|mlsec_pipeline|openlineage)_\w+", target["expr"])
            )
            assert names, f"{panel['title']}: no platform metric in {target['expr']}"
            assert names <= exposed, f"{panel['title']}: {sorted(names - exposed)} do not exist"
            asked |= names
    # Each of the three sources is on the dashboard.
    assert {n.split("_")[0] for n in asked} >= {"broker", "gateway", "mlsec", "openlineage"}


def test_prometheus_scrapes_each_metrics_endpoint_with_the_credential():
    config = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    prometheus = SERVICES["prometheus"]
    mounted = {target for _, target in _mounts(prometheus)}
    assert "/etc/prometheus/prometheus.yml" in mounted and "/etc/prometheus/ca" in mounted
    ports = {"broker": "8480", "gateway": "8470", "pipeline-metrics": "9464"}
    jobs = {}
    for job in config["scrape_configs"]:
        ((host, port),) = [t.split(":") for c in job["static_configs"] for t in c["targets"]]
        assert port == ports[host] and host in SERVICES, job["job_name"]
        assert SERVICES[host]["command"][-1] == port
        secret = job["authorization"]["credentials_file"].removeprefix("/run/secrets/")
        assert secret in prometheus["secrets"] and secret in SERVICES[host]["secrets"]
        if job["scheme"] == "https":  # mTLS: a client certificate of the platform CA
            for key in ("cert_file", "key_file"):
                name = job["tls_config"][key].removeprefix("/run/secrets/")
                assert name in prometheus["secrets"] and name in COMPOSE["secrets"]
            assert job["tls_config"]["ca_file"].startswith("/etc/prometheus/ca/")
        jobs[host] = job
    assert set(jobs) == set(ports)
    # Each service reads the credential from the file Prometheus sends.
    assert (
        SERVICES["broker"]["environment"]["MLSEC_BROKER_METRICS_CREDENTIAL_FILE"]
        == SERVICES["gateway"]["environment"]["MLSEC_METRICS_CREDENTIAL_FILE"]
        == SERVICES["pipeline-metrics"]["environment"]["MLSEC_METRICS_CREDENTIAL_FILE"]
        == "/run/secrets/metrics_scrape_credential"
    )
    for source, _ in _mounts(SERVICES["grafana"]):
        if source.startswith("./"):
            assert (DOCKER / source).exists(), source


# -- TLS between the containers -----------------------------------------------------------

PLATFORM_SERVICES = {n for n, s in SERVICES.items() if s.get("image") == "mlsec-platform:local"}
#: Each server's TLS volume, named by the folder `mlsec server-certs` fills.
TLS_VOLUMES = {s.folder: f"tls-{s.folder}" for s in (OPENBAO, *PLATFORM_CA_SERVERS)}


def _mount_target(service: dict, volume: str) -> str:
    (target,) = [t for s, t in _mounts(service) if s == volume]
    return target


@pytest.mark.parametrize("name", sorted(PLATFORM_SERVICES))
def test_every_client_reaches_the_servers_over_tls_and_verifies_them(name, monkeypatch):
    environment = SERVICES[name]["environment"]
    for variable, value in environment.items():
        if variable.startswith("MLSEC_"):
            monkeypatch.setenv(variable, str(value))
    monkeypatch.delenv("MLSEC_STATE_DIR", raising=False)  # not created here
    settings = PlatformSettings()
    assert settings.vault_addr == "https://openbao:8200"
    assert settings.s3_endpoint == "https://minio:9000"
    assert settings.nats_url == "tls://nats:4222"
    assert "MLSEC_POSTGRES_SSLMODE" not in environment
    assert settings.postgres_tls() == {
        "sslmode": "verify-full",
        "sslrootcert": str(settings.server_ca("postgres")),
    }
    # OpenBao is trusted on the bootstrap CA's word only, the others on the platform CA's.
    assert set(settings.server_ca_files) == {"vault", "s3", "postgres", "nats"}
    assert settings.server_ca("vault").name == "bootstrap-ca.pem"
    assert {settings.server_ca(s) for s in ("s3", "postgres", "nats")} == {settings.ca_bundle}
    ca_mount = _mount_target(SERVICES[name], "ca")
    assert all(str(p).startswith(ca_mount + "/") for p in settings.server_ca_files.values())


def test_each_server_holds_its_own_certificate_and_bootstrap_fills_them_all():
    assert set(TLS_VOLUMES.values()) <= set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        held = {s for s, _ in _mounts(service) if s.startswith("tls-")}
        if name == "bootstrap":
            assert held == set(TLS_VOLUMES.values())
        else:
            assert held == ({TLS_VOLUMES[name]} if name in TLS_VOLUMES else set()), name
    bootstrap = SERVICES["bootstrap"]
    for folder, volume in TLS_VOLUMES.items():
        assert _mount_target(bootstrap, volume) == f"/var/lib/mlsec/tls/{folder}"
        assert f"/var/lib/mlsec/tls/{folder}" in (DOCKER / "Dockerfile").read_text()
    # The bootstrap CA's certificate is kept between runs (its key is in ./secrets).
    assert _mount_target(bootstrap, "server-tls") == "/var/lib/mlsec/tls"


def test_postgres_serves_tls_and_admits_tls_clients_only():
    postgres = SERVICES["postgres"]
    options = dict(o.split("=", 1) for o in postgres["command"][1:] if o != "-c")
    assert options["ssl"] == "on"
    tls_dir = "/var/run/postgresql/tls"
    assert options["ssl_cert_file"] == f"{tls_dir}/server.pem"
    assert options["ssl_key_file"] == f"{tls_dir}/server.key"
    # The key is copied to the postgres user's folder before the image's entrypoint runs.
    script = postgres["entrypoint"][2]
    assert f"/run/tls/server.key {tls_dir}/" in script.replace("\n", " ")
    assert script.rstrip().endswith('exec docker-entrypoint.sh "$$@"')
    assert _mount_target(postgres, "tls-postgres") == "/run/tls"
    hba = [s for s, t in _mounts(postgres) if t == options["hba_file"]]
    lines = [
        line.split()
        for line in (DOCKER / hba[0]).read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {line[0] for line in lines} == {"local", "hostssl"}
    assert all(line[-1] == "scram-sha-256" for line in lines)


def test_openbao_nats_and_minio_serve_tls_only():
    config = (DOCKER / "openbao" / "config.hcl").read_text()
    assert "tls_disable" not in config
    assert 'tls_cert_file      = "/openbao/tls/server.pem"' in config
    assert re.search(r'api_addr\s*=\s*"https://openbao:8200"', config)
    assert "/run/tls/server.key /openbao/tls/" in SERVICES["openbao"]["entrypoint"][2]
    assert _mount_target(SERVICES["openbao"], "tls-openbao") == "/run/tls"
    nats_conf = (DOCKER / "nats" / "nats.conf").read_text()
    tls_dir = _mount_target(SERVICES["nats"], "tls-nats")
    assert f'cert_file: "{tls_dir}/server.pem"' in nats_conf
    assert f'key_file: "{tls_dir}/server.key"' in nats_conf
    assert re.search(r'^https: "0\.0\.0\.0:8222"', nats_conf, re.M)
    assert not re.search(r"^http:", nats_conf, re.M)
    minio = SERVICES["minio"]
    command = minio["command"]
    assert command[command.index("--certs-dir") + 1] == _mount_target(minio, "tls-minio")
    files = PLATFORM_CA_SERVERS[0]
    assert (files.folder, files.certificate_name, files.key_name) == (
        "minio",
        "public.crt",
        "private.key",
    )


def test_the_smoke_script_issues_certificates_before_each_server_starts():
    script = (DOCKER / "smoke.sh").read_text()
    order = [
        "alone server-certs --listener-only",
        "compose up -d --wait openbao",
        "alone server-certs)",
        "compose up -d --wait minio postgres nats",
        "mlsec bootstrap",
    ]
    positions = [script.index(step) for step in order]
    assert positions == sorted(positions)
