"""One real embedded stack for the whole test session, started by the product's supervisor.

It runs on free loopback ports under a temporary state folder, so it never meets a stack a
developer has running. The reader TTL is short so lease expiry is observable in a test.

Tests that need servers are marked ``stack`` here, from their fixtures (no test file says
it): ``pytest -m "not stack"`` runs the rest and starts no server, which a guard checks (a
server started by a test not marked ``stack`` fails that test).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlsec_platform.settings import Endpoints, PlatformSettings, get_settings
from mlsec_platform.stack.servers.base import ManagedServer

#: Session fixtures shared across packages: the curated data set (``curated``), and a stack of
#: its own on which both engines curate one Raw snapshot (``spark_stack``), and one on which Raw
#: grows and is curated incrementally, then rebuilt (``incremental_stack``).
pytest_plugins = [
    "mlsec_platform_tests.curated_data",
    "mlsec_platform_tests.spark_stack",
    "mlsec_platform_tests.incremental_stack",
]

READER_TTL_SECONDS = 8

TEST_ENV = {
    "MLSEC_PROFILE": "local",
    "MLSEC_PREFER_DEFAULT_PORTS": "false",
    "MLSEC_PG_READER_TTL": str(READER_TTL_SECONDS),
    # Redelivery of unacknowledged events after a killed run, quickly.
    "MLSEC_NATS_ACK_WAIT": "5",
}

#: Fixtures that start servers. A test whose fixture closure holds one (directly or through
#: other fixtures) is marked ``stack``. ``demo_output`` (ops/test_demo.py) runs `mlsec demo`,
#: which starts a stack of its own; so do ``rootless_stack`` (ops/test_operator_login.py) and
#: ``spark_stack`` (spark_stack.py) and ``incremental_stack`` with its Spark twin
#: (incremental_stack.py; ``curated_incrementally`` in defs/curated/test_incremental.py is either).
SERVER_FIXTURES = frozenset(
    {
        "supervisor",
        "demo_output",
        "rootless_stack",
        "spark_stack",
        "spark_stack_100k",
        "incremental_stack",
        "freshness_stack",
        "spark_incremental_stack",
        "curated_incrementally",
    }
)

#: Tests that read what the session stack wrote (its secrets, the identities' AppRole files)
#: while requesting only ``settings``: they are stack tests and get the session stack set up
#: first, so they pass alone and in any order. Once they request ``supervisor`` themselves,
#: their entries go.
READS_THE_SESSION_STACK = frozenset(
    {
        "mlsec_platform_tests/identities/test_vault_policies.py::test_credential_files_are_private",
        "mlsec_platform_tests/resources/test_vault.py::test_vault_unavailable_is_a_typed_error",
        "mlsec_platform_tests/stack/test_supervisor.py::test_bootstrap_secrets_are_private_files",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid in READS_THE_SESSION_STACK or SERVER_FIXTURES.intersection(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.stack)
    # `slow` tests run only when asked for (`-m slow`); deselected ones are counted in the summary.
    if "slow" not in (config.option.markexpr or ""):
        slow = [item for item in items if item.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("slow")]


@pytest.fixture(autouse=True)
def _session_stack_for_readers(request: pytest.FixtureRequest) -> None:
    if request.node.nodeid in READS_THE_SESSION_STACK:
        request.getfixturevalue("supervisor")


_servers_allowed = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """While a test not marked ``stack`` sets up, runs and tears down, no server may start."""
    global _servers_allowed
    _servers_allowed = item.get_closest_marker("stack") is not None
    try:
        return (yield)
    finally:
        _servers_allowed = False


@pytest.fixture(autouse=True, scope="session")
def _no_server_outside_stack_tests() -> Iterator[None]:
    from mlsec_platform.stack.supervisor import Supervisor

    def guarded(start: Callable[[ManagedServer], None]) -> Callable[[ManagedServer], None]:
        def start_in_a_stack_test(server: ManagedServer) -> None:
            if not _servers_allowed:
                raise RuntimeError(
                    f"{server.name} started by a test not marked `stack`: request the "
                    "`supervisor` fixture, or add the fixture that starts it to SERVER_FIXTURES "
                    "in conftest.py"
                )
            start(server)

        return start_in_a_stack_test

    with pytest.MonkeyPatch.context() as patch:
        # Each server class that has its own start (PostgreSQL runs pg_ctl) is guarded too.
        for server_type in {ManagedServer, *Supervisor.SERVER_TYPES}:
            if "start" in vars(server_type):
                patch.setattr(server_type, "start", guarded(vars(server_type)["start"]))
        yield


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformSettings]:
    from mlsec_platform_tests.helpers import environment

    state = tmp_path_factory.mktemp("mlsec-state")
    with environment({**TEST_ENV, "MLSEC_STATE_DIR": str(state)}):
        yield get_settings()


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
def client_tls(supervisor, settings):
    """The client certificate the tests present to the broker and the gateway (mTLS)."""
    from mlsec_platform_tests.helpers import session_client

    return session_client(settings).tls


@pytest.fixture(scope="session")
def gateway(supervisor, settings, client_tls):
    """An HTTPS client of the real gateway (its services on OpenBao, S3, NATS, Postgres)
    on a loopback port, presenting the session's client certificate; ``gateway.server`` is
    the running server (its ``app``, ``run`` on its event loop)."""
    from mlsec_platform.gateway.server import BackgroundGateway
    from mlsec_platform.stack.ports import PortAllocator
    from mlsec_platform_tests.helpers import https_client

    with (
        BackgroundGateway(settings, PortAllocator().take()) as running,
        https_client(running.url, client_tls) as client,
    ):
        client.server = running
        yield client


@pytest.fixture(scope="session")
def uploader(settings, endpoints) -> dict[str, str]:
    from mlsec_platform_tests.helpers import upload_token

    token = upload_token(settings, endpoints, "upload:*", "publish:*")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def audit_writer(settings, endpoints):
    """An audit log writer as the ``pipeline`` identity, on its own short-lived logins."""
    from mlsec_platform.audit.chain import AuditLog
    from mlsec_platform_tests.helpers import pg_login

    logins = []

    def connect():
        conn, login = pg_login("pipeline", "audit-writer", settings, endpoints)
        logins.append(login)
        return conn

    log = AuditLog(connect, actor="pipeline")
    yield log
    log.close()
    for login in logins:
        login.revoke()
