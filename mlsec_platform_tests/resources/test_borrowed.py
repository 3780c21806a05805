"""Resources on an operator command's token: they read what its policy grants and nothing
more, record each read with the operator as actor, and stop when given back."""

from __future__ import annotations

import psycopg2
import pytest

from mlsec_platform.identities.operators import OperatorLogin
from mlsec_platform.ops.operator import operator_audit
from mlsec_platform.resources.borrowed import BorrowedVault, LoggedAudit
from mlsec_platform.resources.vault import VaultAccessDenied


def test_an_erase_token_reads_lifecycles_keys_but_not_the_connectors(
    supervisor, settings, endpoints, superuser_dsn
):
    with OperatorLogin.login(settings, endpoints) as login:
        client = login.command_client("erase")
        with operator_audit(settings, client, login.actor) as log:
            lifecycle = BorrowedVault.on(client, "lifecycle")
            assert set(lifecycle.read_kv("s3/lifecycle")) == {"access_key_id", "secret_access_key"}
            LoggedAudit.on(log, lifecycle).secret_read("mlsec/s3/lifecycle", purpose="probe")
            with pytest.raises(VaultAccessDenied):
                BorrowedVault.on(client, "connector").read_kv("s3/connector")
            lifecycle.revoke()
            with pytest.raises(VaultAccessDenied, match="given back"):
                lifecycle.read_kv("s3/lifecycle")
            assert client.lookup_token()["data"]["ttl"] > 0  # the token is the login's to end
    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT actor, payload->>'identity' FROM audit.events WHERE event_type = "
            "'secret.read' AND payload->>'purpose' = 'probe' ORDER BY seq DESC LIMIT 1"
        )
        assert cur.fetchone() == (login.actor, "lifecycle")  # whose key, read by whom
    conn.close()
