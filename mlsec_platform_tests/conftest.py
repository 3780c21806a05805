"""One real embedded stack for the whole test session, started by the product's supervisor.

It runs on free loopback ports under a temporary state folder, so it never meets a stack a
developer has running. The reader TTL is short so lease expiry is observable in a test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlsec_platform.settings import Endpoints, PlatformSettings, get_settings

#: Session fixtures shared across packages: the curated data set (``curated``).
pytest_plugins = ["mlsec_platform_tests.curated_data"]

READER_TTL_SECONDS = 8

TEST_ENV = {
    "MLSEC_PROFILE": "local",
    "MLSEC_PREFER_DEFAULT_PORTS": "false",
    "MLSEC_PG_READER_TTL": str(READER_TTL_SECONDS),
    # Redelivery of unacknowledged events after a killed run, quickly.
    "MLSEC_NATS_ACK_WAIT": "5",
}


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformSettings]:
    state = tmp_path_factory.mktemp("mlsec-state")
    saved = {k: os.environ.get(k) for k in (*TEST_ENV, "MLSEC_STATE_DIR")}
    os.environ.update({**TEST_ENV, "MLSEC_STATE_DIR": str(state)})
    try:
        yield get_settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def supervisor(settings: PlatformSettings):
    from mlsec_platform.stack.bootstrap import bootstrap
    from mlsec_platform.stack.supervisor import Supervisor

    sup = Supervisor(settings, progress=print)
    try:
        endpoints = sup.up()
        bootstrap(settings, endpoints, progress=print)
        yield sup
    finally:
        sup.down()


@pytest.fixture(scope="session")
def endpoints(supervisor) -> Endpoints:
    return supervisor.endpoints()


@pytest.fixture(scope="session")
def superuser_dsn(supervisor) -> dict:
    return supervisor.postgres.superuser_dsn("warehouse")


@pytest.fixture(scope="session")
def state_dir(settings: PlatformSettings) -> Path:
    return settings.root


@pytest.fixture(scope="session")
def gateway(supervisor, settings):
    """The gateway app with its real services (OpenBao, S3, NATS, Postgres) behind it."""
    from fastapi.testclient import TestClient

    from mlsec_platform.gateway.app import create_app
    from mlsec_platform.gateway.services import GatewayServices

    with TestClient(create_app(GatewayServices.from_settings(settings))) as client:
        yield client


@pytest.fixture(scope="session")
def uploader(settings, endpoints) -> dict[str, str]:
    from mlsec_platform_tests.helpers import upload_token

    token = upload_token(settings, endpoints, "upload:*", "publish:*")
    return {"Authorization": f"Bearer {token}"}
