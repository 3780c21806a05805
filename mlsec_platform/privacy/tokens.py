"""Tokens no workload can reverse: random surrogates, a keyed index, values sealed under
envelope encryption. The token vault (``storage/token_vault.py``) stores what this computes.

Per data domain (``customers``, ...) the vault maps

    index      = HMAC-SHA256(index key, domain || 0x00 || value)     32 bytes
    token      = "tok_" + 22 random characters of [-0-9A-Z_a-z]    132 random bits
    ciphertext = nonce || AES-256-GCM(data key, value, aad = domain || 0x00 || token)
    key_id     -> the data key, stored only wrapped by the transit key ``token-wrap``

* A token says nothing about its value: it is random, not derived. The same value keeps its
  token in every table and run because minting looks the index up first (under a per-domain
  lock, so two runs minting the same new value get one token), so joins hold.
* Only whoever may call ``transit/decrypt/token-wrap`` (the ``revealer`` identity and the
  operator's ``reveal`` policy) can unwrap a data key and so turn a token back into its value.
  No workload can: the pipeline gets a fresh data key per batch from
  ``transit/datakey/plaintext/token-wrap`` (the plaintext used in memory for that batch only,
  the wrapped form stored), and ``token-wrap`` is not exportable.
* The index key lets the pipeline find a value's token. It is 32 random bytes that transit
  made (``transit/datakey/wrapped/token-index``) and that are stored only wrapped, in OpenBao
  KV (:data:`INDEX_KEY_PATH`); the pipeline unwraps it once per batch through
  ``transit/decrypt/token-index``. Nothing else is ever encrypted under ``token-index``, so
  that decrypt right yields the index key and nothing more, and the index key can only say
  "this value has that token" for a value one already holds in clear (the pipeline reads Raw
  in clear anyway). It cannot decrypt anything.
* Rotation rewraps (``transit/rewrap``): the wrapped data keys and the wrapped index key get
  the new key version, tokens and ciphertexts stay, old versions are retired.
* Erasure deletes the subject's rows from the vault: the tokens then resolve to nothing.

Why the index key is unwrapped and used here rather than transit's ``hmac`` endpoint called
for every value (``bench/token_vault.py``, 2026-12, 2-core machine shared with other work,
OpenBao 2.7, 200,000 values in batches of 10,000): a run must look up every distinct
identifier value it tokenizes, 4.7-5.4M per 1M orders.

    transit/hmac/token-index, one connection        47,384 values/s
    transit/hmac/token-index, two connections       51,689 values/s (the server is CPU-bound)
    HMAC here, index key unwrapped once per batch   976,006 values/s, one process (~1.0 us)
    AES-256-GCM seal of a new value here            ~1.0-1.4 us a value, one process

Through transit the index alone would take ~105 s of a run whose whole budget is 120 s; here
~5 s of CPU, spread over both cores (forked workers write into shared memory). The price is
that the pipeline holds the index key for one batch; what that key can do is said above.
Each mint's rows are written sorted by token (tokens are cut so that their first characters
order them), so a reveal reads only the Parquet row groups its tokens fall in.
"""

from __future__ import annotations

import base64
import hashlib
import mmap
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Protocol

import hvac
import numpy as np
import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: Transit keys: data keys are wrapped by the first, the index key by the second.
WRAP_KEY = "token-wrap"
INDEX_KEY = "token-index"
#: OpenBao KV (mount ``mlsec``) path of the wrapped index key.
INDEX_KEY_PATH = "tokens/index-key"

TOKEN_PREFIX = "tok_"  # noqa: S105 - not a secret
TOKEN_CHARS = 22
TOKEN_LENGTH = len(TOKEN_PREFIX) + TOKEN_CHARS
#: 64 URL-safe characters in byte order, so a token's characters sort as its random digits.
ALPHABET = b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
INDEX_BYTES = 32
NONCE_BYTES = 12
#: Bytes a sealed value has beyond the value: the nonce before it, the GCM tag after it.
SEALED_OVERHEAD = NONCE_BYTES + 16
#: Below this many values one process is faster than starting workers.
PARALLEL_THRESHOLD = 200_000
#: Values a sealing worker takes at a time when a mint streams its entries to the writer: small
#: enough that the writer's first part is ready early and the last one leaves little to wait
#: for, large enough that handing parts over costs nothing (4.7M values: 36 parts).
SEAL_PART = 131_072

