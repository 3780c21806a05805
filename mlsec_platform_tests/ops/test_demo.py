"""`mlsec demo` on the embedded stack, then a hunt for every live secret where none may be."""

import json
import subprocess
from pathlib import Path

import dagster as dg
from dagster._serdes import serialize_value

from mlsec_platform.identities.catalog import IDENTITIES, S3_IDENTITIES
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.stack.orchestrator import project_root
from mlsec_platform_tests.helpers import s3_keys_of, vault_as


def test_demo_materializes_the_graph_and_verifies_the_audit_chain(demo_output):
    assert "all servers healthy" in demo_output
    assert "silver/br_states" in demo_output and "27 rows" in demo_output
    for asset in ("silver/customers", "gold/fact_order_item", "warehouse/customer_rfm_online"):
        assert asset in demo_output
    assert "gate FAILED" not in demo_output
    assert "intact" in demo_output
    assert "Demo finished" in demo_output


def test_demo_ends_with_next_steps_a_newcomer_can_copy(demo_output, settings):
    steps = demo_output[demo_output.index("Next steps") :]
    assert "http://127.0.0.1:3000" in steps
    assert (
        f"mlsec broker &     # the Access Broker on https://127.0.0.1:{settings.broker_port}"
        in steps
    )
    assert "mlsec gateway &" in steps and "mlsec down" in steps
    assert 'eval "$(mlsec cert issue --subject ana --out certs --shell)"' in steps
    assert "mlsec token issue --audience mlsec-broker --subject ana --group analysts" in steps
    # The demo ran in its own state folder: the steps say so, or they would reach another stack.
    assert f"export MLSEC_STATE_DIR={settings.root}" in steps


def test_demo_runs_are_in_the_postgres_backed_instance(demo_output):
    with dg.DagsterInstance.get() as instance:
        assert "postgres" in type(instance.run_storage).__module__
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"mlsec/trigger": "demo"}))
        assert runs and runs[0].is_success
        record = instance.get_latest_materialization_event(dg.AssetKey(["silver", "br_states"]))
        assert record.asset_materialization.metadata["delta_version"].value >= 0


def test_every_demo_run_is_a_named_job(demo_output):
    """Sensor-launched batches run as their source's ingest job, so the runs list says what
    each run was; none is an anonymous asset job."""
    with dg.DagsterInstance.get() as instance:
        names = {run.job_name for run in instance.get_runs()}
    assert not {n for n in names if n.startswith("__")}, names
    assert {"ingest_olist_orders", "ingest_order_status_events", "curated"} <= names, names


def _live_secrets(settings, endpoints) -> dict[str, str]:
    """Every secret value the running platform holds right now, by where it came from."""
    found: dict[str, str] = {}
    for path in settings.secrets_dir.iterdir():
        text = path.read_text().strip()
        if path.suffix == ".json":
            for key, value in json.loads(text).items():
                if key in ("secret_key", "password"):
                    found[f"{path.name}:{key}"] = value
        else:
            found[path.name] = text
    for name in IDENTITIES:
        found[f"{name}/secret_id"] = (settings.identities_dir / name / "secret_id").read_text()
    for identity in S3_IDENTITIES:
        keys = s3_keys_of(identity.name, settings, endpoints)
        found[f"s3/{identity.name}"] = keys["secret_access_key"]
    dagster = vault_as("orchestrator", settings, endpoints).read_kv("postgres/dagster")
    found["postgres/dagster"] = dagster["password"]
    assert all(len(v) >= 16 for v in found.values()), "a secret this short would be a finding too"
    return found


def _texts_that_must_be_clean(settings, demo_output: str) -> dict[str, str]:
    texts = {"demo output": demo_output}
    root = project_root()
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        path = root / name
        if path.is_file():
            texts[f"repo:{name}"] = path.read_text(errors="replace")
    state = settings.root
    for folder in (
        state / "logs",
        state / "openbao" / "audit",
        state / "postgres" / "log",
        settings.dagster_home,
    ):
        for path in folder.rglob("*"):
            if path.is_file():
                texts[f"state:{path.relative_to(state)}"] = path.read_text(errors="replace")
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs():
            texts[f"run {run.run_id} config"] = json.dumps(run.run_config) + json.dumps(run.tags)
            for entry in instance.all_logs(run.run_id):
                texts.setdefault(f"run {run.run_id} events", "")
                texts[f"run {run.run_id} events"] += serialize_value(entry)
    return texts


def test_no_live_secret_appears_anywhere(demo_output, settings, endpoints, tmp_path):
    secrets = _live_secrets(settings, endpoints)
    texts = _texts_that_must_be_clean(settings, demo_output)
    # Error messages too: a refused login and an unreachable OpenBao.
    messages = []
    for addr in (endpoints.vault_addr, "http://127.0.0.1:9"):
        try:
            VaultResource(addr=addr, identity="broker", credentials_dir=str(tmp_path)).read_kv("x")
        except Exception as exc:  # noqa: BLE001 - the message is what is inspected
            messages.append(str(exc))
    texts["error messages"] = "\n".join(messages)
    assert len(texts) > 20
    leaks = [
        f"{label} found in {where}"
        for label, value in secrets.items()
        for where, text in texts.items()
        if value in text
    ]
    assert leaks == []


def test_demo_fails_clearly_without_a_stack(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSEC_STATE_DIR", str(tmp_path / "nothing-here"))
    result = subprocess.run(
        [str(Path(__import__("sys").executable).parent / "mlsec"), "bootstrap"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ},
        timeout=60,
    )
    assert result.returncode == 2
    assert "no running local stack" in result.stderr and "mlsec up" in result.stderr
    assert "Traceback" not in result.stderr
