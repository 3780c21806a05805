"""Each operator command's OpenBao token can do its own job and nothing else, briefly.

The token a command gets (``OperatorLogin.command_client``) is tried on every other command's
operation: each must be refused by OpenBao itself.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import hvac
import pytest
from hvac.exceptions import Forbidden

from mlsec_platform.identities.operators import COMMAND_TTL, OPERATOR_COMMANDS, OperatorLogin
from mlsec_platform.identities.vault_client import vault_client

#: The operation each command's token exists for (each harmless to the session stack).
Probe = Callable[[hvac.Client], object]


def _sign(vault: hvac.Client) -> object:
    return vault.secrets.transit.sign_data("mlsec-issuer", base64.b64encode(b"x").decode())


def _decrypt(vault: hvac.Client) -> object:
    # Unwrapping a data key of the token vault. A ciphertext it cannot open decrypts to an
    # error, not to a refusal: a refusal (403) is what the probe is about.
    return vault.secrets.transit.decrypt_data(
        "token-wrap", "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    )


def _read_token_keys(vault: hvac.Client) -> object:
    return vault.secrets.transit.read_key("token-wrap")


def _read_wrapped_index_key(vault: hvac.Client) -> object:
    return vault.secrets.kv.v2.read_secret_version("tokens/index-key", mount_point="mlsec")


def _read_vault_reader_keys(vault: hvac.Client) -> object:
    return vault.secrets.kv.v2.read_secret_version("s3/revealer", mount_point="mlsec")


def _store_s3_key(vault: hvac.Client) -> object:
    return vault.secrets.kv.v2.create_or_update_secret(
        "s3/operator-probe", secret={"access_key_id": "x"}, mount_point="mlsec"
    )


def _rotate_token_keys(vault: hvac.Client) -> object:
    return vault.secrets.transit.rotate_key("token-wrap")


def _audit_login(vault: hvac.Client) -> object:
    lease = vault.read("database/creds/audit-writer")
    vault.sys.revoke_lease(lease["lease_id"])
    return lease


def _limits_login(vault: hvac.Client) -> object:
    lease = vault.read("database/creds/limits-keeper")
    vault.sys.revoke_lease(lease["lease_id"])
    return lease


def _root_attempt(vault: hvac.Client) -> object:
    return vault.adapter.get("/v1/sys/generate-root-token/attempt")


def _client_certificate(vault: hvac.Client) -> object:
    return vault.write("pki/issue/client", common_name="operator-probe", ttl="60s")


def _warehouse_writer(vault: hvac.Client) -> object:
    lease = vault.read("database/creds/warehouse-writer")
    vault.sys.revoke_lease(lease["lease_id"])
    return lease


def _lifecycle_and_pipeline_keys(vault: hvac.Client) -> object:
    return [
        vault.secrets.kv.v2.read_secret_version(f"s3/{who}", mount_point="mlsec")
        for who in ("lifecycle", "pipeline")
    ]


def _eraser_keys(vault: hvac.Client) -> object:
    # The eraser has no AppRole: an erasure's token is the only one that reads its keys.
    return vault.secrets.kv.v2.read_secret_version("s3/eraser", mount_point="mlsec")


def _unwrap_index_key(vault: hvac.Client) -> object:
    # What the pipeline does once per batch, and an erasure to find a subject's tokens.
    wrapped = _read_wrapped_index_key(vault)["data"]["data"]["wrapped"]
    return vault.secrets.transit.decrypt_data("token-index", wrapped)


def _sign_receipt(vault: hvac.Client) -> object:
    data = base64.b64encode(b"{}").decode()
    return vault.secrets.transit.sign_data("erasure-receipts", data)


def _verify_receipt(vault: hvac.Client) -> object:
    data = base64.b64encode(b"{}").decode()
    return vault.secrets.transit.verify_signed_data(
        "erasure-receipts", data, signature="vault:v1:" + "A" * 86 + "=="
    )


def _read_broker_receipt_keys(vault: hvac.Client) -> object:
    return vault.secrets.transit.read_key("broker-receipts")


def _sign_broker_receipt_key(vault: hvac.Client) -> object:
    # Only a broker certifies its receipt keys: no operator command may.
    return vault.secrets.transit.sign_data("broker-receipts", base64.b64encode(b"{}").decode())


OWN: dict[str, list[Probe]] = {
    "issue": [_sign, _audit_login],
    "reveal": [_read_vault_reader_keys, _audit_login],
    "cert-issue": [_client_certificate, _audit_login],
    "rotate-token-keys": [_read_token_keys, _read_wrapped_index_key, _audit_login],
    "rotate-s3-keys": [_store_s3_key, _audit_login],
    "exclude": [_audit_login],
    "revoke-root": [_audit_login],
    "bootstrap": [_root_attempt],
    "erase": [
        _lifecycle_and_pipeline_keys,
        _eraser_keys,
        _warehouse_writer,
        _read_wrapped_index_key,
        _unwrap_index_key,
        _sign_receipt,
        _audit_login,
    ],
    "erase-verify": [_verify_receipt, _audit_login],
    "receipt-verify": [_read_broker_receipt_keys, _audit_login],
    "subjects": [_limits_login, _audit_login],
}

#: Operations a command's token may do that the test does not run (they would change the
#: session stack for every later test).
OWN_NOT_RUN: dict[str, set[Probe]] = {"rotate-token-keys": {_rotate_token_keys}}

#: What no command token may do, beside the other commands' operations.
NOBODYS: list[Probe] = [
    lambda v: v.secrets.kv.v2.read_secret_version("s3/connector", mount_point="mlsec"),
    lambda v: v.secrets.kv.v2.read_secret_version("broker/keys", mount_point="mlsec"),
    lambda v: v.read("transit/export/encryption-key/token-wrap"),
    lambda v: v.read("transit/export/encryption-key/token-index"),
    lambda v: v.secrets.transit.generate_data_key("token-wrap", "plaintext"),
    lambda v: v.sys.list_policies(),
    lambda v: v.auth.token.create(policies=["reveal"]),
    lambda v: v.read("transit/export/encryption-key/erasure-receipts"),
    _sign_broker_receipt_key,
    # Server certificates are the services' own; the CA's key and roles are bootstrap's.
    lambda v: v.write("pki/issue/broker-server", common_name="localhost"),
    lambda v: v.write("pki/issue/gateway-server", common_name="localhost"),
    lambda v: v.write("pki/roles/client", allow_any_name=True, server_flag=True),
    lambda v: v.write("pki/root/generate/internal", common_name="another CA"),
]


@pytest.fixture(scope="module")
def operator(supervisor, settings, endpoints):
    with OperatorLogin.login(settings, endpoints) as login:
        yield login


def test_the_operators_login_itself_reads_and_decrypts_nothing(operator):
    login = vault_client(operator.addr, operator._client.token)
    assert login.lookup_token()["data"]["policies"] == ["operator"]
    every = [_sign, _decrypt, _read_token_keys, _store_s3_key, _rotate_token_keys]
    every += [_lifecycle_and_pipeline_keys, _eraser_keys, _warehouse_writer, _unwrap_index_key]
    every += [_sign_receipt]
    for probe in [*every, _read_wrapped_index_key, _read_vault_reader_keys, _audit_login, *NOBODYS]:
        with pytest.raises(Forbidden):
            probe(login)


@pytest.mark.parametrize("command", sorted(OPERATOR_COMMANDS))
def test_a_command_token_does_its_own_job_and_nothing_else(command, operator):
    vault = operator.command_client(command)
    spec = OPERATOR_COMMANDS[command]
    if "operator-command" in spec.policies:
        looked_up = vault.lookup_token()["data"]
        assert sorted(looked_up["policies"]) == sorted(spec.policies)
        assert looked_up["ttl"] <= (spec.ttl or operator.ttl)
    for probe in OWN[command]:
        probe(vault)
    if command == "reveal":
        # Allowed: OpenBao answers the decrypt (here: a ciphertext it cannot open), no 403.
        with pytest.raises(hvac.exceptions.InvalidRequest):
            _decrypt(vault)
    others = {p for c, probes in OWN.items() if c != command for p in probes} - set(OWN[command])
    others |= {_decrypt, _rotate_token_keys} - OWN_NOT_RUN.get(command, set())
    if command == "reveal":
        others.discard(_decrypt)
    for probe in [*others, *NOBODYS]:
        with pytest.raises(Forbidden):
            probe(vault)


def test_command_tokens_are_short_lived(operator):
    # An erasure rewrites every zone: its token lives as long as the login.
    assert {c.name for c in OPERATOR_COMMANDS.values() if c.ttl is None} == {"erase"}
    vault = operator.command_client("reveal")
    assert 0 < vault.lookup_token()["data"]["ttl"] <= COMMAND_TTL
