"""`mlsec server-certs`: the `stack` servers' certificates, each for its own host only."""

from __future__ import annotations

import shutil

import pytest
from cryptography import x509

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.bootstrap.pki import role_definitions
from mlsec_platform.stack.bootstrap.server_certs import (
    OPENBAO,
    PLATFORM_CA_SERVERS,
    ensure_listener_certificate,
    ensure_server_certificates,
    ensure_stack_certificates,
)
from mlsec_platform.stack.server_tls import bootstrap_ca_file

HOSTS = {"openbao": "openbao", "minio": "minio", "postgres": "postgres", "nats": "nats"}


def _stack(tmp_path, **overrides) -> PlatformSettings:
    """The compose stack's addresses (docker/compose.yaml)."""
    values = {
        "profile": "stack",
        "state_dir": tmp_path / "state",
        "bootstrap_dir": tmp_path / "secrets",
        "vault_addr": "https://openbao:8200",
        "s3_endpoint": "https://minio:9000",
        "postgres_host": "postgres",
        "nats_url": "tls://nats:4222",
        "server_ca_files": {"vault": tmp_path / "ca" / "bootstrap-ca.pem"},
    }
    return PlatformSettings(**{**values, **overrides})


def _names(path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in sans}


def test_each_servers_role_may_name_its_own_host_and_no_service_role_any(tmp_path):
    roles = role_definitions(_stack(tmp_path))
    assert "postgres" in roles["postgres-server"]["allowed_domains"]
    assert "minio" in roles["s3-server"]["allowed_domains"]
    assert "nats" in roles["nats-server"]["allowed_domains"]
    assert "postgres" not in roles["s3-server"]["allowed_domains"]
    for service_role in ("broker-server", "gateway-server"):
        assert not set(HOSTS.values()) & set(roles[service_role]["allowed_domains"])
    # `local`: loopback only, no host of its own.
    local = role_definitions(PlatformSettings(state_dir=tmp_path / "local"))
    assert local["postgres-server"]["allowed_domains"] == local["broker-server"]["allowed_domains"]


def test_openbaos_listener_certificate_is_issued_once_and_its_ca_published(tmp_path):
    settings = _stack(tmp_path)
    assert ensure_listener_certificate(settings)
    target = OPENBAO.target(settings)
    assert _names(target.certificate) == {"openbao", "localhost", "127.0.0.1"}
    assert target.key.stat().st_mode & 0o777 == 0o600
    published = settings.server_ca("vault")
    assert published.read_text() == bootstrap_ca_file(settings).read_text()
    assert not ensure_listener_certificate(settings)  # not due: kept


def test_the_embedded_profile_issues_its_own(tmp_path):
    with pytest.raises(ConfigurationError, match="mlsec up"):
        ensure_stack_certificates(PlatformSettings(state_dir=tmp_path), listener_only=True)
    with pytest.raises(ConfigurationError, match="no address is set for nats"):
        PLATFORM_CA_SERVERS[-1].names(_stack(tmp_path, nats_url=None))


def test_the_platform_ca_issues_each_server_a_certificate_for_its_host(
    supervisor, settings, tmp_path
):
    """Against the embedded OpenBao, with the bootstrap's rights (its token copied)."""
    shutil.copytree(settings.secrets_dir, tmp_path / "secrets")
    stack = _stack(
        tmp_path,
        vault_addr=supervisor.openbao.addr,
        server_ca_files={"vault": settings.server_ca("vault")},
    )
    issued = ensure_server_certificates(stack, supervisor.endpoints())
    assert issued == ["minio", "postgres", "nats"]
    platform_ca = x509.load_pem_x509_certificate(stack.ca_bundle.read_bytes())
    for server in PLATFORM_CA_SERVERS:
        target = server.target(stack)
        assert _names(target.certificate) == {HOSTS[server.folder], "localhost", "127.0.0.1"}
        leaf = x509.load_pem_x509_certificate(target.certificate.read_bytes())
        leaf.verify_directly_issued_by(platform_ca)
        assert target.key.stat().st_mode & 0o777 == 0o600
    minio = PLATFORM_CA_SERVERS[0].target(stack)
    assert (minio.certificate.name, minio.key.name) == ("public.crt", "private.key")
    assert ensure_server_certificates(stack, supervisor.endpoints()) == []  # none due
