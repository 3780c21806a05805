"""An operator turns tokens back into clear values: audited as the operator, at high severity.

The reveal runs under the operator's `reveal` command token: it reads the token vault with the
revealer's read-only S3 keys and unwraps the vault's data keys through
``transit/decrypt/token-wrap`` (and has its audit login), nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlsec_platform.ops.operator import operator_command
from mlsec_platform.ops.refusals import ActionFailed
from mlsec_platform.privacy.reveal import reveal
from mlsec_platform.resources.s3_lake import S3Credentials, lake_storage_options
from mlsec_platform.settings import PlatformSettings, Zone
from mlsec_platform.storage.token_vault import TokenVault

#: Whose S3 keys the operator's `reveal` token may read: the read-only vault reader's.
VAULT_READER = "revealer"


class TokensUnknown(ActionFailed):
    """Some tokens are not in the vault: never minted there, or erased."""


def reveal_as_operator(
    settings: PlatformSettings,
    tokens: Sequence[str],
    domain: str,
    reason: str,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """The clear values of ``tokens``, one line each (``RevealDenied``, audited, if refused)."""
    with operator_command(settings, "reveal") as session:
        keys = session.vault.secrets.kv.v2.read_secret_version(
            f"s3/{VAULT_READER}", mount_point="mlsec", raise_on_deleted_version=True
        )["data"]["data"]
        creds = S3Credentials(keys["access_key_id"], keys["secret_access_key"])
        options = lake_storage_options(settings.endpoints().s3_endpoint, settings.s3_region, creds)
        vault = TokenVault(f"s3://{settings.bucket(Zone.TOKENS)}", lambda: options)
        values = reveal(
            session.vault,
            vault,
            tokens,
            domain=domain,
            subject=session.actor,
            reason=reason,
            emit=session.audit.emit,
        )
    unknown = sum(v is None for v in values)
    if unknown:
        raise TokensUnknown(
            f"{unknown} of {len(values)} tokens are not in the {domain} token vault (never "
            "minted there, or erased); nothing was revealed"
        )
    for value in values:
        echo(value)
    return values
