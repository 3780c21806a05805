"""Dagster's own commands from the repository root, in a developer's shell (no Dagster variable
set): `dagster definitions validate` needs no stack; `dagster dev` opens the platform's instance
on the running stack, and without one says what to run."""

import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._core.instance.ref import InstanceRef

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.stack.orchestrator import project_root
from mlsec_platform_tests.stack.webserver import code_locations, run_to_the_end, serving

ROOT = project_root()
DAGSTER = Path(sys.executable).with_name("dagster")


def developer_environment(**variables: str) -> dict[str, str]:
    """This process's environment without any DAGSTER_* variable, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    return {**env, **variables}


def test_definitions_validate_needs_no_stack(tmp_path):
    state = tmp_path / ".mlsec"
    env = {k: v for k, v in developer_environment().items() if not k.startswith("MLSEC_")}
    result = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env={**env, "MLSEC_STATE_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "All code locations passed validation" in output
    assert not state.exists()


def test_opening_the_instance_without_a_stack_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSEC_STATE_DIR", str(tmp_path / ".mlsec"))
    monkeypatch.delenv("DAGSTER_IS_DEFS_VALIDATION_CLI", raising=False)
    # What `dagster dev` does with no DAGSTER_HOME: the root's dagster.yaml, a temporary home.
    ref = InstanceRef.from_dir(str(tmp_path / "home"), config_dir=str(ROOT))
    with pytest.raises(ConfigurationError) as refused:
        dg.DagsterInstance.from_ref(ref)
    assert f"no running local stack under {tmp_path / '.mlsec'}" in str(refused.value)
    assert "`mlsec up`, then run `dagster dev` or `mlsec ui`" in str(refused.value)


@pytest.fixture(scope="module")
def dagster_dev(supervisor, settings):
    """`dagster dev` as the README says to run it: from the repository root, nothing else."""

    def command(port: int) -> list[str]:
        return [str(DAGSTER), "dev", "-p", str(port)]

    with serving(command, cwd=ROOT, env=developer_environment()) as port:
        yield port


def test_dagster_dev_runs_on_the_platform_instance(dagster_dev, supervisor, settings):
    # workspace.yaml, not one merged location: a process per writer identity.
    assert code_locations(dagster_dev) == dict.fromkeys(
        ("ingestion", "curation", "lifecycle"), "RepositoryLocation"
    )
    run_id, status = run_to_the_end(dagster_dev, "reference_data")
    assert status == "SUCCESS"
    # Recorded in the stack's Postgres, where `mlsec ui` and the broker's lineage look.
    dsn = supervisor.postgres.superuser_dsn(settings.dagster_db)
    with closing(psycopg2.connect(**dsn)) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS",)
