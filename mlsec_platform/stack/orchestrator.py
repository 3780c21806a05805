"""The Dagster instance of the platform: Postgres storage whose login comes from OpenBao.

``dagster.yaml`` (repo root, used as ``DAGSTER_HOME``) names environment variables, never
values; this module fills them for the child processes it starts (webserver, daemon, run
workers), reading the password as the ``orchestrator`` identity at start time.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlsec_platform
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.settings import PlatformSettings


def project_root() -> Path:
    """The folder holding ``dagster.yaml`` and ``workspace.yaml``."""
    for candidate in (Path.cwd(), Path(mlsec_platform.__file__).resolve().parent.parent):
        if (candidate / "dagster.yaml").exists() and (candidate / "workspace.yaml").exists():
            return candidate
    raise ConfigurationError("run mlsec from the project folder (with dagster.yaml)")


def dagster_login(settings: PlatformSettings) -> dict[str, str]:
    """The Dagster instance's own Postgres login, read as the ``orchestrator`` identity. A
    secret: hand it to the instance only, never print or write it."""
    vault = VaultResource.for_identity(settings, "orchestrator")
    try:
        return vault.read_kv("postgres/dagster")
    finally:
        vault.revoke()


def orchestrator_environment(settings: PlatformSettings) -> dict[str, str]:
    """Variables for processes that use the Dagster instance. Contains the instance password:
    pass it to child processes only, never print or write it."""
    endpoints = settings.endpoints()
    login = dagster_login(settings)
    artifacts = settings.dagster_home
    (artifacts / "compute_logs").mkdir(parents=True, exist_ok=True)
    return {
        "DAGSTER_HOME": str(project_root()),
        "MLSEC_STATE_DIR": str(settings.root),
        "MLSEC_DAGSTER_ARTIFACTS": str(artifacts),
        "MLSEC_DAGSTER_COMPUTE_LOGS": str(artifacts / "compute_logs"),
        "DAGSTER_PG_HOST": endpoints.postgres_host,
        "DAGSTER_PG_PORT": str(endpoints.postgres_port),
        "DAGSTER_PG_DB": settings.dagster_db,
        "DAGSTER_PG_USERNAME": login["username"],
        "DAGSTER_PG_PASSWORD": login["password"],
    }


def apply_environment(env: dict[str, str]) -> None:
    """Use the instance from this process (e.g. `mlsec demo` runs assets in-process)."""
    os.environ.update(env)
