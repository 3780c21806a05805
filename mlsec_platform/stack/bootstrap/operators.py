"""The operators' side of OpenBao (idempotent, run with the bootstrap token): the userpass login
of the local operator, its policy, and one token role per operator command.

See ``identities/operators.py`` for how a command uses them.
"""

from __future__ import annotations

from pathlib import Path

import hvac
from hvac.exceptions import Forbidden, InvalidRequest

from mlsec_platform.identities.catalog import _read as read_policy_file
from mlsec_platform.identities.operators import (
    LOCAL_OPERATOR,
    LOGIN_POLICY,
    LOGIN_TTL,
    OPERATOR_COMMANDS,
    OPERATOR_POLICIES,
    USERPASS_MOUNT,
    credential_path,
)
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.secret_files import new_password, read_secret_json, write_secret


def bootstrap_operators(
    client: hvac.Client, settings: PlatformSettings, *, bind_loopback: bool
) -> Path:
    """Policies, token roles and the local operator; returns where its credential is (0600)."""
    if f"{USERPASS_MOUNT}/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("userpass", path=USERPASS_MOUNT)
    for name in OPERATOR_POLICIES:
        client.sys.create_or_update_policy(name, read_policy_file("vault", f"{name}.hcl"))
    for command in OPERATOR_COMMANDS.values():
        # allowed_policies: a token of this role holds these policies although the operator's
        # login does not; the login may only ask for the roles its policy names.
        client.write(
            f"auth/token/roles/{command.role}",
            allowed_policies=list(command.policies),
            orphan=False,
            renewable=False,
            token_no_default_policy=True,
            token_explicit_max_ttl=LOGIN_TTL,
        )
    path = credential_path(settings)
    password = _working_password(client.url, path)
    if password is None:
        # Written before OpenBao holds it: a run killed in between leaves a password that does
        # not log in, which the next run replaces; never a password nobody has.
        password = new_password()
        write_secret(path, {"username": LOCAL_OPERATOR, "password": password})
    client.auth.userpass.create_or_update_user(
        LOCAL_OPERATOR,
        password=password,
        mount_point=USERPASS_MOUNT,
        token_policies=[LOGIN_POLICY],
        token_no_default_policy=True,
        token_ttl=f"{LOGIN_TTL}s",
        token_max_ttl=f"{LOGIN_TTL}s",
        token_type="service",  # noqa: S106 - a token kind
        **({"token_bound_cidrs": ["127.0.0.1/32"]} if bind_loopback else {}),
    )
    return path


def _working_password(addr: str, path: Path) -> str | None:
    """The stored password if it still logs in (kept on re-runs), else None."""
    if not path.exists():
        return None
    credential = read_secret_json(path)
    probe = vault_client(addr, timeout=5)
    try:
        probe.auth.userpass.login(
            credential["username"], credential["password"], mount_point=USERPASS_MOUNT
        )
    except (InvalidRequest, Forbidden, KeyError):
        return None
    probe.auth.token.revoke_self()
    return credential["password"]
