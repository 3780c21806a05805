"""One OS user per workload identity (``stack/os_users.py``): a process of one identity cannot
read another identity's secret_id nor log in to OpenBao as it, and reads its own (issue 15)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys

import pytest

from mlsec_platform.identities.catalog import IDENTITIES
from mlsec_platform.stack.bootstrap import bootstrap
from mlsec_platform.stack.os_users import NOLOGIN, SHARED_WITH, os_user, user_name

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="identities run as OS users of their own only when the stack runs as root",
)

#: The identities whose separation the issue names: every pair, both directions.
SEPARATED = ("connector", "pipeline", "broker", "gateway")


def probe(identity: str, *args: str) -> dict:
    """Run ``identity_probe`` as ``identity``'s OS user."""
    done = subprocess.run(
        [sys.executable, "-m", "mlsec_platform_tests.stack.identity_probe", *args],
        capture_output=True,
        text=True,
        timeout=120,
        **os_user(identity).popen_options(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def _owned_by_its_user(settings, identity: str) -> bool:
    user = os_user(identity)
    folder = settings.identities_dir / identity
    private = identity not in SHARED_WITH
    expected = {folder: 0o700 if private else 0o750}
    expected.update({folder / n: 0o600 if private else 0o640 for n in ("role_id", "secret_id")})
    return all(
        (p.stat().st_uid, p.stat().st_gid, p.stat().st_mode & 0o777) == (user.uid, user.gid, mode)
        for p, mode in expected.items()
    )


def test_each_identity_has_a_user_that_owns_its_credentials(supervisor, settings) -> None:
    for identity in IDENTITIES:
        assert pwd.getpwnam(user_name(identity)).pw_shell == NOLOGIN
        assert _owned_by_its_user(settings, identity), identity
    secrets = settings.secrets_dir.stat()
    assert (secrets.st_uid, secrets.st_mode & 0o777) == (0, 0o700)


@pytest.mark.parametrize("identity", SEPARATED)
def test_an_identity_reads_and_logs_in_as_itself_only(identity, supervisor, settings) -> None:
    others = [other for other in SEPARATED if other != identity]
    seen = probe(identity, identity, *others)
    assert seen["uid"] == os_user(identity).uid
    assert seen["secret_id"] == {identity: "read", **dict.fromkeys(others, "denied")}
    assert seen["login"] == {identity: "logged in", **dict.fromkeys(others, "VaultAccessDenied")}


def test_a_shared_identity_is_read_by_its_group_alone(supervisor, settings) -> None:
    """Run workers open the Dagster instance as the orchestrator; the broker reveals as the
    revealer; neither reads the other's."""
    shared = ("orchestrator", "revealer")
    pipeline, broker = probe("pipeline", *shared), probe("broker", *shared)
    assert pipeline["login"] == {"orchestrator": "logged in", "revealer": "VaultAccessDenied"}
    assert broker["login"] == {"orchestrator": "VaultAccessDenied", "revealer": "logged in"}
    assert probe("gateway", *shared)["secret_id"] == dict.fromkeys(shared, "denied")


def test_a_reissued_secret_id_belongs_to_its_identity(supervisor, settings, endpoints) -> None:
    lost = settings.identities_dir / "gateway" / "secret_id"
    before = lost.read_text()
    lost.unlink()
    bootstrap(settings, endpoints)
    assert lost.read_text() != before
    assert _owned_by_its_user(settings, "gateway")
    assert probe("gateway", "gateway")["login"] == {"gateway": "logged in"}