_CHARACTER_OF_BYTE = bytes(ALPHABET[b & 63] for b in range(256))


class Tokenizer(Protocol):
    """What de-identification needs: tokens for several columns of one domain at once."""

    def tokenize_many(
        self, columns: dict[str, pa.Array | pa.ChunkedArray], domain: str
    ) -> dict[str, pa.Array]: ...


def domain_prefix(domain: str) -> bytes:
    """What goes before each value in the index and in the AAD: the domain and a NUL."""
    return domain.encode() + b"\0"


@dataclass(frozen=True, repr=False)
class IndexKey:
    """The key of the vault's index, unwrapped for one batch."""

    key: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "IndexKey(<held for one batch>)"

    def digests(self, domain: str, values: pa.Array, workers: int = 1) -> np.ndarray:
        """``(n, 32)`` bytes: HMAC-SHA256(key, domain || NUL || value) of each (non-null) value."""
        data, offsets = string_buffers(values)
        n = len(offsets) - 1
        out = mmap.mmap(-1, max(n * INDEX_BYTES, 1))
        prefix = domain_prefix(domain)
        _run_ranges(lambda a, b: _hmac_into(self.key, prefix, data, offsets, out, a, b), n, workers)
        return np.frombuffer(out, dtype=np.uint8, count=n * INDEX_BYTES).reshape(n, INDEX_BYTES)


@dataclass(frozen=True, repr=False)
class DataKey:
    """A fresh data key of one mint: the plaintext for this batch, the wrapped form to store."""

    key_id: str
    wrapped: str
    plaintext: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id!r})"


class VaultCalls(Protocol):
    """The two OpenBao calls minting needs (``resources.vault.VaultResource`` has them)."""

    def read_kv(self, path: str) -> dict: ...

    def write(self, path: str, **data: object) -> dict: ...


def fetch_index_key(vault: VaultCalls) -> IndexKey:
    """The index key, unwrapped by transit (``transit/decrypt/token-index``) for one batch."""
    wrapped = vault.read_kv(INDEX_KEY_PATH)["wrapped"]
    plaintext = vault.write(f"transit/decrypt/{INDEX_KEY}", ciphertext=wrapped)["plaintext"]
    return IndexKey(base64.b64decode(plaintext))


def new_data_key(vault: VaultCalls) -> DataKey:
    """A fresh data key from ``transit/datakey/plaintext/token-wrap``."""
    made = vault.write(f"transit/datakey/plaintext/{WRAP_KEY}")
    return DataKey(os.urandom(16).hex(), made["ciphertext"], base64.b64decode(made["plaintext"]))


def unwrap_data_keys(client: hvac.Client, wrapped: dict[str, str]) -> dict[str, bytes]:
    """key_id -> plaintext data key, unwrapped by ``transit/decrypt/token-wrap`` (one call)."""
    ids = sorted(wrapped)
    if not ids:
        return {}
    response = client.secrets.transit.decrypt_data(
        WRAP_KEY, ciphertext="", batch_input=[{"ciphertext": wrapped[i]} for i in ids]
    )
    results = response["data"]["batch_results"]
    failed = [r["error"] for r in results if r.get("error")]
    if failed:
        raise PermissionError(f"{len(failed)} data keys did not unwrap: {failed[0]}")
    return {i: base64.b64decode(r["plaintext"]) for i, r in zip(ids, results, strict=True)}


# -- tokens -----------------------------------------------------------------------------------


