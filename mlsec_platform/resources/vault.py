"""OpenBao / Vault access for one workload identity (AppRole)."""

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import hvac
import requests
from hvac import exceptions as hvac_errors
from pydantic import PrivateAttr

from mlsec_platform.errors import MlsecError
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.resources.running_stack import StackAddressedResource, stack_address

if TYPE_CHECKING:
    from mlsec_platform.settings import PlatformSettings


class VaultError(MlsecError, RuntimeError):
    """Base of the platform's Vault errors. A service cannot work without its secrets: 503."""

    http_status = 503


class VaultUnavailable(VaultError):
    """OpenBao/Vault cannot be reached or is sealed: nothing that needs a secret may proceed."""


class VaultAccessDenied(VaultError):
    """This identity is not allowed the path it asked for, or its login was refused."""


class VaultSecretNotFound(VaultError):
    """The path is allowed but holds nothing (yet)."""


@dataclass(repr=False)
class Lease:
    """A secret with a lifetime. ``data`` is never shown in reprs or logs."""

    data: dict[str, Any]
    lease_id: str
    duration: float
    obtained_at: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.duration - (time.monotonic() - self.obtained_at)

    def __repr__(self) -> str:
        return f"Lease(lease_id={self.lease_id!r}, remaining={self.remaining():.0f}s)"


class VaultResource(StackAddressedResource):
    """Logs in to OpenBao as one workload identity via AppRole and reads what its policy allows.

    The AppRole ``role_id``/``secret_id`` are read from 0600 files delivered by the bootstrap
    (never from code, env files or run config). The token lives in a private attribute and is
    renewed, or replaced by a fresh login, before it expires.
    """

    addr: str | None = stack_address("OpenBao address")
    identity: str
    credentials_dir: str
    renew_margin_seconds: float = 60.0
    timeout_seconds: float = 5.0

    _client: hvac.Client | None = PrivateAttr(default=None)
    _token_expires_at: float = PrivateAttr(default=0.0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    stack_addresses = {"addr": "vault_addr"}

    @classmethod
    def for_identity(cls, settings: "PlatformSettings", identity: str) -> "VaultResource":
        """The stack's OpenBao as ``identity``, with the AppRole credentials bootstrap
        delivered for it."""
        return cls(
            addr=settings.endpoints().vault_addr,
            identity=identity,
            credentials_dir=str(settings.identities_dir),
        )

    # -- token ---------------------------------------------------------------------------------
    def client(self) -> hvac.Client:
        """An authenticated client whose token has at least the renewal margin left."""
        with self._lock:
            remaining = self._token_expires_at - time.monotonic()
            if self._client is None or remaining <= 0:
                self._login()
            elif remaining < self.renew_margin_seconds:
                self._renew_or_login()
            assert self._client is not None
            return self._client

    def _credential(self, name: str) -> str:
        path = Path(self.credentials_dir) / self.identity / name
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            raise VaultAccessDenied(
                f"no AppRole credentials for identity '{self.identity}' under "
                f"{Path(self.credentials_dir) / self.identity}: run `mlsec bootstrap`"
            ) from None
        except PermissionError:
            # Each identity's folder belongs to its own OS user (stack/os_users.py).
            raise VaultAccessDenied(
                f"the AppRole credentials of identity '{self.identity}' belong to another OS "
                "user: run this as the identity's own user"
            ) from None

    def _login(self) -> None:
        client = vault_client(self.address("addr"), timeout=self.timeout_seconds)
        with self._translated(f"AppRole login as '{self.identity}'"):
            auth = client.auth.approle.login(
                self._credential("role_id"), self._credential("secret_id"), use_token=True
            )["auth"]
        self._client = client
        self._token_expires_at = time.monotonic() + auth["lease_duration"]

    def _renew_or_login(self) -> None:
        assert self._client is not None
        try:
            with self._translated("token renewal"):
                auth = self._client.auth.token.renew_self()["auth"]
            granted = auth["lease_duration"]
            # Past max TTL Vault grants less than asked: log in again rather than run dry.
            if granted < self.renew_margin_seconds * 2:
                self._login()
            else:
                self._token_expires_at = time.monotonic() + granted
        except VaultAccessDenied:
            self._login()

    def revoke(self) -> None:
        """Give the token back (end of a run); best effort."""
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(hvac_errors.VaultError, requests.RequestException):
                    self._client.auth.token.revoke_self()
            self._client, self._token_expires_at = None, 0.0

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.revoke()

    # -- reads ---------------------------------------------------------------------------------
    def read_kv(self, path: str, mount: str = "mlsec") -> dict[str, Any]:
        """Read a KV v2 secret."""
        client = self.client()
        with self._translated(f"read of {mount}/{path}"):
            return client.secrets.kv.v2.read_secret_version(
                path, mount_point=mount, raise_on_deleted_version=True
            )["data"]["data"]

    def read(self, path: str) -> dict[str, Any]:
        """Read any path the policy allows (e.g. ``transit/keys/<name>``); its ``data``."""
        client = self.client()
        with self._translated(f"read of {path}"):
            response = client.read(path)
        if response is None:
            raise VaultSecretNotFound(f"read of {path}: nothing stored there")
        return response["data"]

    def write(self, path: str, **data: Any) -> dict[str, Any]:
        """Write to a path the policy allows (e.g. ``transit/decrypt/<key>``); its ``data``."""
        client = self.client()
        with self._translated(f"write to {path}"):
            response = client.write_data(path, data=data)
        return (response or {}).get("data", {})

    def lease(self, path: str) -> Lease:
        """Read a dynamic secret (e.g. ``database/creds/<role>``) with its lease."""
        client = self.client()
        with self._translated(f"read of {path}"):
            response = client.read(path)
        if response is None:
            raise VaultAccessDenied(f"nothing at '{path}' for identity '{self.identity}'")
        return Lease(
            data=response["data"],
            lease_id=response["lease_id"],
            duration=float(response["lease_duration"]),
        )

    def revoke_lease(self, lease: Lease) -> None:
        with contextlib.suppress(VaultError, hvac_errors.VaultError, requests.RequestException):
            self.client().sys.revoke_lease(lease.lease_id)

    # -- errors --------------------------------------------------------------------------------
    def _translated(self, action: str):
        return _Translate(self.addr, self.identity, action)


class _Translate:
    """Turns transport and Vault errors into the platform's typed errors, without secrets."""

    def __init__(self, addr: str, identity: str, action: str) -> None:
        self.addr, self.identity, self.action = addr, identity, action

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        if isinstance(exc, requests.ConnectionError | requests.Timeout):
            raise VaultUnavailable(
                f"OpenBao at {self.addr} is unreachable during {self.action} "
                f"({type(exc).__name__}); check `mlsec status`"
            ) from None
        if isinstance(exc, hvac_errors.VaultDown):
            raise VaultUnavailable(
                f"OpenBao at {self.addr} is sealed during {self.action}"
            ) from None
        if isinstance(exc, hvac_errors.InvalidPath):
            raise VaultSecretNotFound(f"{self.action}: nothing stored there") from None
        if isinstance(exc, hvac_errors.Forbidden | hvac_errors.InvalidRequest):
            raise VaultAccessDenied(
                f"{self.action} refused for identity '{self.identity}' ({type(exc).__name__})"
            ) from None
        if isinstance(exc, hvac_errors.VaultError):
            raise VaultUnavailable(
                f"OpenBao at {self.addr} failed during {self.action} ({type(exc).__name__})"
            ) from None
        return False
