"""Reveal: tokens back to clear values, only through Vault transit, never silently.

Only a Vault token holding the ``reveal`` policy may call ``transit/decrypt/tokenization``;
no workload identity has it. Every reveal states who asks and why, and is written to the audit
log (severity high) *before* any value is returned: if the event cannot be recorded, nothing
is revealed. OpenBao's own audit device records the decrypt call as well.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence

import hvac
from hvac.exceptions import Forbidden, InvalidRequest

from mlsec_platform.errors import AccessDenied
from mlsec_platform.privacy.tokenization import TOKEN_PATTERN, TRANSIT_KEY

REVEAL_POLICY = "reveal"


class RevealDenied(AccessDenied):
    """The caller may not reveal (no `reveal` policy, no reason, or a retired key version)."""


def fingerprint(token: str) -> str:
    """A short, non-reversible reference to a token for audit records."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def reveal(
    client: hvac.Client,
    tokens: Sequence[str],
    *,
    domain: str,
    subject: str,
    reason: str,
    emit: Callable[[str, dict], object],
) -> list[str]:
    """Clear values of ``tokens`` (one domain), decrypted by Vault under the caller's token."""
    if not reason or not reason.strip():
        raise RevealDenied("a reveal needs a stated reason")
    bad = [t for t in tokens if not TOKEN_PATTERN.fullmatch(t)]
    if bad:
        raise ValueError(f"{len(bad)} values are not tokens")
    context = base64.b64encode(domain.encode()).decode()
    record = {
        "severity": "high",
        "subject": subject,
        "domain": domain,
        "reason": reason.strip(),
        "count": len(tokens),
        "fingerprints": [fingerprint(t) for t in tokens],
    }
    try:
        response = client.secrets.transit.decrypt_data(
            TRANSIT_KEY,
            ciphertext="",
            batch_input=[{"ciphertext": t, "context": context} for t in tokens],
        )
    except (Forbidden, InvalidRequest) as exc:
        emit("pii.reveal_denied", {**record, "error": type(exc).__name__})
        raise RevealDenied(
            f"reveal refused by Vault ({type(exc).__name__}): it needs the '{REVEAL_POLICY}' "
            "policy and a key version that is not retired"
        ) from None
    results = response["data"]["batch_results"]
    failed = [r.get("error") for r in results if r.get("error")]
    if failed:
        emit("pii.reveal_denied", {**record, "error": failed[0]})
        raise RevealDenied(f"reveal refused for {len(failed)} tokens: {failed[0]}")
    emit("pii.revealed", record)
    return [base64.b64decode(r["plaintext"]).decode() for r in results]
