"""The platform CA: OpenBao's PKI engine (idempotent, run with the bootstrap token).

One internal root, "mlsec-platform CA", whose key never leaves OpenBao. Roles issue from it:
``broker-server`` and ``gateway-server`` (server certificates for the names in
``tls_server_names``; only the broker's and the gateway's identities may use them, each its
own), ``s3-server``, ``postgres-server`` and ``nats-server`` (the embedded servers'
certificates, issued by the supervisor with the bootstrap's rights) and ``client``
(short-lived client certificates for any subject, client auth only; only the operator's
``cert-issue`` command token may use it). Nothing is stored per certificate
(``no_store``): a certificate lives as long as its short TTL.

The CA certificate (public) is written to ``settings.ca_bundle``: clients trust it, and the
services check client certificates against it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hvac
from hvac.exceptions import InvalidPath, InvalidRequest

from mlsec_platform.identities.catalog import (
    PKI_MOUNT,
    SERVER_CERT_ROLES,
    STACK_SERVER_CERT_ROLES,
)
from mlsec_platform.identities.operators import ROOT_TOKEN, bootstrap_root_token, root_revoked
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.serving.certificates import issue_certificate, split_names
from mlsec_platform.settings import Endpoints, PlatformSettings, Profile
from mlsec_platform.stack.secret_files import read_secret, write_file
from mlsec_platform.stack.server_tls import ServerCertificate, write_server_trust

CA_COMMON_NAME = "mlsec-platform CA"
#: The root's lifetime, and so the mount's longest lease.
CA_TTL = "87600h"
#: Client certificates: an hour unless asked otherwise, never over this (seconds).
CLIENT_TTL = 3600
CLIENT_MAX_TTL = 12 * 3600
#: Server certificates may be asked for up to this long (the services renew at 2/3 of it).
SERVER_MAX_TTL = 7 * 24 * 3600
#: P-256 keys: small, fast handshakes, accepted everywhere TLS 1.2+ is.
_KEY = {"key_type": "ec", "key_bits": 256, "key_usage": ["DigitalSignature"], "no_store": True}


def role_definitions(settings: PlatformSettings) -> dict[str, dict[str, Any]]:
    """Each PKI role and its parameters."""
    dns, _ = split_names(settings.tls_server_names)
    server = {
        **_KEY,
        # Only the configured names; IP SANs cannot be listed per role in OpenBao, only allowed.
        "allowed_domains": dns,
        "allow_bare_domains": True,
        "allow_subdomains": False,
        "allow_glob_domains": False,
        "allow_localhost": "localhost" in dns,
        "allow_ip_sans": True,
        "server_flag": True,
        "client_flag": False,
        "ttl": f"{settings.tls_server_cert_ttl}s",
        "max_ttl": f"{SERVER_MAX_TTL}s",
    }
    roles = {role: {**server, "ou": [service]} for service, role in SERVER_CERT_ROLES.items()}
    # The servers' certificates live longer: only `mlsec up` (or `mlsec server-certs`) renews
    # them. Each role may also name the host its clients reach it at (`stack` profile), and
    # only its own, so no other certificate of the platform CA can stand in for that server.
    stack_ttl = f"{settings.tls_stack_cert_ttl}s"
    for service, role in STACK_SERVER_CERT_ROLES.items():
        host = server_host(settings, service)
        domains = [*dns, host] if host and host not in dns else dns
        roles[role] = {
            **server,
            "allowed_domains": domains,
            "ou": [service],
            "ttl": stack_ttl,
            "max_ttl": stack_ttl,
        }
    roles["client"] = {
        **_KEY,
        "allow_any_name": True,
        "enforce_hostnames": False,
        "allow_ip_sans": False,
        "server_flag": False,
        "client_flag": True,
        "ttl": f"{CLIENT_TTL}s",
        "max_ttl": f"{CLIENT_MAX_TTL}s",
    }
    return roles


def server_host(settings: PlatformSettings, service: str) -> str | None:
    """The host name the clients of a server (``openbao`` or a ``STACK_SERVER_CERT_ROLES``
    key) reach it at on the `stack` profile; None on `local` (loopback) or when unset."""
    if settings.profile is Profile.LOCAL:
        return None
    if service == "postgres":
        return settings.postgres_host
    address = {
        "openbao": settings.vault_addr,
        "seaweedfs": settings.s3_endpoint,
        "nats": settings.nats_url,
    }.get(service)
    return urlsplit(address).hostname if address else None


def bootstrap_pki(client: hvac.Client, settings: PlatformSettings) -> Path:
    """The PKI mount, its root CA (made once, kept on re-runs) and roles; the CA certificate
    written to ``settings.ca_bundle``, which is returned."""
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    if f"{PKI_MOUNT}/" not in mounts:
        client.sys.enable_secrets_engine("pki", path=PKI_MOUNT, config={"max_lease_ttl": CA_TTL})
    ca = ca_certificate(client)
    if ca is None:
        ca = client.secrets.pki.generate_root(
            "internal",
            CA_COMMON_NAME,
            # P-256 like the leaves: each handshake verifies its signature on both ends, and a
            # P-384 verification costs about 5x as much (375 against 67 us, measured here).
            extra_params={"ttl": CA_TTL, "key_type": "ec", "key_bits": 256},
            mount_point=PKI_MOUNT,
        )["data"]["certificate"]
    for name, params in role_definitions(settings).items():
        client.secrets.pki.create_or_update_role(name, extra_params=params, mount_point=PKI_MOUNT)
    write_file(settings.ca_bundle, ca.strip() + "\n", 0o644)  # public: clients read it
    if settings.profile is Profile.LOCAL:
        write_server_trust(settings)
    return settings.ca_bundle


def ca_certificate(client: hvac.Client) -> str | None:
    """The root's certificate (PEM), or None before there is one."""
    try:
        data = client.read(f"{PKI_MOUNT}/cert/ca")
    except (InvalidPath, InvalidRequest):  # "no default issuer currently configured"
        return None
    certificate = (data or {}).get("data", {}).get("certificate")
    return certificate or None


@contextmanager
def root_vault(settings: PlatformSettings, endpoints: Endpoints) -> Iterator[hvac.Client]:
    """A client with the bootstrap's rights: the root token, or, once it was revoked, one
    made for this block from the unseal key (and revoked after)."""
    root = settings.secrets_dir / ROOT_TOKEN
    if root.exists() or not root_revoked(settings):
        yield vault_client(endpoints.vault_addr, read_secret(root), settings=settings)
        return
    with bootstrap_root_token(settings, endpoints) as token:
        yield vault_client(endpoints.vault_addr, token, settings=settings)


def issue_server_certificates(
    settings: PlatformSettings,
    endpoints: Endpoints,
    servers: Sequence[tuple[str, ServerCertificate, int | None]],
) -> None:
    """For each (PKI role, where its files go, their owner's uid): a new certificate of the
    platform CA for ``tls_server_names``; the PKI engine made first if missing, and the
    clients' bundle (``server_ca_bundle``) rewritten to hold the platform CA."""
    with root_vault(settings, endpoints) as client:
        bootstrap_pki(client, settings)
        for role, target, owner in servers:
            issued = issue_certificate(
                client,
                role,
                settings.tls_server_names,
                ttl_seconds=settings.tls_stack_cert_ttl,
                mount=PKI_MOUNT,
            )
            chain = "".join(c.strip() + "\n" for c in issued.chain)
            target.write(issued.certificate + chain, issued.private_key, owner)
    write_server_trust(settings)
