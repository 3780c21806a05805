"""Client certificates from the platform CA (`mlsec cert issue`), issued under the operator's
``cert-issue`` command token: any subject, client authentication only, short-lived.

The broker and the gateway accept a connection only with such a certificate (mTLS), and a
token only over the connection of the certificate it is bound to (`mlsec token issue --cert`).
The files are written to one folder: the certificate, its key (0600) and the CA that issued
it; ``--shell`` prints the ``export`` lines the SDK and the tutorial read them from. Each
certificate issued is an audit event (``certificate.issued``) with the operator as actor.
"""

from __future__ import annotations

import re
import shlex
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlsec_platform.identities.catalog import CLIENT_CERT_ROLE, PKI_MOUNT
from mlsec_platform.identities.tokens import certificate_thumbprint
from mlsec_platform.ops.operator import operator_command
from mlsec_platform.ops.refusals import NotApplicable
from mlsec_platform.serving.certificates import IssuedCertificate
from mlsec_platform.serving.client import CA_BUNDLE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, ClientTls
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.bootstrap.pki import CLIENT_MAX_TTL
from mlsec_platform.stack.secret_files import write_file

#: ``90``, ``90s``, ``30m``, ``1h``.
_DURATION = re.compile(r"^(\d+)([smh]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600}
#: An X.509 common name holds at most 64 characters.
MAX_SUBJECT = 64


class CertificateOptionsRefused(NotApplicable):
    """The options given do not make a client certificate."""


@dataclass(frozen=True)
class CertificateFiles:
    """Where a client certificate, its key and its CA were written."""

    certificate: Path
    key: Path
    ca_bundle: Path

    def exports(self) -> list[str]:
        """The shell lines that point the SDK (and the tutorial) at these files."""
        return [
            f"export {CA_BUNDLE_ENV}={shlex.quote(str(self.ca_bundle))}",
            f"export {CLIENT_CERT_ENV}={shlex.quote(str(self.certificate))}",
            f"export {CLIENT_KEY_ENV}={shlex.quote(str(self.key))}",
        ]


def parse_ttl(text: str) -> int:
    """Seconds of ``text`` (``90``, ``90s``, ``30m``, ``1h``), at most the client role's."""
    match = _DURATION.match(text.strip())
    seconds = int(match[1]) * _UNIT[match[2]] if match else 0
    if seconds <= 0:
        raise CertificateOptionsRefused(f"--ttl {text!r}: a duration like 3600, 30m or 1h")
    if seconds > CLIENT_MAX_TTL:
        raise CertificateOptionsRefused(
            f"--ttl {text}: client certificates live {CLIENT_MAX_TTL // 3600} h at most"
        )
    return seconds


def check_subject(subject: str) -> str:
    if not subject.strip() or len(subject) > MAX_SUBJECT or not subject.isprintable():
        raise CertificateOptionsRefused(
            f"--subject: 1 to {MAX_SUBJECT} printable characters (who the certificate is for)"
        )
    return subject.strip()


def issue_client_certificate(
    settings: PlatformSettings, subject: str, ttl_seconds: int
) -> IssuedCertificate:
    """A client certificate for ``subject`` from the platform CA (audited)."""
    subject = check_subject(subject)
    with operator_command(settings, "cert-issue") as session:
        data = session.vault.write(
            f"{PKI_MOUNT}/issue/{CLIENT_CERT_ROLE}",
            common_name=subject,
            exclude_cn_from_sans=True,
            ttl=f"{ttl_seconds}s",
        )["data"]
        issued = IssuedCertificate.from_pki(data)
        session.audit.emit(
            "certificate.issued",
            {
                "subject": subject,
                "serial": issued.serial,
                "thumbprint": certificate_thumbprint(issued.certificate),
                "not_after": issued.not_after.isoformat(),
                "ttl_seconds": ttl_seconds,
            },
        )
    return issued


def write_client_files(folder: Path, subject: str, issued: IssuedCertificate) -> CertificateFiles:
    """Write the certificate, its key (0600) and its CA into ``folder`` (made if missing)."""
    folder = folder.resolve()
    stem = re.sub(r"[^A-Za-z0-9._@-]", "_", subject)
    files = CertificateFiles(folder / f"{stem}.pem", folder / f"{stem}-key.pem", folder / "ca.pem")
    write_file(files.key, issued.private_key, 0o600)
    write_file(files.certificate, issued.certificate, 0o644)
    write_file(files.ca_bundle, "".join(c.strip() + "\n" for c in issued.chain), 0o644)
    return files


@contextmanager
def ephemeral_client(
    settings: PlatformSettings, subject: str, ttl_seconds: int = 600
) -> Iterator[tuple[ClientTls, str]]:
    """A short-lived client certificate for the platform's own calls to its services (the
    demo, a resubmission): its ClientTls and certificate (PEM, to bind tokens to). Its files
    live in a private temporary folder for the block only: build the clients inside it."""
    issued = issue_client_certificate(settings, subject, ttl_seconds)
    with tempfile.TemporaryDirectory(prefix="mlsec-client-") as folder:  # 0700
        files = write_client_files(Path(folder), subject, issued)
        yield ClientTls(files.ca_bundle, files.certificate, files.key), issued.certificate


def issue_to_folder(
    settings: PlatformSettings,
    subject: str,
    folder: Path,
    ttl: str,
    shell: bool,
    echo: Callable[[str], None],
) -> CertificateFiles:
    """`mlsec cert issue`: issue, write, and say where (or print the ``export`` lines)."""
    issued = issue_client_certificate(settings, subject, parse_ttl(ttl))
    files = write_client_files(folder, subject, issued)
    if shell:
        for line in files.exports():
            echo(line)
    else:
        echo(
            f"Client certificate for {subject!r} (serial {issued.serial}, until "
            f"{issued.not_after:%Y-%m-%d %H:%M} UTC): {files.certificate}"
        )
        echo(f"Its key (0600): {files.key}; the platform CA: {files.ca_bundle}")
    return files
