"""The token vault's crypto (``privacy/tokens.py``) against plain reimplementations of it."""

from __future__ import annotations

import hashlib
import hmac
import os
import random

import numpy as np
import pyarrow as pa
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mlsec_platform.catalog.governance import TOKEN_PATTERN
from mlsec_platform.privacy.tokens import (
    PARALLEL_THRESHOLD,
    SEAL_PART,
    SEALED_OVERHEAD,
    DataKey,
    IndexKey,
    new_tokens,
    open_sealed,
    seal,
    sealing,
    token_array,
)

KEY = bytes(range(32))


def _values(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789.-@ çãéÕ"
    return [
        f"{i}-" + "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        for i in range(n)
    ]


def test_the_index_is_hmac_sha256_of_domain_nul_value():
    values = ["", "a", "João", *_values(500)]
    digests = IndexKey(KEY).digests("customers", pa.array(values))
    for value, digest in zip(values, digests, strict=True):
        expected = hmac.new(KEY, b"customers\0" + value.encode(), hashlib.sha256).digest()
        assert bytes(digest) == expected
    other = IndexKey(KEY).digests("sellers", pa.array(values[:3]))
    assert not np.array_equal(other, digests[:3])  # domains never share an index


def test_worker_processes_give_the_same_index_and_sealing_as_one_process():
    values = pa.array(_values(PARALLEL_THRESHOLD + 1_000))
    key = IndexKey(KEY)
    assert np.array_equal(key.digests("c", values, 2), key.digests("c", values, 1))
    tokens, _ = new_tokens(len(values))
    data_key = DataKey("k1", "vault:v1:x", os.urandom(32))
    forked = seal(data_key, "c", values, tokens, workers=2)
    single = seal(data_key, "c", values, tokens, workers=1)
    assert forked.equals(single)
    for i in (0, PARALLEL_THRESHOLD // 2, len(values) - 1):
        token = bytes(tokens[i]).decode()
        assert open_sealed(data_key.plaintext, "c", token, forked[i].as_py()) == values[i].as_py()


@pytest.mark.parametrize("workers", [1, 2])
def test_sealing_hands_over_in_order_parts_that_are_the_sealed_batch(workers):
    n = 2 * SEAL_PART + 1_000 if workers > 1 else 1_000
    values = pa.array(_values(n))
    tokens, _ = new_tokens(n)
    data_key = DataKey("k1", "vault:v1:x", os.urandom(32))
    with sealing(data_key, "c", values, tokens, workers) as parts:
        handed = list(parts)
    bounds = [(a, b) for a, b, _ in handed]
    assert bounds[0][0] == 0 and bounds[-1][1] == n  # every value, once, in order
    assert all(b == a2 for (_, b), (a2, _) in zip(bounds, bounds[1:], strict=False))
    assert all(b - a <= SEAL_PART for a, b in bounds)
    assert (len(handed) > 1) == (workers > 1)  # one process seals the batch as one part
    joined = pa.concat_arrays([sealed for _, _, sealed in handed])
    assert joined.equals(seal(data_key, "c", values, tokens, workers=1))


def test_leaving_sealing_early_stops_its_workers():
    n = 4 * SEAL_PART
    values, (tokens, _) = pa.array(_values(n)), new_tokens(n)
    data_key = DataKey("k1", "vault:v1:x", os.urandom(32))
    with pytest.raises(RuntimeError), sealing(data_key, "c", values, tokens, 2) as parts:
        next(parts)
        raise RuntimeError("the writer failed")
    # A second batch seals as usual after it: nothing of the first was left behind.
    with sealing(data_key, "c", values.slice(0, 10), tokens[:10], 2) as parts:
        assert [(a, b) for a, b, _ in parts] == [(0, 10)]


def test_tokens_are_random_well_formed_distinct_and_sortable():
    tokens, order = new_tokens(50_000)
    texts = token_array(tokens).to_pylist()
    assert all(TOKEN_PATTERN.fullmatch(t) for t in texts)
    assert len(set(texts)) == len(texts)
    assert token_array(tokens[order]).to_pylist() == sorted(texts)
    again, _ = new_tokens(50_000)
    assert set(token_array(again).to_pylist()).isdisjoint(texts)
    # Every character of the alphabet turns up in every position: no position is fixed.
    chars = tokens[:, 4:]
    assert all(len(np.unique(chars[:, i])) == 64 for i in range(chars.shape[1]))


def test_a_sealed_value_opens_only_for_its_token_domain_and_key():
    values = pa.array(["ana@example.com", "", "123.456.789-09"])
    tokens, _ = new_tokens(3)
    key = DataKey("k1", "vault:v1:x", os.urandom(32))
    sealed = seal(key, "customers", values, tokens)
    texts = token_array(tokens).to_pylist()
    for i, value in enumerate(values.to_pylist()):
        blob = sealed[i].as_py()
        assert len(blob) == len(value.encode()) + SEALED_OVERHEAD
        nonce, body = blob[:12], blob[12:]
        aad = b"customers\0" + texts[i].encode()
        assert AESGCM(key.plaintext).decrypt(nonce, body, aad).decode() == value
        assert open_sealed(key.plaintext, "customers", texts[i], blob) == value
    with pytest.raises(ValueError, match="does not open"):
        open_sealed(key.plaintext, "customers", texts[1], sealed[0].as_py())  # another token
    with pytest.raises(ValueError, match="does not open"):
        open_sealed(key.plaintext, "sellers", texts[0], sealed[0].as_py())
    with pytest.raises(ValueError, match="does not open"):
        open_sealed(os.urandom(32), "customers", texts[0], sealed[0].as_py())
    nonces = {sealed[i].as_py()[:12] for i in range(3)}
    assert len(nonces) == 3  # one data key, never one nonce twice


def test_keys_never_show_in_reprs():
    key = DataKey("k1", "vault:v1:wrapped", b"s" * 32)
    assert "sss" not in repr(key) and "k1" in repr(key)
    assert "\\x00" not in repr(IndexKey(KEY)) and "0, 1" not in repr(IndexKey(KEY))
