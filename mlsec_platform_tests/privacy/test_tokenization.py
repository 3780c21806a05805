"""Tokens are transit's convergent ciphertexts, whichever path computes them (one process or
forked workers, one column or several). Byte equality with OpenBao itself is checked in
``identities/test_vault_policies.py``; here against a plain reimplementation of the scheme."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random

import pyarrow as pa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mlsec_platform.privacy.tokenization import PARALLEL_THRESHOLD, DomainKey, Tokenizer

BASE_KEY = bytes(range(32))


def reference_token(key: DomainKey, value: str) -> str:
    """Transit convergent encryption of one value, written out plainly."""
    data = value.encode()
    nonce = hmac.new(key.nonce_key, data, hashlib.sha256).digest()[:12]
    sealed = nonce + AESGCM(key.aes_key).encrypt(nonce, data, None)
    return f"vault:v{key.version}:" + base64.b64encode(sealed).decode()


def _values(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789.-@ çãéÕ"
    return [
        f"{i}-" + "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        for i in range(n)
    ]


def test_tokens_match_the_scheme_for_every_length():
    tokenizer = Tokenizer(BASE_KEY, 3, workers=1)
    values = ["", "a", "ab", "abc", *_values(2_000)]  # every value length mod 3, and unicode
    tokens = tokenizer.tokenize_distinct(pa.array(values), "customers").to_pylist()
    key = tokenizer.domain_key("customers")
    assert tokens == [reference_token(key, v) for v in values]


def test_worker_processes_give_the_same_tokens_as_one_process():
    values = pa.array(_values(PARALLEL_THRESHOLD + 1_000))
    forked = Tokenizer(BASE_KEY, 1, workers=2).tokenize_distinct(values, "customers")
    single = Tokenizer(BASE_KEY, 1, workers=1).tokenize_distinct(values, "customers")
    assert forked.equals(single)
    key = DomainKey.derive(BASE_KEY, 1, "customers")
    for i in (0, 1, PARALLEL_THRESHOLD // 2, len(values) - 1):
        assert forked[i].as_py() == reference_token(key, values[i].as_py())


def test_columns_share_tokens_keep_nulls_and_slices_read_their_own_bytes():
    tokenizer = Tokenizer(BASE_KEY, 2, workers=1)
    names = pa.chunked_array([["ana", None, "bia"], ["ana"]])
    emails = pa.array(["x", "ana", "bia", "zed", None]).slice(1, 3)  # offset into the buffers
    out = tokenizer.tokenize_many({"name": names, "email": emails}, "customers")
    key = tokenizer.domain_key("customers")
    ana, bia = reference_token(key, "ana"), reference_token(key, "bia")
    assert out["name"].to_pylist() == [ana, None, bia, ana]
    assert out["email"].to_pylist() == [ana, bia, reference_token(key, "zed")]
    other_domain = Tokenizer(BASE_KEY, 2, workers=1).tokenize(pa.array(["ana"]), "sellers")
    assert other_domain[0].as_py() != ana
