"""Bootstrap is idempotent: a second run keeps every credential that is still right."""

from mlsec_platform.identities.catalog import IDENTITIES, S3_IDENTITIES
from mlsec_platform.stack.bootstrap import bootstrap
from mlsec_platform_tests.helpers import vault_as


def _snapshot(settings, endpoints) -> dict:
    keys = {}
    for identity in S3_IDENTITIES:
        vault = vault_as(identity.name, settings, endpoints)
        keys[identity.name] = vault.read_kv(f"s3/{identity.name}")["access_key_id"]
        vault.revoke()
    secret_ids = {
        name: (settings.identities_dir / name / "secret_id").read_text() for name in IDENTITIES
    }
    return {"s3": keys, "secret_ids": secret_ids}


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
