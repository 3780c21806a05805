"""Operators with names: operator commands log in to OpenBao as the operator bootstrap made,
work once the root token is revoked, and the audit actor is that login, not ``$USER``.

A stack of its own (``rootless_stack``): revoking the root token of the session stack would
take the root away from every later test.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hvac.exceptions import Forbidden

from mlsec_platform.cli import main
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.settings import PlatformSettings, get_settings
from mlsec_platform.stack.secret_files import read_secret

#: The root token, until `mlsec operator revoke-root` takes it away.
ROOT_FILE = "openbao-bootstrap-token"


@dataclass
class RootlessStack:
    settings: PlatformSettings
    superuser_dsn: dict
    #: A tokenized e-mail, minted by the pipeline in the token vault.
    email_token: str
    #: What `mlsec operator revoke-root` printed.
    revoke_output: str
    #: The root token bootstrap used (revoked by then).
    root_token: str


def _events(dsn: dict, event_type: str) -> list[tuple[str, dict]]:
    with psycopg2.connect(**dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT actor, payload FROM audit.events WHERE event_type = %s ORDER BY seq",
            (event_type,),
        )
        rows = cur.fetchall()
    conn.close()
    return rows


@pytest.fixture(scope="module")
def rootless_stack(tmp_path_factory) -> Iterator[RootlessStack]:
    """A fresh stack, bootstrapped, whose root token `mlsec operator revoke-root` revoked."""
    from mlsec_platform.stack.bootstrap import bootstrap
    from mlsec_platform.stack.supervisor import Supervisor
    from mlsec_platform_tests.conftest import TEST_ENV

    state = tmp_path_factory.mktemp("mlsec-rootless")
    saved = {k: os.environ.get(k) for k in (*TEST_ENV, "MLSEC_STATE_DIR")}
    os.environ.update({**TEST_ENV, "MLSEC_STATE_DIR": str(state)})
    settings = get_settings()
    supervisor = Supervisor(settings, progress=print)
    try:
        endpoints = supervisor.up()
        bootstrap(settings, endpoints, progress=print)
        root_token = read_secret(settings.secrets_dir / ROOT_FILE)
        resources = build_resources(settings)
        email = pa.array(["ana@example.com"])
        vault = resources["token_vault"].for_batch()
        (token,) = vault.tokenize_many({"email": email}, "customers")["email"].to_pylist()
        resources["lake_pipeline"].vault.revoke()
        result = CliRunner().invoke(main, ["operator", "revoke-root"])
        assert result.exit_code == 0, result.output
        yield RootlessStack(
            settings,
            supervisor.postgres.superuser_dsn("warehouse"),
            token,
            result.output,
            root_token,
        )
    finally:
        supervisor.down()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _mlsec(*args: str, **env: str):
    result = CliRunner(env=env or None).invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_root_token_is_gone_and_dead(rootless_stack):
    settings = rootless_stack.settings
    assert not (settings.secrets_dir / ROOT_FILE).exists()
    assert rootless_stack.root_token not in rootless_stack.revoke_output
    assert "revoked" in rootless_stack.revoke_output
    root = vault_client(settings.endpoints().vault_addr, rootless_stack.root_token)
    with pytest.raises(Forbidden):
        root.lookup_token()


def test_revoking_the_root_token_twice_says_it_is_gone_already(rootless_stack):
    result = CliRunner().invoke(main, ["operator", "revoke-root"])
    assert result.exit_code == 2
    assert "Error: the OpenBao root token was revoked already (" in result.output
    assert "by operator:operator)" in result.output


def test_the_operator_credential_is_a_private_file_never_printed(rootless_stack):
    settings = rootless_stack.settings
    credential = settings.secrets_dir / "operator.json"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    password = credential.read_text()
    assert str(credential) in rootless_stack.revoke_output
    assert password not in rootless_stack.revoke_output


def _certificate(rootless_stack, subject: str) -> str:
    """A client certificate issued by `mlsec cert issue` (an operator command too)."""
    folder = rootless_stack.settings.root / "certs"
    _mlsec("cert", "issue", "--subject", subject, "--out", str(folder))
    return str(folder / f"{subject}.pem")


def test_operator_commands_work_with_the_root_token_revoked(rootless_stack):
    cert = _certificate(rootless_stack, "me")
    token = _mlsec(
        "token", "issue", "--subject", "me", "--scope", "upload:olist_orders", "--cert", cert
    ).strip()
    assert token.count(".") == 2
    revealed = _mlsec("reveal", rootless_stack.email_token, "--reason", "subject access 7")
    assert revealed.strip() == "ana@example.com"
    assert "connector" in _mlsec("rotate", "s3-keys", "connector")
    excluded = _mlsec("quarantine", "exclude", "olist_orders", "b-1", "--reason", "gate failed")
    assert "excluded olist_orders/b-1" in excluded


def test_the_audit_actor_is_the_operator_login_not_the_user_variable(rootless_stack):
    """$USER and $LOGNAME are the caller's to set; the OpenBao login is not."""
    spoofed = {"USER": "mallory", "LOGNAME": "mallory"}
    _mlsec("reveal", rootless_stack.email_token, "--reason", "complaint 12", **spoofed)
    cert = _certificate(rootless_stack, "bob")
    _mlsec("token", "issue", "--subject", "bob", "--scope", "upload:*", "--cert", cert, **spoofed)
    _mlsec("rotate", "s3-keys", "auditor", **spoofed)
    _mlsec("quarantine", "exclude", "olist_orders", "b-2", "--reason", "gate", **spoofed)
    revealed = _events(rootless_stack.superuser_dsn, "pii.revealed")
    issued = _events(rootless_stack.superuser_dsn, "token.issued")
    certified = _events(rootless_stack.superuser_dsn, "certificate.issued")
    assert revealed and issued and certified
    for actor, payload in [revealed[-1], issued[-1], certified[-1]]:
        assert actor == "operator:operator", (actor, payload)
    # The other operator actions, each by the operator's OpenBao name.
    for event in ("openbao.root_revoked", "s3.keys_rotated", "quality.batch_excluded"):
        assert {a for a, _ in _events(rootless_stack.superuser_dsn, event)} == {
            "operator:operator"
        }, event
    assert revealed[-1][1]["subject"] == "operator:operator"
    assert issued[-1][1]["subject"] == "bob"


