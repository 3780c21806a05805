"""Deterministic, Vault-reversible tokens for direct identifiers.

A token is exactly the ciphertext OpenBao/Vault transit's convergent encryption produces for
the value under the ``tokenization`` key, with the data domain (``customers``, ...) as the
derivation context: ``vault:v<version>:base64(nonce || AES-256-GCM(value))``. So

* the same value gives the same token in every table and run of a domain (convergent: the
  nonce is an HMAC of the value), and joins on tokens work;
* a token turns back into its value only through ``transit/decrypt/tokenization``, which only
  the ``reveal`` policy grants (audited by OpenBao and by the platform);
* rotating the key makes new tokens ``vault:v<n+1>:...``; retiring a version
  (``min_decryption_version``) makes its tokens irreversible.

Why tokens are computed here, not by calling transit for every value (measured 2026-11 on the
2-core machines, OpenBao 2.7, batches of 1k-20k values):

    transit batch encrypt, one connection     29-31k values/s
    transit batch encrypt, two connections    50k values/s (the server is CPU-bound)
    this module, one process                  ~470k values/s (2.1 us a value)

1M orders carry about 5.4M distinct identifier values (person id, name, CPF, e-mail, phone,
address): ~110 s through transit, more than the whole pipeline's budget, against ~6 s here on
two processes. So the pipeline identity reads the current key version once per run through
``transit/export/encryption-key/tokenization`` (an audited read its policy allows; the key is
held in memory only and never written), derives the domain key the way transit does
(HKDF-SHA256: 32 bytes AES key, 32 bytes nonce HMAC key) and encrypts only the distinct values
of each column (a per-call cache: the dictionary of the column). A test checks the tokens are
byte-identical to what transit returns and that transit decrypts them.

The pipeline already reads Raw in clear, so holding the key adds nothing to what it can see;
readers of Silver, Gold and features (the broker, people) never hold it.
"""

from __future__ import annotations

import binascii
import hashlib
import mmap
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TRANSIT_KEY = "tokenization"
#: The derivation context of customer identifiers: one domain, so the same person has the same
#: token in every table (and only tokens of one domain can be joined).
TOKEN_DOMAIN = "customers"  # noqa: S105 - a transit derivation context, not a secret
TOKEN_PATTERN = re.compile(r"vault:v\d+:[A-Za-z0-9+/=]+")
#: Below this many distinct values one process is faster than starting workers.
PARALLEL_THRESHOLD = 200_000


@dataclass(frozen=True)
class DomainKey:
    """Transit's convergent key material for one derivation context (domain)."""

    version: int
    aes_key: bytes = field(repr=False)
    nonce_key: bytes = field(repr=False)

    @classmethod
    def derive(cls, base_key: bytes, version: int, domain: str) -> DomainKey:
        material = HKDF(hashes.SHA256(), 64, salt=None, info=domain.encode()).derive(base_key)
        return cls(version, material[:32], material[32:])


