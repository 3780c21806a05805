"""Operators: people who run `mlsec` commands, each an OpenBao login with a name.

An operator logs in with userpass (bootstrap creates the local one and keeps its password in
a 0600 file; an OIDC login would hand over a token the same way). The login's own policy
(``operator.hcl``) reads and decrypts nothing: each command asks, through a token role, for a
short-lived child token that holds only that command's policies (:data:`OPERATOR_COMMANDS`),
so a reveal cannot sign tokens and a token issue cannot decrypt. The audit actor of what a
command does is the login's name, which OpenBao vouches for, never ``$USER``.

The root token serves bootstrap only: once `mlsec operator revoke-root` has revoked it,
bootstrap makes a root token for its own run from the unseal key
(:func:`bootstrap_root_token`) and revokes it when done.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import hvac
from hvac.exceptions import Forbidden, InvalidRequest, VaultError

from mlsec_platform.errors import AccessDenied, ConfigurationError
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.settings import Endpoints, PlatformSettings

#: The files under the secrets folder this module reads (bootstrap writes them).
OPERATOR_CREDENTIAL = "operator.json"
ROOT_TOKEN = "openbao-bootstrap-token"  # noqa: S105 - a file name
UNSEAL_KEY = "openbao-unseal-key"
#: Written by `mlsec operator revoke-root` (no secret in it): the root token is gone on purpose.
ROOT_REVOKED = "openbao-root-revoked"

#: The userpass mount and the operator bootstrap creates on the `local` profile.
USERPASS_MOUNT = "userpass"
LOCAL_OPERATOR = "operator"
#: The policy of an operator's login itself.
LOGIN_POLICY = "operator"
#: Lifetime of an operator's login (s): every command token made from it dies with it.
LOGIN_TTL = 3600
#: Lifetime of a command's token (s), unless the command says otherwise.
COMMAND_TTL = 120


@dataclass(frozen=True)
class OperatorCommand:
    """What one operator command's token may do: its policies, and how long it lives."""

    name: str
    policies: tuple[str, ...]
    #: Seconds; ``None``: as long as the operator's login (for a command that runs jobs).
    ttl: int | None = COMMAND_TTL

    @property
    def role(self) -> str:
        """The token role (``auth/token/roles/<role>``) that grants exactly ``policies``."""
        return f"operator-{self.name}"


OPERATOR_COMMANDS: dict[str, OperatorCommand] = {
    c.name: c
    for c in (
        OperatorCommand("issue", ("issuer", "operator-command")),
        OperatorCommand("reveal", ("reveal", "operator-command")),
        OperatorCommand("cert-issue", ("operator-cert-issue", "operator-command")),
        OperatorCommand("rotate-token-keys", ("operator-rotate-token-keys", "operator-command")),
        OperatorCommand("rotate-s3-keys", ("operator-rotate-s3-keys", "operator-command")),
        OperatorCommand("exclude", ("operator-command",)),
        OperatorCommand("revoke-root", ("operator-command",)),
        OperatorCommand("bootstrap", ("operator-bootstrap",), ttl=60),
        # As long as the login: an erasure rewrites every zone, then signs its receipt.
        OperatorCommand("erase", ("operator-erase", "operator-command"), ttl=None),
        OperatorCommand("erase-verify", ("operator-erase-verify", "operator-command")),
        OperatorCommand("receipt-verify", ("operator-receipt-verify", "operator-command")),
        OperatorCommand("subjects", ("operator-subjects", "operator-command")),
    )
}

#: Policy files (``policies/vault/<name>.hcl``) bootstrap writes for operators.
OPERATOR_POLICIES = (
    LOGIN_POLICY,
    "operator-command",
    "operator-cert-issue",
    "operator-rotate-token-keys",
    "operator-rotate-s3-keys",
    "operator-bootstrap",
    "operator-erase",
    "operator-erase-verify",
    "operator-receipt-verify",
    "operator-subjects",
)


class OperatorLoginRefused(AccessDenied):
    """OpenBao refused the operator's login or a command token."""


def credential_path(settings: PlatformSettings) -> Path:
    return settings.secrets_dir / OPERATOR_CREDENTIAL


