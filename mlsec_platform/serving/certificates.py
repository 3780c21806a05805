"""Certificates of the platform CA (OpenBao's PKI engine) for the services' TLS: issuing one,
a TLS context whose private key never touches a disk, and what a connection's verified client
certificate tells (the ``tls`` scope extension)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
from cryptography import x509

from mlsec_platform.identities.tokens import certificate_thumbprint


@dataclass(frozen=True, repr=False)
class IssuedCertificate:
    """A certificate and its private key (PEM; the key is never shown), with its CA chain."""

    certificate: str
    private_key: str
    chain: tuple[str, ...]
    serial: str
    not_before: datetime
    not_after: datetime
    #: When it was received: OpenBao backdates ``not_before`` (30 s) against clock skew.
    issued_at: datetime

    @classmethod
    def from_pki(cls, data: dict[str, Any]) -> IssuedCertificate:
        """From the answer of OpenBao's ``pki/issue/<role>``."""
        cert = x509.load_pem_x509_certificate(data["certificate"].encode())
        return cls(
            certificate=data["certificate"].strip() + "\n",
            private_key=data["private_key"].strip() + "\n",
            chain=tuple(data.get("ca_chain") or [data["issuing_ca"]]),
            serial=data["serial_number"],
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            issued_at=datetime.now(UTC),
        )

    @property
    def serial_number(self) -> int:
        return int(self.serial.replace(":", ""), 16)

    def renew_at(self, fraction: float = 2 / 3) -> datetime:
        """When ``fraction`` of its life since it was issued has passed."""
        start = max(self.not_before, self.issued_at)
        return start + (self.not_after - start) * fraction

    def __repr__(self) -> str:
        return f"IssuedCertificate(serial={self.serial!r}, not_after={self.not_after:%FT%TZ})"


def split_names(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) of ``names``."""
    dns, ips = [], []
    for name in names:
        try:
            ips.append(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.append(name)
    return dns, ips


def issue_certificate(
    vault: hvac.Client,
    role: str,
    names: Sequence[str],
    *,
    ttl_seconds: int | None = None,
    mount: str = "pki",
) -> IssuedCertificate:
    """A certificate from ``mount``'s ``role`` for ``names`` (the first is the subject; DNS
    names and IP addresses), through ``vault`` (whose policy must allow the role)."""
    dns, ips = split_names(names)
    params: dict[str, Any] = {"common_name": names[0], "exclude_cn_from_sans": not dns}
    if dns:
        params["alt_names"] = ",".join(dns)
    if ips:
        params["ip_sans"] = ",".join(ips)
    if ttl_seconds:
        params["ttl"] = f"{ttl_seconds}s"
    return IssuedCertificate.from_pki(vault.write(f"{mount}/issue/{role}", **params)["data"])


@contextlib.contextmanager
def key_file(issued: IssuedCertificate) -> Iterator[str]:
    """A path OpenSSL can read the certificate, its chain and its key from, for the block.

    An anonymous in-memory file (``memfd``): the key never touches a disk. Where there is
    none, a 0600 temporary file, removed when the block ends."""
    pem = (issued.certificate + "".join(c.strip() + "\n" for c in issued.chain)).encode()
    pem += issued.private_key.encode()
    if hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir():
        fd = os.memfd_create("mlsec-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, pem)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="mlsec-tls-")  # 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        yield path
    finally:
        Path(path).unlink(missing_ok=True)


def server_context(issued: IssuedCertificate, ca_bundle: Path | str) -> ssl.SSLContext:
    """TLS 1.2 or later, ``issued`` as the server's certificate, and a client certificate of a
    CA in ``ca_bundle`` required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(ca_bundle))
    with key_file(issued) as path:
        context.load_cert_chain(path)
    return context


def client_certificate(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """The ``tls`` scope extension of a connection: its verified client certificate (read
    from what OpenSSL parsed already: one handshake less work than parsing it again)."""
    der, parsed = ssl_object.getpeercert(binary_form=True), ssl_object.getpeercert()
    subject = ",".join(
        f"{_RDN.get(name, name)}={_escaped(value)}"
        for rdn in reversed(parsed["subject"])
        for name, value in rdn
    )
    return {
        "client_cert_x5t_s256": certificate_thumbprint(der),
        "client_cert_subject": subject,
        "client_cert_not_after": parsed["notAfter"],
        "tls_version": ssl_object.version(),
    }


def _escaped(value: str) -> str:
    """An attribute value as RFC 4514 writes it: its special characters escaped."""
    escaped = re.sub(r'([\\,+"<>;])', r"\\\1", value)
    return f"\\{escaped}" if escaped.startswith(("#", " ")) else escaped


#: Attribute names of a subject as RFC 4514 writes them (``ssl`` names them in full).
_RDN = {
    "commonName": "CN",
    "organizationalUnitName": "OU",
    "organizationName": "O",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}
