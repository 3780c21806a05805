"""The token vault: per data domain, each value's token and the value sealed.

What the columns are, and why no workload can reverse a token, is in ``privacy/tokens.py``.
The vault lives in its own bucket (``<prefix>tokens``), two Delta tables per domain:

    <domain>/entries   index (HMAC, 32 bytes), token, ciphertext, key_id: one row per value,
                       each mint's rows sorted by token (a reveal reads only its row groups)
    <domain>/keys      key_id, wrapped (the data key wrapped by transit ``token-wrap``),
                       created_at, run_id

API (Silver mints through ``tokenize_many``; reveal, erasure and rotation use the rest):

    vault = TokenVault.on_lake(lake, index_key=..., data_keys=..., lock=...)
    vault.tokenize_many({"email": column, ...}, domain) -> {"email": tokens} of every value
        (null stays null); new values minted under the domain's lock, one commit per table
    vault.mint_stream(domain, new) -> minted (the Spark engine's new values, a chunk at a time)
    vault.lookup(domain, values) -> tokens, null where the vault has no token (mints nothing)
    vault.entries(domain, tokens) -> table of token, key_id, ciphertext (the tokens it holds)
    vault.wrapped_keys(domain, key_ids=None) -> {key_id: wrapped data key} (None: all)
    vault.forget(domain, tokens, retention_hours=None) -> Forgotten: the tokens' rows deleted
        in one new Delta version (they resolve to nothing from then on); with ``retention_hours``
        (the history setting), files no version younger than that needs are vacuumed (0: all).
    vault.rewrap(domain, rewrap) -> keys rewrapped (one commit of ``keys``)

``lookup`` needs the index key; ``tokenize_many`` also data keys and a lock (``token_lock.py``),
held from re-reading the index to the commit, so two runs minting one new value get one token;
the others need an identity that may read (to forget and rewrap: write, delete) the bucket.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from mlsec_platform.catalog.governance import TOKEN_DOMAIN_SHAPE, TOKEN_PATTERN
from mlsec_platform.errors import InvalidInput
from mlsec_platform.privacy.tokens import (
    DataKey,
    IndexKey,
    default_workers,
    new_tokens,
    seal,
    sealing,
    token_array,
)
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.commits import committed_version
from mlsec_platform.storage.token_index import (
    binary_rows,
    entry_batches,
    index_rows,
    keyed_rows,
    known_tokens,
    match_tokens,
    put_tokens,
    rechunked,
    remember_appended,
    string_chunks,
)
from mlsec_platform.storage.token_tables import ENTRIES_SCHEMA, KEYS_SCHEMA, MINT_CHUNK, WRITER

#: Commit metadata of a forget's rewrite (the number of rows it removed).
FORGOTTEN_COMMIT = "mlsec.forgotten"


class UnknownDomain(InvalidInput):
    """A token domain that cannot name a vault (lower-case letters, digits, underscores)."""


@dataclass(frozen=True)
class Forgotten:
    """What :meth:`TokenVault.forget` removed."""

    domain: str
    removed: int
    #: The version without the rows (None: nothing was there to remove).
    version: int | None
    #: Files vacuumed afterwards (the older versions' copies of the rows among them).
    vacuumed: tuple[str, ...] = ()


class TokenVault:
    def __init__(
        self,
        root: str,
        storage_options: Callable[[], dict[str, str]],
        *,
        index_key: Callable[[], IndexKey] | None = None,
        data_keys: Callable[[], DataKey] | None = None,
        lock: Callable[[str], AbstractContextManager] | None = None,
        emit: Callable[[str, dict], object] | None = None,
        run_id: str | None = None,
        workers: int | None = None,
    ) -> None:
        self.root = root.rstrip("/")
        self._options = storage_options
        self._index_key_source, self._index_key = index_key, None
        self._data_keys = data_keys
        self._lock = lock or (lambda domain: nullcontext())
        self._emit = emit or (lambda event, payload: None)
        self.run_id = run_id
        self.workers = workers or default_workers()
        #: domain -> (values minted, entries version) of this vault's last mint there.
        self.minted: dict[str, tuple[int, int | None]] = {}

    @classmethod
    def on_lake(cls, lake: S3LakeResource, **kwargs) -> TokenVault:
        """The vault in ``lake``'s tokens bucket, with the lake identity's keys."""
        return cls(f"s3://{lake.bucket(Zone.TOKENS)}", lake.storage_options, **kwargs)

    def uri(self, domain: str, table: str) -> str:
        if not TOKEN_DOMAIN_SHAPE.fullmatch(domain):
            raise UnknownDomain(f"{domain!r} is not a token domain (lower-case letters, digits)")
        return f"{self.root}/{domain}/{table}"

    # -- tokens for values -----------------------------------------------------------------

    def tokenize_many(
        self, columns: Mapping[str, pa.Array | pa.ChunkedArray], domain: str
    ) -> dict[str, pa.Array]:
        """The tokens of each column's values (null stays null); new values are minted."""
        names = list(columns)
        lengths = [len(columns[n]) for n in names]
        if not any(lengths):  # no column, or an incremental batch without rows of this table
            return {n: pa.array([], pa.string()) for n in names}
        chunks = [c for n in names for c in string_chunks(columns[n])]
        encoded = pc.dictionary_encode(pa.chunked_array(chunks, pa.string()))
        # One dictionary for all chunks: the last chunk's holds every distinct value.
        distinct = encoded.chunk(encoded.num_chunks - 1).dictionary
        tokens = self._tokens(domain, distinct, mint=True)
        indices = pa.chunked_array([c.indices for c in encoded.chunks], pa.int32())
        out, start = {}, 0
        for name, length in zip(names, lengths, strict=True):
            out[name] = tokens.take(indices.slice(start, length)).combine_chunks()
            start += length
        return out

    def lookup(self, domain: str, values: pa.Array | Sequence[str]) -> pa.Array:
        """Each value's token, null where the vault has none (or the value is null)."""
        values = pa.array(values, pa.string()) if not isinstance(values, pa.Array) else values
        encoded = pc.dictionary_encode(values.cast(pa.string()))
        return self._tokens(domain, encoded.dictionary, mint=False).take(encoded.indices)

    def _tokens(self, domain: str, distinct: pa.Array, *, mint: bool) -> pa.Array:
        uri = self.uri(domain, "entries")
        if len(distinct) == 0:
            return pa.array([], pa.string())
        index = self._index().digests(domain, distinct, self.workers)
        version, known = self._known(uri)
        found, tokens = match_tokens(index, known)
        if mint and not found.all():
            with self._lock(domain):
                version, known = self._known(uri)  # another run may have minted meanwhile
                found, tokens = match_tokens(index, known)
                if not found.all():
                    missing = np.flatnonzero(~found)
                    new, version = self._mint(domain, distinct.take(missing), index[missing])
                    tokens = put_tokens(tokens, missing, new)
                    self.minted[domain] = (len(missing), version)
        self.minted.setdefault(domain, (0, version))
        return tokens

    def mint_stream(
        self,
        domain: str,
        new: Callable[[], Iterator[tuple[pa.Array, pa.Array]]],
        chunk_values: int = MINT_CHUNK,
    ) -> int:
        """Mint the values ``new()`` yields as ``(values, index)`` batches: those a lookup
        elsewhere (the Spark engine's) finds missing, with the index it computed (None: computed
        here a chunk at a time). ``new()`` runs under the domain's lock, held to the commit, so it
        sees the vault as it is then. One chunk of ``chunk_values`` values (and one batch) at most
        is held here: one data key (committed to ``keys`` first) seals them all, each chunk's
        nonces following the last's, each chunk's entries streamed, sorted by token, by the
        writer into ONE commit of ``entries``. Returns how many values were minted."""
        with self._lock(domain):
            chunks = rechunked(new(), chunk_values)
            first = next(chunks, None)
            if first is None:
                return 0
            # The key is committed here: the writer below runs ``batches`` on its own runtime,
            # from which no other Delta call can be made.
            key, count = self._new_key(domain), 0

            def batches() -> Iterator[pa.RecordBatch]:
                nonlocal count
                for values, index in itertools.chain([first], chunks):
                    if index is None:  # sent without its index: computed here, as on DuckDB
                        index = binary_rows(self._index().digests(domain, values, self.workers))
                    entries, _ = self._sealed(key, domain, values, index_rows(index), count)
                    count += len(values)
                    yield from entries.to_batches()

            reader = pa.RecordBatchReader.from_batches(ENTRIES_SCHEMA, batches())
            version = self._write(self.uri(domain, "entries"), reader, "append")
            self.minted[domain] = (count, version)
        self._emit(
            "tokens.minted",
            {"domain": domain, "count": count, "key_id": key.key_id, "version": version},
        )
        return count

    def version(self, domain: str, table: str = "entries") -> int | None:
        """The latest version of one of the domain's tables (None: not made yet)."""
        found = self._table(self.uri(domain, table))
        return None if found is None else found.version()

    def index_key(self) -> IndexKey:
        """The index key for this batch (unwrapped on first use)."""
        return self._index()

    def _index(self) -> IndexKey:
        if self._index_key is None:
            if self._index_key_source is None:
                raise InvalidInput("this token vault has no index key: it can only reveal")
            self._index_key = self._index_key_source()
        return self._index_key

    def _known(self, uri: str) -> tuple[int | None, pa.Table]:
        return known_tokens(uri, self._table(uri))

    def _mint(self, domain: str, values: pa.Array, index: np.ndarray) -> tuple[pa.Array, int]:
        """Fresh tokens for ``values`` (none in the vault), committed: the wrapped data key
        first (a key without entries is harmless), then every entry in one commit, sorted by
        token, streamed to the writer a sealed part at a time while the next is sealed."""
        key = self._new_key(domain)
        tokens, order = new_tokens(len(values))
        ordered, uri = tokens[order], self.uri(domain, "entries")
        keyed = keyed_rows(index[order], ordered)  # what the cached index holds
        with sealing(key, domain, values.take(pa.array(order)), ordered, self.workers) as parts:
            version = self._write(uri, entry_batches(keyed, parts, key.key_id), "append")
        remember_appended(uri, version, keyed)
        self._emit(
            "tokens.minted",
            {"domain": domain, "count": len(values), "key_id": key.key_id, "version": version},
        )
        return token_array(tokens), version

    def _new_key(self, domain: str) -> DataKey:
        """A fresh data key, its wrapped form committed to ``keys``."""
        if self._data_keys is None:
            raise InvalidInput("this token vault has no data keys: it cannot mint")
        key = self._data_keys()
        row = [[key.key_id], [key.wrapped], [datetime.now(UTC)], [self.run_id]]
        self._write(self.uri(domain, "keys"), pa.table(row, schema=KEYS_SCHEMA), "append")
        return key

    def _sealed(
        self, key: DataKey, domain: str, values: pa.Array, index: np.ndarray, first_nonce=0
    ) -> tuple[pa.Table, np.ndarray]:
        """Fresh tokens for ``values`` sealed under ``key`` from nonce ``first_nonce``: (the
        entries, sorted by token; the tokens in ``values``' order)."""
        tokens, order = new_tokens(len(values))
        rows = pa.array(order)
        ciphertexts = seal(key, domain, values.take(rows), tokens[order], self.workers, first_nonce)
        entries = pa.table(
            [
                binary_rows(index[order]),
                token_array(tokens[order]),
                ciphertexts,
                pa.repeat(key.key_id, len(values)),
            ],
            schema=ENTRIES_SCHEMA,
        )
        return entries, tokens

    def _write(
        self,
        uri: str,
        table: pa.Table | pa.RecordBatchReader,
        mode: Literal["append", "overwrite"],
        metadata=None,
    ) -> int:
        """One commit of ``table`` (``metadata``: more of its commit's); the version it made."""
        write_id = str(uuid.uuid4())
        write_deltalake(
            uri,
            table,
            mode=mode,
            storage_options=self._options(),
            writer_properties=WRITER,
            commit_properties=CommitProperties(
                custom_metadata={
                    "mlsec.write_id": write_id,
                    "mlsec.run_id": self.run_id or "",
                    **(metadata or {}),
                }
            ),
        )
        written = DeltaTable(uri, storage_options=self._options())
        return committed_version(written, "mlsec.write_id", write_id)

    # -- reveal, erasure, rotation ---------------------------------------------------------

    def entries(self, domain: str, tokens: Sequence[str]) -> pa.Table:
        """token, key_id, ciphertext of those of ``tokens`` the vault holds."""
        _check_tokens(tokens)
        table = self._table(self.uri(domain, "entries"))
        if table is None or not tokens:
            return ENTRIES_SCHEMA.empty_table().select(["token", "key_id", "ciphertext"])
        wanted = pa.array(sorted(set(tokens)), pa.string())
        return pa.table(
            table.to_pyarrow_dataset().to_table(
                columns=["token", "key_id", "ciphertext"], filter=pc.field("token").isin(wanted)
            )
        )

    def wrapped_keys(self, domain: str, key_ids: Sequence[str] | None = None) -> dict[str, str]:
        """key_id -> wrapped data key, of ``key_ids`` (default: every key of ``domain``)."""
        table = self._table(self.uri(domain, "keys"))
        if table is None or key_ids is not None and not key_ids:
            return {}
        wanted = None
        if key_ids is not None:
            wanted = pc.field("key_id").isin(pa.array(sorted(set(key_ids)), pa.string()))
        rows = table.to_pyarrow_dataset().to_table(columns=["key_id", "wrapped"], filter=wanted)
        return dict(zip(*(rows.column(i).to_pylist() for i in range(2)), strict=True))

    def forget(
        self, domain: str, tokens: Sequence[str], *, retention_hours: int | None = None
    ) -> Forgotten:
        """Delete the rows of ``tokens``: one new version; then vacuum per ``retention_hours``.

        The table is rewritten from Arrow with its own schema, sorted by token, in one
        overwrite commit: a Delta DELETE would rewrite the touched files with string views,
        which the reveal's filter then cannot compare to its tokens (a vault of 5M values is
        ~0.7 GB: an erasure, which is rare, pays that)."""
        _check_tokens(tokens)
        uri = self.uri(domain, "entries")
        with self._lock(domain):
            table = self._table(uri)
            if table is None or not tokens:
                return Forgotten(domain, 0, None)
            rows = pa.table(table.to_pyarrow_dataset().to_table()).cast(ENTRIES_SCHEMA)
            doomed = pc.is_in(rows.column("token"), pa.array(sorted(set(tokens)), pa.string()))
            removed = int(pc.sum(doomed).as_py() or 0)
            if not removed:
                return Forgotten(domain, 0, None)
            kept = rows.filter(pc.invert(doomed)).sort_by("token")
            version = self._write(uri, kept, "overwrite", {FORGOTTEN_COMMIT: str(removed)})
            vacuumed: list[str] = []
            if retention_hours is not None:
                vacuumed = DeltaTable(uri, storage_options=self._options()).vacuum(
                    retention_hours=retention_hours,
                    enforce_retention_duration=False,
                    dry_run=False,
                )
        self._emit(
            "tokens.forgotten",
            {"domain": domain, "removed": removed, "version": version, "files": len(vacuumed)},
        )
        return Forgotten(domain, removed, version, tuple(vacuumed))

    def rewrap(self, domain: str, rewrap: Callable[[list[str]], list[str]]) -> int:
        """Every wrapped data key of ``domain`` through ``rewrap`` (transit ``rewrap``), in one
        commit of ``keys``; entries and tokens stay as they are."""
        uri = self.uri(domain, "keys")
        with self._lock(domain):  # read and overwritten with no mint in between
            table = self._table(uri)
            keys = pa.table(table.to_pyarrow_dataset().to_table()) if table else None
            if keys is None or keys.num_rows == 0:
                return 0
            wrapped = rewrap(keys.column("wrapped").to_pylist())
            keys = keys.set_column(
                keys.column_names.index("wrapped"), "wrapped", pa.array(wrapped, pa.string())
            )
            write_deltalake(
                uri,
                keys.cast(KEYS_SCHEMA),
                mode="overwrite",
                storage_options=self._options(),
                commit_properties=CommitProperties(
                    custom_metadata={"mlsec.run_id": self.run_id or "", "mlsec.rewrap": "1"}
                ),
            )
        return keys.num_rows

    def _table(self, uri: str) -> DeltaTable | None:
        try:
            return DeltaTable(uri, storage_options=self._options())
        except TableNotFoundError:
            return None


def _check_tokens(tokens: Sequence[str]) -> None:
    bad = sum(1 for t in tokens if not isinstance(t, str) or not TOKEN_PATTERN.fullmatch(t))
    if bad:
        raise InvalidInput(f"{bad} of {len(tokens)} values are not tokens (tok_ and 22 characters)")
