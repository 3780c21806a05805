import pytest
from fastapi.testclient import TestClient

from mlsec_platform.gateway.app import create_app
from mlsec_platform.gateway.services import GatewayServices
from mlsec_platform_tests.helpers import upload_token


@pytest.fixture(scope="session")
def gateway(supervisor, settings):
    """The gateway app with its real services (OpenBao, S3, NATS, Postgres) behind it."""
    with TestClient(create_app(GatewayServices.from_settings(settings))) as client:
        yield client


@pytest.fixture(scope="session")
def uploader(settings, endpoints) -> dict[str, str]:
    token = upload_token(settings, endpoints, "upload:*", "publish:*")
    return {"Authorization": f"Bearer {token}"}