class OperatorLogin:
    """A logged-in operator: ``name`` for audit records, and one token per command.

    Use it as a context manager: the login token is revoked at the end, and with it every
    command token made from it (they are its children).
    """

    def __init__(self, addr: str, name: str, token: str, ttl: int) -> None:
        self.addr, self.name, self.ttl = addr, name, ttl
        self._client = vault_client(addr, token)

    @property
    def actor(self) -> str:
        """The audit actor of everything this operator does."""
        return f"operator:{self.name}"

    @classmethod
    def login(cls, settings: PlatformSettings, endpoints: Endpoints) -> OperatorLogin:
        """Log in with the operator credential of the secrets folder (0600, never printed)."""
        path = credential_path(settings)
        try:
            credential = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigurationError(
                f"no operator credential at {path}: start the stack with `mlsec up` (its "
                "bootstrap creates the operator), or set MLSEC_STATE_DIR (local) or "
                "MLSEC_BOOTSTRAP_DIR (stack) to where it is"
            ) from None
        client = vault_client(endpoints.vault_addr, settings=settings)
        try:
            auth = client.auth.userpass.login(
                credential["username"], credential["password"], mount_point=USERPASS_MOUNT
            )["auth"]
        except (InvalidRequest, Forbidden):
            raise OperatorLoginRefused(
                f"OpenBao refused the login of operator {credential['username']!r} ({path}): "
                "run `mlsec bootstrap` to reset it"
            ) from None
        # The name OpenBao knows the login by, not the one in the file.
        name = auth["metadata"]["username"]
        return cls(endpoints.vault_addr, name, auth["client_token"], auth["lease_duration"])

    def command_client(self, command: str) -> hvac.Client:
        """A client whose token holds only ``command``'s policies, for a short time."""
        spec = OPERATOR_COMMANDS[command]
        ttl = spec.ttl or self.ttl
        try:
            created = self._client.auth.token.create(
                role_name=spec.role,
                policies=list(spec.policies),
                ttl=f"{ttl}s",
                no_default_policy=True,
                renewable=False,
                meta={"command": command},
            )
        except (Forbidden, InvalidRequest) as exc:
            raise OperatorLoginRefused(
                f"OpenBao refused operator {self.name!r} a token for `{command}` "
                f"({type(exc).__name__}); `mlsec bootstrap` restores the operator's roles"
            ) from None
        return vault_client(self.addr, created["auth"]["client_token"])

    def close(self) -> None:
        # An expired login has nothing left to revoke.
        with suppress(VaultError):
            self._client.auth.token.revoke_self()

    def __enter__(self) -> OperatorLogin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def root_revoked(settings: PlatformSettings) -> bool:
    return (settings.secrets_dir / ROOT_REVOKED).exists()


@contextmanager
def bootstrap_root_token(settings: PlatformSettings, endpoints: Endpoints) -> Iterator[str]:
    """A root token for one bootstrap run, made from the unseal key, revoked when it ends.

    It needs both the operator's login (its ``bootstrap`` command token starts the attempt)
    and the unseal key: the `local` profile has both in its secrets folder. Elsewhere the
    error says how to provide a root token by hand.
    """
    unseal_key = settings.secrets_dir / UNSEAL_KEY
    if not unseal_key.exists():
        raise ConfigurationError(
            "the OpenBao root token was revoked (`mlsec operator revoke-root`) and bootstrap "
            f"needs one; no unseal key is at {unseal_key}: make one with `bao operator "
            f"generate-root` and write it to {settings.secrets_dir / ROOT_TOKEN} (mode 0600), "
            "run bootstrap, then `mlsec operator revoke-root` again"
        )
    with OperatorLogin.login(settings, endpoints) as operator:
        client = operator.command_client("bootstrap")
        attempt = "/v1/sys/generate-root-token/attempt"
        client.adapter.delete(attempt)  # an attempt left by a killed run would block ours
        started = client.adapter.put(attempt, json={})["data"]
        done = client.adapter.put(
            "/v1/sys/generate-root-token/update",
            json={"key": unseal_key.read_text().strip(), "nonce": started["nonce"]},
        )["data"]
        token = _decode_root_token(done["encoded_token"], started["otp"])
    root = vault_client(endpoints.vault_addr, token, settings=settings)
    try:
        yield token
    finally:
        root.auth.token.revoke_self()


def _decode_root_token(encoded: str, otp: str) -> str:
    """OpenBao returns the new token XOR'd with the one-time password, base64-encoded."""
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    return bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True)).decode()
