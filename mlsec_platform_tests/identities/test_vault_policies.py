"""OpenBao policies: each identity reads its own secrets and nothing else."""

import pytest

from mlsec_platform.identities.catalog import IDENTITIES, S3_IDENTITIES
from mlsec_platform.resources.vault import VaultAccessDenied
from mlsec_platform.stack.os_users import SHARED_WITH, separated
from mlsec_platform_tests.helpers import vault_as

S3_NAMES = [i.name for i in S3_IDENTITIES]


@pytest.mark.parametrize("identity", sorted(IDENTITIES))
def test_each_identity_reads_only_its_own_s3_keys(identity, settings, endpoints):
    vault = vault_as(identity, settings, endpoints)
    assert set(vault.read_kv(f"s3/{identity}")) == {"access_key_id", "secret_access_key"}
    for other in S3_NAMES:
        if other != identity:
            with pytest.raises(VaultAccessDenied):
                vault.read_kv(f"s3/{other}")
    vault.revoke()


def test_an_s3_identity_without_an_approle_is_read_by_its_command_alone():
    """The eraser has S3 keys and no AppRole: of every OpenBao policy, only its command's
    reads them (the rotation's may write new ones, never read them)."""
    from mlsec_platform.identities.operators import OPERATOR_COMMANDS
    from mlsec_platform_tests.identities.test_who_can_decrypt import allows, policy_files

    without = {i.name: i.keys_read_by for i in S3_IDENTITIES if i.name not in IDENTITIES}
    assert without == {"eraser": "erase"}
    assert all(i.keys_read_by is None for i in S3_IDENTITIES if i.name in IDENTITIES)
    files = policy_files()
    for name, command in without.items():
        path = f"mlsec/data/s3/{name}"
        readers = {p for p, hcl in files.items() if allows(hcl, path, "read")}
        assert readers == {"operator-erase"}
        assert readers <= set(OPERATOR_COMMANDS[command].policies)
        writers = {p for p, hcl in files.items() if allows(hcl, path, "update")}
        assert writers == {"operator-rotate-s3-keys"}


@pytest.mark.parametrize(
    ("identity", "path"),
    [
        ("broker", "database/creds/warehouse-writer"),
        ("connector", "database/creds/warehouse-writer"),
        ("pipeline", "database/creds/warehouse-reader"),
        ("pipeline", "database/creds/audit-reader"),
        ("auditor", "database/creds/audit-writer"),
        ("lifecycle", "database/creds/warehouse-writer"),
        ("lifecycle", "database/creds/warehouse-reader"),
        ("pipeline", "database/creds/limits-keeper"),
        ("gateway", "database/creds/limits-keeper"),
    ],
)
def test_database_roles_are_per_identity(identity, path, settings, endpoints):
    vault = vault_as(identity, settings, endpoints)
    with pytest.raises(VaultAccessDenied):
        vault.lease(path)


def test_approle_tokens_carry_only_their_policy(settings, endpoints):
    for name in IDENTITIES:
        vault = vault_as(name, settings, endpoints)
        policies = vault.client().auth.token.lookup_self()["data"]["policies"]
        assert sorted(policies) == sorted(["default", name])
        vault.revoke()


def test_credential_files_are_private(settings):
    """0700/0600; a shared identity's (stack/os_users.py) opened to its group when identities
    have OS users of their own (test_os_users.py checks the owners)."""
    for identity in IDENTITIES:
        folder = settings.identities_dir / identity
        group = 0o050 if identity in SHARED_WITH and separated(settings) else 0
        assert folder.stat().st_mode & 0o777 == 0o700 | group
        for name in ("role_id", "secret_id"):
            assert (folder / name).stat().st_mode & 0o777 == 0o600 | (group & 0o040)


#: Who may issue from which PKI role: each service its own server certificate, nobody a
#: client certificate (only the operator's `cert-issue` command token may).
PKI_ROLES = ("broker-server", "gateway-server", "client")


@pytest.mark.parametrize("identity", sorted(IDENTITIES))
def test_each_service_issues_only_its_own_server_certificate(identity, settings, endpoints):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    vault = vault_as(identity, settings, endpoints)
    own = {"broker": "broker-server", "gateway": "gateway-server"}.get(identity)
    for role in PKI_ROLES:
        issue = lambda role=role: vault.write(  # noqa: E731
            f"pki/issue/{role}", common_name="localhost", ip_sans="127.0.0.1", ttl="120s"
        )
        if role != own:
            with pytest.raises(VaultAccessDenied):
                issue()
            continue
        cert = x509.load_pem_x509_certificate(issue()["certificate"].encode())
        assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == (
            identity
        )
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]
        # Only the configured names: a certificate for another host is refused.
        with pytest.raises(VaultAccessDenied):
            vault.write(f"pki/issue/{role}", common_name="broker.example.org")
    vault.revoke()
