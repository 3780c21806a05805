"""The one way the platform makes an OpenBao client: over TLS, the server verified."""

from __future__ import annotations

import hvac

from mlsec_platform.settings import PlatformSettings, get_settings


def vault_client(
    url: str,
    token: str | None = None,
    *,
    timeout: float = 30,
    settings: PlatformSettings | None = None,
) -> hvac.Client:
    """A client of OpenBao at ``url`` that verifies its certificate against the settings'
    CA bundle for ``vault`` (never the system's, never unverified)."""
    ca = (settings or get_settings()).server_ca("vault")
    return hvac.Client(url=url, token=token, timeout=timeout, verify=str(ca))
