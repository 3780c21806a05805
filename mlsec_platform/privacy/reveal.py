"""Reveal: tokens back to clear values, only through the token vault and OpenBao, never silently.

A token's value is sealed in the token vault under a data key that is stored only wrapped by
the transit key ``token-wrap`` (``privacy/tokens.py``). Only a Vault token holding the
``reveal`` policy (operators) or the ``revealer`` identity's (the broker's reveal path) may
call ``transit/decrypt/token-wrap``; no workload identity has it. Every reveal states who asks
and why, and is written to the audit log (severity high) *before* any value is returned: if
the event cannot be recorded, nothing is revealed. OpenBao's own audit device records the
unwrap as well. A token the vault does not hold (never minted, or erased) reveals nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

import hvac
import pyarrow as pa
from hvac.exceptions import Forbidden, InvalidRequest

from mlsec_platform.catalog.governance import TOKEN_PATTERN
from mlsec_platform.errors import AccessDenied, InvalidInput
from mlsec_platform.privacy.tokens import open_sealed, unwrap_data_keys

REVEAL_POLICY = "reveal"


class RevealDenied(AccessDenied):
    """The caller may not reveal (no `reveal` policy, no reason, or a retired key version)."""


class VaultEntries(Protocol):
    """What reveal reads from the token vault (``storage.token_vault.TokenVault`` does)."""

    def entries(self, domain: str, tokens: Sequence[str]) -> pa.Table: ...

    def wrapped_keys(self, domain: str, key_ids: Sequence[str]) -> dict[str, str]: ...


def fingerprint(token: str) -> str:
    """A short, non-reversible reference to a token for audit records."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def reveal(
    client: hvac.Client,
    vault: VaultEntries,
    tokens: Sequence[str],
    *,
    domain: str,
    subject: str,
    reason: str,
    emit: Callable[[str, dict], object],
) -> list[str | None]:
    """Clear values of ``tokens`` (one domain), their data keys unwrapped by OpenBao under the
    caller's token; None for a token the vault does not hold."""
    if not reason or not reason.strip():
        raise RevealDenied("a reveal needs a stated reason")
    bad = [t for t in tokens if not TOKEN_PATTERN.fullmatch(t)]
    if bad:
        raise InvalidInput(f"{len(bad)} values are not tokens (tok_ and 22 characters)")
    record = {
        "severity": "high",
        "subject": subject,
        "domain": domain,
        "reason": reason.strip(),
        "count": len(tokens),
        "fingerprints": [fingerprint(t) for t in tokens],
    }
    rows = vault.entries(domain, tokens)
    held = dict(zip(rows.column("token").to_pylist(), range(rows.num_rows), strict=True))
    key_ids = rows.column("key_id").to_pylist()
    try:
        keys = unwrap_data_keys(client, vault.wrapped_keys(domain, sorted(set(key_ids))))
    except (Forbidden, InvalidRequest, PermissionError) as exc:
        emit("pii.reveal_denied", {**record, "error": type(exc).__name__})
        raise RevealDenied(
            f"reveal refused by Vault ({type(exc).__name__}): it needs the '{REVEAL_POLICY}' "
            "policy and data keys wrapped by a key version that is not retired"
        ) from None
    sealed = rows.column("ciphertext").to_pylist()
    values = [
        open_sealed(keys[key_ids[held[t]]], domain, t, sealed[held[t]]) if t in held else None
        for t in tokens
    ]
    emit("pii.revealed", {**record, "unknown": sum(v is None for v in values)})
    return values
