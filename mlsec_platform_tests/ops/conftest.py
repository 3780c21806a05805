"""One demo stack for the package: `mlsec demo` runs once, its tests and the README's tutorial
use what it leaves (the tutorial last: it stops the servers)."""

import os

import pytest
from click.testing import CliRunner

from mlsec_platform.cli import main
from mlsec_platform.settings import get_settings
from mlsec_platform.stack.supervisor import Supervisor


@pytest.fixture(scope="package")
def settings(tmp_path_factory):
    """A stack of its own: the demo starts from a fresh lake, as on a new machine (the session
    stack holds other tests' deliberately odd batches, which the gates would rightly stop)."""
    from mlsec_platform_tests.conftest import TEST_ENV

    state = tmp_path_factory.mktemp("mlsec-demo-state")
    instance_env = (
        "DAGSTER_HOME",
        "MLSEC_DAGSTER_ARTIFACTS",
        "MLSEC_DAGSTER_COMPUTE_LOGS",
        *(f"DAGSTER_PG_{k}" for k in ("HOST", "PORT", "DB", "USERNAME", "PASSWORD")),
    )
    saved = {k: os.environ.get(k) for k in (*TEST_ENV, "MLSEC_STATE_DIR", *instance_env)}
    os.environ.update({**TEST_ENV, "MLSEC_STATE_DIR": str(state)})
    try:
        yield get_settings()
    finally:
        Supervisor(get_settings()).down()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="package")
def endpoints(demo_output, settings):
    return settings.endpoints()


@pytest.fixture(scope="package")
def demo_output(settings) -> str:
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    return result.output
