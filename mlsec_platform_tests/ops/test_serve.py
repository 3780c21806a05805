"""`mlsec broker` and `mlsec gateway` started as root run as their identity's OS user
(``ops/serve.py``, ``stack/os_users.py``): no other identity's process reads their environment,
and each still serves (issue 15)."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import httpx
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


SCRAPE_CREDENTIAL = "operator-scrape-credential-0123456789"


@pytest.mark.parametrize("name", ["broker", "gateway"])
def test_a_root_only_credential_file_is_read_before_the_switch(
    name, demo_output, settings, tmp_path
) -> None:
    """The operator's metrics scrape credential (root's, 0600: the service's own user cannot
    read it) is read before the service becomes its identity's user, and never printed."""
    credential = tmp_path / "scrape"
    credential.write_text(SCRAPE_CREDENTIAL)
    credential.chmod(0o600)
    assert (credential.stat().st_uid, credential.stat().st_mode & 0o777) == (0, 0o600)
    env = {
        "MLSEC_BROKER_METRICS_CREDENTIAL_FILE": str(credential),
        "MLSEC_METRICS_CREDENTIAL_FILE": str(credential),
    }
    client_tls = session_client(settings).tls
    log = tmp_path / "stderr.log"
    with running_service(name, env, client_tls, stderr=log) as (process, url, _):
        assert psutil.Process(process.pid).uids().real == os_user(name).uid
        scrape = {"verify": client_tls.ssl_context(), "timeout": 30}
        refused = httpx.get(
            f"{url}/metrics", headers={"Authorization": "Bearer " + "x" * 20}, **scrape
        )
        scraped = httpx.get(
            f"{url}/metrics", headers={"Authorization": f"Bearer {SCRAPE_CREDENTIAL}"}, **scrape
        )
        assert (refused.status_code, scraped.status_code) == (401, 200)
        environ = Path(f"/proc/{process.pid}/environ").read_bytes()
    assert SCRAPE_CREDENTIAL.encode() not in environ
    assert SCRAPE_CREDENTIAL not in log.read_text()
