"""The Dagster instance of the platform: Postgres storage whose login comes from OpenBao.

``dagster.yaml`` (repo root) names the classes below and no value at all. Every process that
opens the instance (``dagster dev`` or ``mlsec ui`` from the repository root, their webserver,
daemon and code server, each run worker, ``mlsec demo``) builds the storage itself: it finds
the running stack from the settings (``<state_dir>/stack.json``, or ``MLSEC_*``) and reads the
instance's Postgres login from OpenBao as the ``orchestrator`` identity. The password lives in
that process's memory only: never in a file, the environment or the instance reference that
Dagster hands to its child processes. With no stack running, opening the instance fails with a
ConfigurationError that says to run ``mlsec up``.

``dagster definitions validate`` loads definitions only; Dagster marks it with
``DAGSTER_IS_DEFS_VALIDATION_CLI``, and it gets a throwaway local storage, so it needs no stack.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.root import LocalArtifactStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from sqlalchemy.engine import URL

import mlsec_platform
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.settings import PlatformSettings, get_settings
from mlsec_platform.stack.compute_logs import LakeComputeLogManager

#: Set by Dagster for `dagster definitions validate` (documented for this use).
DEFINITIONS_VALIDATION = "DAGSTER_IS_DEFS_VALIDATION_CLI"


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


def dagster_database_url(settings: PlatformSettings) -> str:
    """The SQLAlchemy URL of the instance's database, its password included: keep it in
    memory."""
    try:
        endpoints = settings.endpoints()
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"the Dagster instance of mlsec-platform lives in the stack's Postgres: {exc}, "
            "then run `dagster dev` or `mlsec ui` again"
        ) from None
    login = dagster_login(settings)
    return URL.create(
        "postgresql+psycopg2",  # SQLAlchemy 2.1 needs the driver named explicitly
        username=login["username"],
        password=login["password"],
        host=endpoints.postgres_host,
        port=endpoints.postgres_port,
        database=settings.dagster_db,
        query=settings.postgres_tls(),
    ).render_as_string(hide_password=False)


class _FromSettings:
    """An instance part that the platform's settings configure: nothing to set in the file."""

    @classmethod
    def config_type(cls) -> dict:
        return {}


class OrchestratorStorage(_FromSettings, DagsterPostgresStorage):
    """Runs, events and schedules in the stack's Postgres, as the instance's own user."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> DagsterPostgresStorage | DagsterSqliteStorage:
        if os.environ.get(DEFINITIONS_VALIDATION) == "1":
            return _ValidationStorage(inst_data)
        return cls(postgres_url=dagster_database_url(get_settings()), inst_data=inst_data)


class _ValidationStorage(DagsterSqliteStorage):
    """Storage for `dagster definitions validate`, which records nothing: SQLite in a temporary
    folder, removed when the process ends (the instance keeps the parts of this object, not
    the object itself, so the folder cannot go with it)."""

    def __init__(self, inst_data: ConfigurableClassData | None) -> None:
        folder = tempfile.mkdtemp(prefix="mlsec-definitions-validate-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        super().__init__(folder, inst_data=inst_data)


class OrchestratorArtifactStorage(_FromSettings, LocalArtifactStorage):
    """Run artifacts under ``<state_dir>/dagster``, however the process was started."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> LocalArtifactStorage:
        return cls(base_dir=str(get_settings().dagster_home), inst_data=inst_data)


class OrchestratorComputeLogs(_FromSettings, LakeComputeLogManager):
    """Step logs in the lake's ``dagster`` bucket as the ``orchestrator`` identity
    (``compute_logs.py``), staged under ``<state_dir>/dagster/compute_logs``."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> LocalComputeLogManager | LakeComputeLogManager:
        if os.environ.get(DEFINITIONS_VALIDATION) == "1":  # nothing runs: no stack needed
            folder = tempfile.mkdtemp(prefix="mlsec-definitions-validate-logs-")
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            return LocalComputeLogManager(folder, inst_data=inst_data)
        return cls(get_settings(), inst_data=inst_data)


def orchestrator_environment(settings: PlatformSettings) -> dict[str, str]:
    """Variables for processes that use the Dagster instance: where ``dagster.yaml`` is and
    which stack it opens. No secret: each process reads the instance's login itself. Raises
    ConfigurationError when no stack runs."""
    settings.endpoints()  # fail here, in one line, rather than in every Dagster process
    (settings.dagster_home / "compute_logs").mkdir(parents=True, exist_ok=True)
    return {
        "DAGSTER_HOME": str(project_root()),
        "MLSEC_STATE_DIR": str(settings.root),
    }


def apply_environment(env: dict[str, str]) -> None:
    """Use the instance from this process (e.g. `mlsec demo` runs assets in-process)."""
    os.environ.update(env)
