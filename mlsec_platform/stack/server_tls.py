"""TLS of the embedded servers: their certificates, where they live, and what clients trust.

OpenBao's listener cannot get its certificate from OpenBao's PKI engine before OpenBao is up,
so a small bootstrap CA (made once here; its key 0600 in the secrets folder, never printed)
issues that one certificate. SeaweedFS's S3 API, PostgreSQL and NATS get theirs from the
platform CA (OpenBao PKI, roles ``s3-server``, ``postgres-server`` and ``nats-server``), issued
with the bootstrap's rights when missing or past two thirds of their life.

Clients verify the servers against ``settings.server_ca_bundle``: the bootstrap CA plus the
platform CA, in one file. It is a separate file from ``settings.ca_bundle`` on purpose: the
broker and the gateway check client certificates against that one, and a certificate of the
bootstrap CA must never pass there.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlsec_platform.serving.certificates import split_names
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.secret_files import write_file

BOOTSTRAP_CA_NAME = "mlsec-platform bootstrap CA"
BOOTSTRAP_CA_DAYS = 3650
#: OpenBao's listener certificate; `mlsec up` renews it past two thirds of this.
LISTENER_DAYS = 90
#: A certificate is renewed once this share of its life has passed.
RENEW_FRACTION = 2 / 3


@dataclass(frozen=True)
class ServerCertificate:
    """Where one server's certificate (with its chain) and private key live; the file names
    are the server's choice where it has one (MinIO reads ``public.crt`` and ``private.key``)."""

    folder: Path
    certificate_name: str = "server.pem"
    key_name: str = "server.key"

    @property
    def certificate(self) -> Path:
        return self.folder / self.certificate_name

    @property
    def key(self) -> Path:
        return self.folder / self.key_name

    def due(self, now: dt.datetime | None = None) -> bool:
        """Missing, unreadable, or past two thirds of its life: issue a new one."""
        try:
            cert = x509.load_pem_x509_certificate(self.certificate.read_bytes())
        except (OSError, ValueError):
            return True
        if not self.key.exists():
            return True
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        return (now or dt.datetime.now(dt.UTC)) >= start + (end - start) * RENEW_FRACTION

    def write(self, certificate_chain: str, private_key: str, owner: int | None = None) -> None:
        """Key 0600 and certificate (with its chain) 0644, each replaced atomically; both
        owned by ``owner`` (a uid) when the server runs as another user."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        write_file(self.key, private_key, 0o600)
        write_file(self.certificate, certificate_chain, 0o644)
        if owner is not None:
            for path in (self.folder, self.key, self.certificate):
                os.chown(path, owner, -1)


def bootstrap_ca_key_file(settings: PlatformSettings) -> Path:
    return settings.secrets_dir / "bootstrap-ca.key"


def bootstrap_ca_file(settings: PlatformSettings) -> Path:
    return settings.root / "tls" / "bootstrap-ca.pem"


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _now() -> dt.datetime:
    # Backdated a little against clock skew between this process and a client.
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)


def ensure_bootstrap_ca(
    settings: PlatformSettings,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The bootstrap CA: made once (P-256, ten years), kept on every later start."""
    key_file, cert_file = bootstrap_ca_key_file(settings), bootstrap_ca_file(settings)
    if key_file.exists() and cert_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BOOTSTRAP_CA_NAME)])
    start = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=BOOTSTRAP_CA_DAYS))
        # It signs server certificates and nothing below them.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_file(key_file, pkcs8.decode(), 0o600)
    write_file(cert_file, _pem(cert), 0o644)
    return key, cert


def issue_listener_certificate(
    settings: PlatformSettings, target: ServerCertificate, names: Sequence[str] = ()
) -> None:
    """OpenBao's listener certificate from the bootstrap CA, for ``names`` (default:
    ``tls_server_names``; the first is the subject)."""
    ca_key, ca_cert = ensure_bootstrap_ca(settings)
    key = ec.generate_private_key(ec.SECP256R1())
    names = tuple(names) or settings.tls_server_names
    dns, ips = split_names(names)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    start = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=LISTENER_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    target.write(_pem(cert) + _pem(ca_cert), pkcs8.decode())


def write_server_trust(settings: PlatformSettings) -> Path:
    """``settings.server_ca_bundle``: the bootstrap CA, then the platform CA once there is
    one. Rewritten only when its content changes (clients may be reading it)."""
    parts = [bootstrap_ca_file(settings).read_text().strip()]
    if settings.ca_bundle is not None and settings.ca_bundle.exists():
        parts.append(settings.ca_bundle.read_text().strip())
    target = settings.server_ca_bundle
    assert target is not None  # set by the settings' validator
    text = "\n".join(parts) + "\n"
    if not target.exists() or target.read_text() != text:
        write_file(target, text, 0o644)  # public: every client reads it
    return target