def new_tokens(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fresh tokens as an ``(n, 26)`` byte matrix, and the order that sorts them.

    Each character is 6 uniformly random bits (the low 6 bits of a random byte from the
    operating system), 132 bits in all: a collision is as likely as guessing a 128-bit key.
    """
    tokens = np.empty((n, TOKEN_LENGTH), dtype=np.uint8)
    tokens[:, : len(TOKEN_PREFIX)] = np.frombuffer(TOKEN_PREFIX.encode(), dtype=np.uint8)
    chars = os.urandom(n * TOKEN_CHARS).translate(_CHARACTER_OF_BYTE)
    tokens[:, len(TOKEN_PREFIX) :] = np.frombuffer(chars, dtype=np.uint8).reshape(n, TOKEN_CHARS)
    # The alphabet is in byte order, so the first 8 characters (48 random bits) order the
    # tokens but for a few ties, which only cost a reveal one more row group.
    head = tokens[:, len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 8].copy().view(">u8").ravel()
    return tokens, np.argsort(head)


def token_array(tokens: np.ndarray) -> pa.Array:
    """An Arrow string array of an ``(n, 26)`` token matrix (no copy of the characters)."""
    n = len(tokens)
    offsets = np.arange(0, TOKEN_LENGTH * (n + 1), TOKEN_LENGTH, dtype=np.int32)
    data = np.ascontiguousarray(tokens).reshape(-1)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


# -- sealing ----------------------------------------------------------------------------------


def seal(
    key: DataKey,
    domain: str,
    values: pa.Array,
    tokens: np.ndarray,
    workers: int = 1,
    first_nonce: int = 0,
) -> pa.Array:
    """Binary ciphertexts of ``values`` (one each, same order) under ``key``, each bound to its
    token. Nonces count up from ``first_nonce``: a data key seals one batch only, and a batch
    sealed in chunks starts each chunk where the previous one ended."""
    job, n, sealed = _sealing_job(key, domain, values, tokens, first_nonce)
    _run_ranges(job, n, workers)
    return sealed


@contextmanager
def sealing(
    key: DataKey, domain: str, values: pa.Array, tokens: np.ndarray, workers: int = 1
) -> Iterator[Iterator[tuple[int, int, pa.Array]]]:
    """What :func:`seal` makes, handed over a part at a time: ``(start, end, ciphertexts of
    values[start:end])`` in order, each as soon as the workers have sealed it.

    Every part is given to the workers on entry (forked here, before the caller starts
    anything else), so while the caller writes one part the workers seal the next: a mint's
    sealing overlaps its upload (``TokenVault._mint``), where one after the other left a core
    idle during each. Leaving the block stops the workers, sealed or not."""
    job, n, sealed = _sealing_job(key, domain, values, tokens, 0)
    with _ranges_in_order(job, n, workers, SEAL_PART) as ranges:
        yield ((a, b, sealed.slice(a, b - a)) for a, b in ranges)


def _sealing_job(
    key: DataKey, domain: str, values: pa.Array, tokens: np.ndarray, first_nonce: int
) -> tuple[Callable[[int, int], None], int, pa.Array]:
    """The job that seals ``values[a:b]`` into shared memory, ``n``, and the array over that
    memory (each range valid once its job has run: every value's place is known up front)."""
    data, offsets = string_buffers(values)
    n = len(offsets) - 1
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.diff(offsets) + SEALED_OVERHEAD, out=out_offsets[1:])
    size = int(out_offsets[-1])
    out = mmap.mmap(-1, max(size, 1))
    prefix, flat = domain_prefix(domain), np.ascontiguousarray(tokens).tobytes()

    def job(a: int, b: int) -> None:
        _seal_into(key.plaintext, prefix, flat, data, offsets, out, out_offsets, a, b, first_nonce)

    body = pa.py_buffer(out).slice(0, size)  # the shared memory itself, no copy
    if size < 2**31:  # binary (int32 offsets), as the vault stores it
        offsets_buffer, kind = pa.py_buffer(out_offsets.astype(np.int32)), pa.binary()
    else:
        offsets_buffer, kind = pa.py_buffer(out_offsets), pa.large_binary()
    return job, n, pa.Array.from_buffers(kind, n, [None, offsets_buffer, body])


def open_sealed(key: bytes, domain: str, token: str, sealed: bytes) -> str:
    """The value sealed for ``token``; raises ValueError if it was not sealed for it."""
    nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
    try:
        return AESGCM(key).decrypt(nonce, body, domain_prefix(domain) + token.encode()).decode()
    except InvalidTag:
        raise ValueError("a vault entry does not open for its token") from None


# -- the per-value loops, in this process or in forked workers ---------------------------------


def string_buffers(values: pa.Array) -> tuple[bytes, np.ndarray]:
    """The values' bytes back to back and their offsets into them (from 0)."""
    values = values.cast(pa.large_string())
    _, offsets_buf, data_buf = values.buffers()
    start, stop = values.offset, values.offset + len(values) + 1
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[start:stop]
    first, last = int(offsets[0]), int(offsets[-1])
    data = data_buf.slice(first, last - first).to_pybytes() if data_buf is not None else b""
    return data, offsets - first


def _hmac_into(
    key: bytes, prefix: bytes, data: bytes, offsets: np.ndarray, out, start: int, end: int
) -> None:
    # HMAC by hand over two prepared SHA-256 states: 2x faster than hmac.new per value.
    padded = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
    inner.update(prefix)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))
    bounds = offsets[start : end + 1].tolist()
    parts = []
    append = parts.append
    for a, b in zip(bounds, bounds[1:], strict=False):
        h = inner.copy()
        h.update(data[a:b])
        o = outer.copy()
        o.update(h.digest())
        append(o.digest())
    out[start * INDEX_BYTES : end * INDEX_BYTES] = b"".join(parts)


