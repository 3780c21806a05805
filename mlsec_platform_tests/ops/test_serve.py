"""`mlsec broker` and `mlsec gateway` started as root run as their identity's OS user
(``ops/serve.py``, ``stack/os_users.py``): no other identity's process reads their environment,
and each still serves (issue 15)."""

from __future__ import annotations

import os
from contextlib import ExitStack

import psutil
import pytest
from click.testing import CliRunner

from mlsec_platform.cli import main
from mlsec_platform.stack.os_users import os_user
from mlsec_platform_tests.gateway.process import running_service
from mlsec_platform_tests.helpers import session_client
from mlsec_platform_tests.stack.test_os_users import SEPARATED, probe

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="identities run as OS users of their own only when the stack runs as root",
)


def test_the_broker_and_the_gateway_run_as_their_users(demo_output, settings) -> None:
    client_tls = session_client(settings).tls
    with ExitStack() as running:
        pids = {
            name: running.enter_context(running_service(name, {}, client_tls))[0].pid
            for name in ("broker", "gateway")
        }
        status = CliRunner().invoke(main, ["status"]).output
        for name, pid in pids.items():
            uids = psutil.Process(pid).uids()
            assert (uids.real, uids.effective) == (os_user(name).uid,) * 2
            assert f"pid={pid}" in status
        for identity in SEPARATED:
            seen = probe(identity, "--environ", *map(str, pids.values()))
            assert seen["environ"] == dict.fromkeys(map(str, pids.values()), "denied"), identity
    # Each removed its own record when it stopped.
    assert not list((settings.root / "services").glob("*/record.json"))
