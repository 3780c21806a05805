"""The servers' certificates on the `stack` profile, where the platform's own deployment runs
them (docker/compose.yaml): ``mlsec server-certs``.

The same chain as the embedded stack: OpenBao's listener certificate comes from the bootstrap
CA (OpenBao cannot issue one before it is up), the object store's, PostgreSQL's and NATS's
from the platform CA (OpenBao PKI, roles ``s3-server``, ``postgres-server``, ``nats-server``).
Each is issued for the host its clients reach it at (from the settings' addresses) plus
``localhost`` and ``127.0.0.1`` (health checks inside its container), into
``<state>/tls/<server>/``, when missing or past two thirds of its life. Run it once before
OpenBao starts (``--listener-only``), then with OpenBao up before the other servers start;
a server handed a new certificate must be restarted (docker/smoke.sh does).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.identities.catalog import PKI_MOUNT, STACK_SERVER_CERT_ROLES
from mlsec_platform.serving.certificates import issue_certificate
from mlsec_platform.settings import Endpoints, PlatformSettings, Profile
from mlsec_platform.stack.bootstrap.pki import bootstrap_pki, root_vault, server_host
from mlsec_platform.stack.secret_files import write_file
from mlsec_platform.stack.server_tls import (
    ServerCertificate,
    bootstrap_ca_file,
    issue_listener_certificate,
    write_server_trust,
)

#: Names every server certificate carries besides its host: for checks inside its container.
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


@dataclass(frozen=True)
class StackServer:
    """One server of the `stack` profile whose certificate the platform issues."""

    #: Its ``STACK_SERVER_CERT_ROLES`` key, or ``openbao`` (bootstrap CA).
    service: str
    #: Its folder under ``<state>/tls``.
    folder: str
    certificate_name: str = "server.pem"
    key_name: str = "server.key"

    def target(self, settings: PlatformSettings) -> ServerCertificate:
        return ServerCertificate(
            settings.root / "tls" / self.folder, self.certificate_name, self.key_name
        )

    def names(self, settings: PlatformSettings) -> tuple[str, ...]:
        host = server_host(settings, self.service)
        if host is None:
            raise ConfigurationError(
                f"no address is set for {self.service}: set it, so its certificate names the "
                "host its clients reach it at"
            )
        return (host, *(n for n in LOOPBACK_NAMES if n != host))


OPENBAO = StackServer("openbao", "openbao")
#: The platform CA's servers; MinIO reads its pair from ``--certs-dir`` under its own names.
PLATFORM_CA_SERVERS = (
    StackServer("seaweedfs", "minio", "public.crt", "private.key"),
    StackServer("postgres", "postgres"),
    StackServer("nats", "nats"),
)


def _publish_bootstrap_ca(settings: PlatformSettings) -> None:
    """Clients of OpenBao trust the bootstrap CA: in its own file when ``server_ca_files``
    names one for ``vault`` (so no other server is trusted on its word), else in the bundle."""
    own = settings.server_ca_files.get("vault")
    if own is None:
        write_server_trust(settings)
        return
    text = bootstrap_ca_file(settings).read_text()
    if not own.exists() or own.read_text() != text:
        write_file(own, text, 0o644)  # public: every client of OpenBao reads it


def ensure_listener_certificate(settings: PlatformSettings) -> bool:
    """OpenBao's listener certificate (bootstrap CA) when due; True when it issued one."""
    target = OPENBAO.target(settings)
    due = target.due()
    if due:
        issue_listener_certificate(settings, target, OPENBAO.names(settings))
    _publish_bootstrap_ca(settings)
    return due


def ensure_server_certificates(settings: PlatformSettings, endpoints: Endpoints) -> list[str]:
    """The platform CA's certificates of the other servers when due (the PKI engine made or
    repaired first, its CA published to ``ca_bundle``); the folders it issued for."""
    due = [s for s in PLATFORM_CA_SERVERS if s.target(settings).due()]
    with root_vault(settings, endpoints) as client:
        bootstrap_pki(client, settings)
        for server in due:
            issued = issue_certificate(
                client,
                STACK_SERVER_CERT_ROLES[server.service],
                server.names(settings),
                ttl_seconds=settings.tls_stack_cert_ttl,
                mount=PKI_MOUNT,
            )
            chain = "".join(c.strip() + "\n" for c in issued.chain)
            server.target(settings).write(issued.certificate + chain, issued.private_key)
    return [s.folder for s in due]


def ensure_stack_certificates(settings: PlatformSettings, *, listener_only: bool) -> list[str]:
    """``mlsec server-certs``: the folders (servers) that got a new certificate."""
    if settings.profile is Profile.LOCAL:
        raise ConfigurationError("`mlsec up` issues the embedded servers' certificates on `local`")
    issued = [OPENBAO.folder] if ensure_listener_certificate(settings) else []
    if not listener_only:
        issued += ensure_server_certificates(settings, settings.endpoints())
    return issued
