"""Bootstrap is idempotent: a second run keeps every credential that is still right."""

import hvac
import pytest

from mlsec_platform.identities.catalog import IDENTITIES, S3_IDENTITIES
from mlsec_platform.identities.operators import ROOT_TOKEN
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.stack.bootstrap import bootstrap
from mlsec_platform.stack.secret_files import read_secret
from mlsec_platform_tests.helpers import s3_keys_of, vault_as


def _secret_ids(settings) -> dict[str, str]:
    return {name: (settings.identities_dir / name / "secret_id").read_text() for name in IDENTITIES}


def _snapshot(settings, endpoints) -> dict:
    keys = {}
    for identity in S3_IDENTITIES:
        keys[identity.name] = s3_keys_of(identity.name, settings, endpoints)["access_key_id"]
    return {"s3": keys, "secret_ids": _secret_ids(settings)}


def test_bootstrap_twice_changes_nothing(supervisor, settings, endpoints):
    before = _snapshot(settings, endpoints)
    bootstrap(settings, endpoints)
    assert _snapshot(settings, endpoints) == before


def test_bootstrap_repairs_a_lost_secret_id(supervisor, settings, endpoints):
    lost = settings.identities_dir / "broker" / "secret_id"
    lost.unlink()
    bootstrap(settings, endpoints)
    assert lost.exists()
    vault = vault_as("broker", settings, endpoints)
    assert vault.read_kv("s3/broker")["access_key_id"]


def test_bootstrap_reissues_a_secret_id_past_half_its_life(supervisor, settings, endpoints):
    """Secret ids expire; `mlsec up` (which bootstraps) replaces each one past half its life
    and destroys the one it replaced."""
    before = _secret_ids(settings)
    longer = settings.model_copy(update={"secret_id_ttl": 30 * 24 * 3600})
    # The session's secret ids have at most 7 days, under half of 30: every one is re-issued.
    bootstrap(longer, endpoints)
    after = _secret_ids(settings)
    assert all(after[name] != before[name] for name in IDENTITIES)
    role_id = (settings.identities_dir / "broker" / "role_id").read_text()
    probe = vault_client(endpoints.vault_addr, timeout=5)
    with pytest.raises(hvac.exceptions.VaultError):
        probe.auth.approle.login(role_id, before["broker"], use_token=False)
    vault = vault_as("broker", settings, endpoints)
    assert vault.read_kv("s3/broker")["access_key_id"]
    vault.revoke()
    root = vault_client(endpoints.vault_addr, read_secret(settings.secrets_dir / ROOT_TOKEN))
    lookup = root.auth.approle.read_secret_id("broker", after["broker"])
    assert lookup["data"]["secret_id_ttl"] == 30 * 24 * 3600
    # Fresh ones are kept: a second run changes nothing.
    bootstrap(longer, endpoints)
    assert _secret_ids(settings) == after


def test_the_platform_ca_is_made_once_and_its_certificate_published(
    supervisor, settings, endpoints
):
    from cryptography import x509

    from mlsec_platform_tests.helpers import operator_vault

    published = settings.ca_bundle.read_text()
    ca = x509.load_pem_x509_certificate(published.encode())
    assert ca.subject.rfc4514_string() == "CN=mlsec-platform CA"
    assert settings.ca_bundle.stat().st_mode & 0o777 == 0o644  # public: clients read it
    bootstrap(settings, endpoints)
    assert settings.ca_bundle.read_text() == published  # the same root, kept
    served = operator_vault(settings, endpoints).read("pki/cert/ca")["data"]["certificate"]
    assert served.strip() == published.strip()