def token_lengths(value_lengths: np.ndarray, version: int) -> np.ndarray:
    """Length of each value's token: ``vault:v<n>:`` + base64(12-byte nonce, value, 16-byte tag)."""
    prefix = len(f"vault:v{version}:")
    return prefix + 4 * ((value_lengths + 12 + 16 + 2) // 3)


def _encrypt_into(
    key: DomainKey,
    data: bytes,
    offsets: np.ndarray,
    out: mmap.mmap | bytearray,
    out_offsets: np.ndarray,
    start: int,
    end: int,
) -> None:
    """Write the tokens of values ``start..end`` at their precomputed places in ``out``."""
    padded = key.nonce_key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    seal = AESGCM(key.aes_key).encrypt
    b64 = binascii.b2a_base64
    prefix = f"vault:v{key.version}:".encode()
    view = memoryview(data)
    bounds = offsets[start : end + 1].tolist()
    places = out_offsets[start : end + 1].tolist()
    for i in range(end - start):
        value = view[bounds[i] : bounds[i + 1]].tobytes()
        h = inner.copy()
        h.update(value)
        o = outer.copy()
        o.update(h.digest())
        nonce = o.digest()[:12]  # HMAC-SHA256(nonce key, value), as transit's convergent v3
        out[places[i] : places[i + 1]] = prefix + b64(
            nonce + seal(nonce, value, None), newline=False
        )


_WORK: tuple | None = None


def _worker(bounds: tuple[int, int]) -> None:
    assert _WORK is not None
    _encrypt_into(*_WORK, *bounds)


def _string_buffers(values: pa.Array) -> tuple[bytes, np.ndarray]:
    values = values.cast(pa.large_string())
    _, offsets_buf, data_buf = values.buffers()
    start, stop = values.offset, values.offset + len(values) + 1
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[start:stop]
    data = data_buf.to_pybytes() if data_buf is not None else b""
    return data, offsets - offsets[0]


class Tokenizer:
    """Tokens for one key version; ``workers`` processes for large columns."""

    def __init__(self, base_key: bytes, version: int, *, workers: int | None = None) -> None:
        self._base_key = base_key
        self.version = version
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._domains: dict[str, DomainKey] = {}

    def __repr__(self) -> str:
        return f"Tokenizer(key={TRANSIT_KEY!r}, version={self.version})"

    def domain_key(self, domain: str) -> DomainKey:
        if domain not in self._domains:
            self._domains[domain] = DomainKey.derive(self._base_key, self.version, domain)
        return self._domains[domain]

    def tokenize_distinct(self, values: pa.Array, domain: str) -> pa.Array:
        """Tokens of non-null, distinct ``values`` (same order).

        Token lengths follow from value lengths, so every token's place in the output is known
        up front: worker processes (forked, sharing memory) write them there directly.
        """
        key = self.domain_key(domain)
        data, offsets = _string_buffers(values)
        n = len(values)
        out_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(token_lengths(np.diff(offsets), self.version), out=out_offsets[1:])
        size = int(out_offsets[-1])
        if n < PARALLEL_THRESHOLD or self.workers < 2:
            out: mmap.mmap | bytearray = bytearray(size)
            _encrypt_into(key, data, offsets, out, out_offsets, 0, n)
        else:
            global _WORK
            out = mmap.mmap(-1, max(size, 1))  # anonymous and shared with forked workers
            _WORK = (key, data, offsets, out, out_offsets)
            try:
                step = -(-n // (self.workers * 4))
                ranges = [(i, min(i + step, n)) for i in range(0, n, step)]
                with ProcessPoolExecutor(self.workers, mp_context=get_context("fork")) as pool:
                    list(pool.map(_worker, ranges))
            finally:
                _WORK = None
        return pa.LargeStringArray.from_buffers(
            n, pa.py_buffer(out_offsets.tobytes()), pa.py_buffer(bytes(out[:size]))
        ).cast(pa.string())

    def tokenize(self, values: pa.Array | pa.ChunkedArray, domain: str) -> pa.Array:
        """Token per value (null stays null); each distinct value is encrypted once."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        encoded = pc.dictionary_encode(values.cast(pa.string()))
        tokens = self.tokenize_distinct(encoded.dictionary, domain)
        return tokens.take(encoded.indices)

    def tokenize_many(self, columns: dict[str, pa.Array], domain: str) -> dict[str, pa.Array]:
        """Several columns of one domain: each column's distinct values, encrypted in one pass."""
        encoded = {}
        for name, column in columns.items():
            values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
            encoded[name] = pc.dictionary_encode(values.cast(pa.string()))
        distinct = pa.concat_arrays([e.dictionary for e in encoded.values()])
        tokens = self.tokenize_distinct(distinct, domain)
        out, start = {}, 0
        for name, e in encoded.items():
            out[name] = tokens.slice(start, len(e.dictionary)).take(e.indices)
            start += len(e.dictionary)
        return out