def _seal_into(
    key: bytes,
    prefix: bytes,
    tokens: bytes,
    data: bytes,
    offsets: np.ndarray,
    out,
    out_offsets: np.ndarray,
    start: int,
    end: int,
    first_nonce: int = 0,
) -> None:
    encrypt = AESGCM(key).encrypt
    bounds = offsets[start : end + 1].tolist()
    parts = []
    append = parts.append
    for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False), start):
        nonce = (first_nonce + k).to_bytes(NONCE_BYTES, "big")
        aad = prefix + tokens[k * TOKEN_LENGTH : (k + 1) * TOKEN_LENGTH]
        append(nonce + encrypt(nonce, data[a:b], aad))
    out[int(out_offsets[start]) : int(out_offsets[end])] = b"".join(parts)


_JOB: Callable[[int, int], None] | None = None


def _worker(bounds: tuple[int, int]) -> None:
    assert _JOB is not None
    _JOB(*bounds)


def _run_ranges(job: Callable[[int, int], None], n: int, workers: int) -> None:
    """``job(a, b)`` over ranges covering ``0..n``: here for small ``n``, else in forked
    workers, which write into the anonymous shared memory the job closes over."""
    with _ranges_in_order(job, n, workers) as ranges:
        for _ in ranges:
            pass


@contextmanager
def _ranges_in_order(
    job: Callable[[int, int], None], n: int, workers: int, largest: int | None = None
) -> Iterator[Iterator[tuple[int, int]]]:
    """Ranges covering ``0..n`` (of at most ``largest``), each yielded once ``job`` has run on
    it, in order. Small ``n`` runs here, when the first range is asked for; otherwise every
    range is submitted on entry to workers forked then, which inherit the job."""
    global _JOB
    if n < PARALLEL_THRESHOLD or workers < 2:

        def here() -> Iterator[tuple[int, int]]:
            job(0, n)
            yield 0, n

        yield here()
        return
    step = -(-n // (workers * 4))
    step = min(step, largest) if largest else step
    ranges = [(i, min(i + step, n)) for i in range(0, n, step)]
    _JOB = job
    pool = ProcessPoolExecutor(workers, mp_context=get_context("fork"))
    try:
        submitted = [(r, pool.submit(_worker, r)) for r in ranges]  # every worker forks here

        def finished() -> Iterator[tuple[int, int]]:
            for r, future in submitted:
                future.result()  # a worker's error is raised here
                yield r

        yield finished()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _JOB = None


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)
