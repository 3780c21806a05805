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


def _encrypt_range(key: DomainKey, data: bytes, offsets: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Tokens of values ``data[offsets[i]:offsets[i+1]]``, concatenated, with their lengths."""
    padded = key.nonce_key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    seal = AESGCM(key.aes_key).encrypt
    b64 = binascii.b2a_base64
    prefix = f"vault:v{key.version}:".encode()
    out: list[bytes] = []
    append = out.append
    view = memoryview(data)
    bounds = offsets.tolist()
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        value = view[start:end].tobytes()
        h = inner.copy()
        h.update(value)
        o = outer.copy()
        o.update(h.digest())
        nonce = o.digest()[:12]  # HMAC-SHA256(nonce key, value), as transit's convergent v3
        append(prefix + b64(nonce + seal(nonce, value, None), newline=False))
    lengths = np.fromiter((len(t) for t in out), dtype=np.int64, count=len(out))
    return b"".join(out), lengths


_WORK: tuple[DomainKey, bytes, np.ndarray] | None = None


def _worker(bounds: tuple[int, int]) -> tuple[bytes, np.ndarray]:
    assert _WORK is not None
    key, data, offsets = _WORK
    start, end = bounds
    base = int(offsets[start])
    return _encrypt_range(key, data[base : int(offsets[end])], offsets[start : end + 1] - base)


def _string_buffers(values: pa.Array) -> tuple[bytes, np.ndarray]:
    values = values.cast(pa.large_string())
    _, offsets_buf, data_buf = values.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    data = data_buf.to_pybytes() if data_buf is not None else b""
    return data, offsets


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
        """Tokens of non-null, distinct ``values`` (same order)."""
        key = self.domain_key(domain)
        data, offsets = _string_buffers(values)
        n = len(values)
        if n < PARALLEL_THRESHOLD or self.workers < 2:
            parts = [_encrypt_range(key, data, offsets - offsets[0])]
        else:
            global _WORK
            _WORK = (key, data, offsets - offsets[0])
            try:
                step = -(-n // (self.workers * 4))
                ranges = [(i, min(i + step, n)) for i in range(0, n, step)]
                with ProcessPoolExecutor(self.workers, mp_context=get_context("fork")) as pool:
                    parts = list(pool.map(_worker, ranges))
            finally:
                _WORK = None
        blob = b"".join(p[0] for p in parts)
        lengths = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        out_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return pa.LargeStringArray.from_buffers(
            n, pa.py_buffer(out_offsets.tobytes()), pa.py_buffer(blob)
        ).cast(pa.string())

    def tokenize(self, values: pa.Array | pa.ChunkedArray, domain: str) -> pa.Array:
        """Token per value (null stays null); each distinct value is encrypted once."""
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        encoded = pc.dictionary_encode(values.cast(pa.string()))
        tokens = self.tokenize_distinct(encoded.dictionary, domain)
        return tokens.take(encoded.indices)

    def tokenize_many(self, columns: dict[str, pa.Array], domain: str) -> dict[str, pa.Array]:
        """Several columns of one domain, sharing one pass over their distinct values."""
        chunks = [
            c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns.values()
        ]
        everything = pa.concat_arrays([c.cast(pa.string()) for c in chunks])
        tokens = self.tokenize(everything, domain)
        out, start = {}, 0
        for name, column in zip(columns, chunks, strict=True):
            out[name] = tokens.slice(start, len(column))
            start += len(column)
        return out