def test_bootstrap_works_again_after_the_root_token_was_revoked(rootless_stack):
    """`mlsec up` on a bootstrapped stack: a short-lived root token made from the unseal key
    serves the bootstrap and is revoked after it; no root token is left behind."""
    output = _mlsec("bootstrap")
    assert "openbao" in output
    credential = rootless_stack.settings.secrets_dir / "operator.json"
    assert f"credential in {credential}" in output
    assert json.loads(credential.read_text())["password"] not in output
    assert not (rootless_stack.settings.secrets_dir / ROOT_FILE).exists()
    # The stack still serves operator commands after the re-run.
    cert = _certificate(rootless_stack, "me")
    token = _mlsec("token", "issue", "--subject", "me", "--scope", "upload:*", "--cert", cert)
    assert token.count(".") == 2


def test_a_bootstrap_root_token_is_revoked_when_bootstrap_ends(rootless_stack):
    from mlsec_platform.identities.operators import bootstrap_root_token

    settings = rootless_stack.settings
    with bootstrap_root_token(settings, settings.endpoints()) as token:
        client = vault_client(settings.endpoints().vault_addr, token)
        assert client.lookup_token()["data"]["policies"] == ["root"]
    with pytest.raises(Forbidden):
        client.lookup_token()


def test_without_root_token_or_unseal_key_bootstrap_says_what_to_do(rootless_stack, tmp_path):
    """The `stack` profile keeps no unseal key: the error names the fix, no traceback."""
    from mlsec_platform.errors import ConfigurationError
    from mlsec_platform.stack.bootstrap import BootstrapCredentials

    settings = rootless_stack.settings
    unseal = settings.secrets_dir / "openbao-unseal-key"
    kept = tmp_path / "unseal"
    kept.write_bytes(unseal.read_bytes())
    unseal.unlink()
    try:
        with (
            pytest.raises(ConfigurationError, match="root token was revoked") as refused,
            BootstrapCredentials.load(settings).vault_session(settings.endpoints()),
        ):
            pass
        assert "generate-root" in str(refused.value)
    finally:
        unseal.write_bytes(kept.read_bytes())
        unseal.chmod(0o600)


def test_a_missing_or_wrong_operator_credential_is_a_clear_refusal(rootless_stack, tmp_path):
    from mlsec_platform.errors import ConfigurationError

    credential = rootless_stack.settings.secrets_dir / "operator.json"
    kept = credential.read_bytes()
    issue = ["cert", "issue", "--subject", "me", "--out", str(tmp_path)]
    try:
        credential.unlink()
        result = CliRunner().invoke(main, issue)
        assert isinstance(result.exception, ConfigurationError)
        assert "no operator credential" in str(result.exception)
        assert "`mlsec up`" in str(result.exception)
        credential.write_text(json.dumps({"username": "operator", "password": "not-it-42"}))
        result = CliRunner().invoke(main, issue)
        assert result.exit_code == 1
        assert "OpenBao refused the login of operator 'operator'" in result.output
        assert "not-it-42" not in result.output
    finally:
        credential.write_bytes(kept)
        credential.chmod(0o600)


def test_mlsec_up_restarts_a_stack_whose_root_token_was_revoked(rootless_stack):
    """The servers stop and start again (OpenBao unseals with the unseal key); bootstrap runs
    on a root token of its own, and operator commands work after it as before."""
    _mlsec("down")
    output = _mlsec("up")
    assert "Ready in" in output and "openbao    engines, policies and AppRoles" in output
    assert not (rootless_stack.settings.secrets_dir / ROOT_FILE).exists()
    revealed = _mlsec("reveal", rootless_stack.email_token, "--reason", "after restart")
    assert revealed.strip() == "ana@example.com"
