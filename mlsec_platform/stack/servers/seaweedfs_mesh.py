"""SeaweedFS's internal ports speak mutual TLS only: the S3 port is the one way in.

``weed server`` is four servers in one process (master, volume, filer, S3 gateway), which talk
to each other over HTTP and gRPC on loopback ports of their own. Left open, those ports take
any local user's request with no identity at all: a plain HTTP POST to the filer writes into
any bucket (Raw included) and a GET reads any object, and ``weed shell`` against the filer's
gRPC port can add itself an S3 admin identity. Bucket policies and IAM only guard the S3 port.

So every internal port requires a client certificate from a CA that exists only for this one
SeaweedFS: made at each start (its key is never written to disk), it signs one certificate that
each component presents to the others, kept 0600 in the server's folder next to the
``security.toml`` that names it (``weed`` reads that file from its working folder). A local
user without root cannot read the key, so cannot open any internal port; the platform's own
clients never use them (they go through S3 with their identity's keys). The health checks and
``weed shell`` (which makes the admin identity) run as root with the same certificate.

The certificate is renewed at every start (it is good for :data:`MESH_DAYS`); nothing outside
this server trusts its CA, and its names are only ``127.0.0.1``/``localhost``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlsec_platform.stack.secret_files import write_file

#: How long the mesh certificate is good for; a restart issues a new one. Long enough that a
#: server up for months keeps working, since nothing but this process's parts trusts it.
MESH_DAYS = 400

#: The components whose gRPC servers ``weed server`` runs here (each needs its section).
GRPC_COMPONENTS = ("master", "volume", "filer", "s3")
#: The components whose HTTP servers ``weed server`` runs here (the S3 port has its own TLS).
HTTPS_COMPONENTS = ("master", "volume", "filer")


@dataclass(frozen=True)
class MeshFiles:
    """Where the mesh's CA certificate, its one certificate and key, and the config live."""

    home: Path

    @property
    def folder(self) -> Path:
        return self.home / "mesh"

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def certificate(self) -> Path:
        return self.folder / "node.pem"

    @property
    def key(self) -> Path:
        return self.folder / "node.key"

    @property
    def config(self) -> Path:
        # `weed` looks for security.toml in its working folder first.
        return self.home / "security.toml"

    @property
    def client_cert(self) -> tuple[str, str]:
        """The (certificate, key) pair for ``requests``'s ``cert=``."""
        return str(self.certificate), str(self.key)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(files: MeshFiles) -> None:
    """A new CA (its key dropped once it has signed) and one certificate for every part."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    end = start + dt.timedelta(days=MESH_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("mlsec-platform seaweedfs mesh CA"))
        .issuer_name(_name("mlsec-platform seaweedfs mesh CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    node = (
        x509.CertificateBuilder()
        .subject_name(_name("seaweedfs"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # Each part is a server to some and a client of others, with the same certificate.
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files.folder.mkdir(parents=True, exist_ok=True)
    files.folder.chmod(0o700)
    pem = serialization.Encoding.PEM
    pkcs8 = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    write_file(files.key, pkcs8, 0o600)
    write_file(files.certificate, node.public_bytes(pem).decode(), 0o600)
    write_file(files.ca, ca.public_bytes(pem).decode(), 0o600)


def security_config(files: MeshFiles) -> str:
    """``security.toml``: mutual TLS on every internal gRPC and HTTP port, and the parts'
    own client side presenting the mesh certificate."""
    ca, cert, key = (f'"{p}"' for p in (files.ca, files.certificate, files.key))
    lines = ["[grpc]", f"ca = {ca}"]
    for part in (*GRPC_COMPONENTS, "client"):
        lines += ["", f"[grpc.{part}]", f"cert = {cert}", f"key = {key}"]
    lines += ["", "[https.client]", "enabled = true", f"cert = {cert}", f"key = {key}"]
    lines += [f"ca = {ca}"]
    for part in HTTPS_COMPONENTS:
        # With `ca` set the server requires a client certificate signed by it.
        lines += ["", f"[https.{part}]", f"cert = {cert}", f"key = {key}", f"ca = {ca}"]
    # No unauthenticated pages either (they would be behind mutual TLS anyway).
    lines += ["", "[access]", "ui = false", "", "[filer.expose_directory_metadata]"]
    lines += ["enabled = false"]
    return "\n".join(lines) + "\n"


def prepare_mesh(home: Path) -> MeshFiles:
    """Issue the mesh's certificate and write ``security.toml`` (before every start)."""
    files = MeshFiles(home)
    _issue(files)
    write_file(files.config, security_config(files), 0o600)
    return files
