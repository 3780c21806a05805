"""A data subject's tokens: the one place an erasure turns identifier values into tokens.

Today a token is transit's convergent ciphertext of the value in its domain
(``privacy/tokenization.py``), so the tokens of a value are found by asking transit to encrypt
it again, once per key version that can still decrypt (a rotation in progress leaves tables
with tokens of the version before). The `operator-erase` policy may encrypt with the
tokenization key and read its versions; it cannot decrypt or export it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

import hvac

from mlsec_platform.errors import MlsecError
from mlsec_platform.privacy.tokenization import TRANSIT_KEY


class TokenLookupFailed(MlsecError):
    """Transit did not tokenize a subject's value; nothing was erased on a guess."""

    http_status = 503


def subject_tokens(client: hvac.Client, domain: str, values: Iterable[str]) -> dict[str, set[str]]:
    """Value -> its tokens in ``domain`` (one per live key version)."""
    wanted = sorted(set(values))
    if not wanted:
        return {}
    key = client.secrets.transit.read_key(TRANSIT_KEY)["data"]
    versions = range(int(key["min_decryption_version"]), int(key["latest_version"]) + 1)
    context = base64.b64encode(domain.encode()).decode()
    found: dict[str, set[str]] = {v: set() for v in wanted}
    for version in versions:
        batch = [
            {
                "plaintext": base64.b64encode(v.encode()).decode(),
                "context": context,
                "key_version": version,
            }
            for v in wanted
        ]
        results = client.secrets.transit.encrypt_data(TRANSIT_KEY, plaintext="", batch_input=batch)[
            "data"
        ]["batch_results"]
        for value, result in zip(wanted, results, strict=True):
            if result.get("error"):
                raise TokenLookupFailed(f"transit could not tokenize a value: {result['error']}")
            found[value].add(result["ciphertext"])
    return found
