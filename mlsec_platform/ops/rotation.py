"""Rotating the token vault's transit keys: tokens and sealed values stay, wrapped keys move on.

1. OpenBao rotates ``token-wrap`` and ``token-index`` (a new version each).
2. Every domain's data keys are rewrapped (``transit/rewrap/token-wrap``: OpenBao opens and
   re-seals them inside, nobody sees them) and written back in one commit of the domain's
   ``keys`` table, under the domain's mint lock; the wrapped index key likewise
   (``transit/rewrap/token-index``, in OpenBao KV).
3. Every stored wrapped key is checked to be of the new version; only then are the old
   versions retired (``min_decryption_version``): what older Delta versions of the ``keys``
   tables or any other copy still hold opens nothing any more.

Tokens do not change, so no curated table is rewritten: joins, the warehouse, the features and
reveals go on as before. The operator's `rotate-token-keys` token rotates, rewraps and
configures those two keys and rewrites the wrapped index key (it unwraps nothing); the keys
tables are written with the pipeline's S3 keys, the only identity that writes the vault. If a
step fails nothing is retired, and `--resume` rewraps again (rewrapping is idempotent) and
retires, without rotating again. Each step is an audit event with the operator as actor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import hvac

from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.ops.operator import operator_command
from mlsec_platform.ops.refusals import ActionFailed
from mlsec_platform.privacy.tokens import INDEX_KEY, INDEX_KEY_PATH, WRAP_KEY
from mlsec_platform.settings import PlatformSettings

#: Wrapped keys per rewrap call.
REWRAP_BATCH = 500


class RotationError(ActionFailed, RuntimeError):
    """A rewrap did not complete; the old key versions stay active."""


@dataclass
class RotationReport:
    #: transit key -> (version before, version after)
    versions: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: token domain -> data keys rewrapped
    rewrapped: dict[str, int] = field(default_factory=dict)


def token_domains() -> list[str]:
    """Every token domain the catalog names (each has its own vault)."""
    return sorted({c.token_domain for s in CATALOG.values() for c in s.columns if c.token_domain})


def rewrapper(client: hvac.Client, key: str) -> Callable[[list[str]], list[str]]:
    """Wrapped values -> the same values wrapped by the latest version of transit ``key``."""

    def rewrap(wrapped: list[str]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(wrapped), REWRAP_BATCH):
            batch = [{"ciphertext": w} for w in wrapped[start : start + REWRAP_BATCH]]
            done = client.secrets.transit.rewrap_data(key, ciphertext="", batch_input=batch)
            results = done["data"]["batch_results"]
            failed = [r["error"] for r in results if r.get("error")]
            if failed:
                raise RotationError(f"OpenBao did not rewrap {len(failed)} keys: {failed[0]}")
            out += [r["ciphertext"] for r in results]
        return out

    return rewrap


def rotate_token_keys(
    settings: PlatformSettings, echo: Callable[[str], None] = print, *, resume: bool = False
) -> RotationReport:
    from mlsec_platform.defs.resources import build_resources

    report = RotationReport()
    with operator_command(settings, "rotate-token-keys") as session:
        client, audit = session.vault, session.audit
        for name in (WRAP_KEY, INDEX_KEY):
            before = client.secrets.transit.read_key(name)["data"]["latest_version"]
            if not resume:
                client.secrets.transit.rotate_key(name)
            after = client.secrets.transit.read_key(name)["data"]["latest_version"]
            report.versions[name] = (before, after)
            if not resume:
                audit.emit("tokens.key_rotated", {"key": name, "from": before, "to": after})
                echo(f"{name}: v{before} -> v{after}")

        resources = build_resources(settings)
        try:
            vault = resources["token_vault"].for_batch()
            for domain in token_domains():
                report.rewrapped[domain] = vault.rewrap(domain, rewrapper(client, WRAP_KEY))
                stale = _stale(vault.wrapped_keys(domain).values(), report.versions[WRAP_KEY][1])
                if stale:
                    raise RotationError(f"{domain}: {stale} data keys are still of old versions")
        finally:
            resources["lake_pipeline"].vault.revoke()
            resources["audit_pipeline"].close()
        stored = client.secrets.kv.v2.read_secret_version(
            INDEX_KEY_PATH, mount_point="mlsec", raise_on_deleted_version=True
        )["data"]["data"]
        (wrapped,) = rewrapper(client, INDEX_KEY)([stored["wrapped"]])
        client.secrets.kv.v2.create_or_update_secret(
            INDEX_KEY_PATH, secret={"wrapped": wrapped}, mount_point="mlsec"
        )
        audit.emit("tokens.keys_rewrapped", {"data_keys": report.rewrapped, "index_key": 1})
        echo(f"Rewrapped: {sum(report.rewrapped.values())} data keys and the index key")

        for name, (_, latest) in report.versions.items():
            # Below min_decryption_version nothing decrypts: old wrapped copies are dead now.
            client.secrets.transit.update_key_configuration(name, min_decryption_version=latest)
        retired = [{"key": k, "retired_below": v[1]} for k, v in report.versions.items()]
        audit.emit("tokens.key_retired", {"keys": retired})
        echo("Old versions retired; tokens unchanged")
    return report


def _stale(wrapped: Iterable[str], version: int) -> int:
    return sum(1 for w in wrapped if not w.startswith(f"vault:v{version}:"))
