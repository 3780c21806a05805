"""What an incremental commit replaces, and when a run is too large to replace by listing keys.

The replace itself runs against real Delta tables in ``defs/curated/test_incremental.py``; here
the predicate it commits with and the bound that sends large changes to a full rebuild (delta-rs
crashed on a predicate listing 100,000 values).
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake

from mlsec_platform.storage.erasure.delta import ERASURE_COMMIT
from mlsec_platform.storage.incremental import (
    MAX_REPLACED_KEYS,
    CuratedBatch,
    names_its_keys,
    too_many,
)


def test_the_predicate_replaces_exactly_the_batch_values(tmp_path) -> None:
    uri = str(tmp_path / "t")
    write_deltalake(uri, pa.table({"order_id": ["a", "b", "o'x"], "n": [1, 2, 3]}))
    batch = CuratedBatch(
        pa.table({"order_id": ["o'x", "d", "d"], "n": [30, 40, 41]}), {}, "order_id"
    )
    write_deltalake(uri, batch.table, mode="overwrite", predicate=batch.predicate())
    rows = (
        DeltaTable(uri).to_pyarrow_table().sort_by([("order_id", "ascending"), ("n", "ascending")])
    )
    assert rows.to_pylist() == [
        {"order_id": "a", "n": 1},
        {"order_id": "b", "n": 2},
        {"order_id": "d", "n": 40},
        {"order_id": "d", "n": 41},
        {"order_id": "o'x", "n": 30},
    ]


def test_only_text_keys_are_replaced() -> None:
    with pytest.raises(ValueError, match="only text columns"):
        CuratedBatch(pa.table({"k": [1]}), {}, "k").predicate()


def test_more_distinct_keys_than_the_bound_are_too_many() -> None:
    at_bound = pa.array([f"k{i}" for i in range(MAX_REPLACED_KEYS)])
    assert not too_many(at_bound)
    assert not too_many(pa.concat_arrays([at_bound, at_bound]))  # repeats are one key each
    assert too_many(pa.concat_arrays([at_bound, pa.array(["one more"])]))


def test_only_commits_whose_change_feed_names_their_keys_count_as_key_changes(tmp_path) -> None:
    """A replace (predicate overwrite), a MERGE and an append name every key they change in
    the change feed; a whole-table overwrite (a rebuild) or an erasure's rewrite, even one with
    a predicate, does not count: a table downstream of them is loaded or rebuilt whole."""
    uri = str(tmp_path / "t")
    rows = pa.table({"k": ["a", "b"], "v": [1, 2]})
    feed = {"delta.enableChangeDataFeed": "true"}
    write_deltalake(uri, rows, configuration=feed)
    write_deltalake(uri, rows.slice(0, 1), mode="overwrite", predicate="k = 'a'")
    write_deltalake(uri, rows.slice(1), mode="append")
    DeltaTable(uri).merge(
        rows, "t.k = s.k", source_alias="s", target_alias="t"
    ).when_matched_update_all().when_not_matched_insert_all().execute()
    write_deltalake(uri, rows, mode="overwrite")
    erasure = CommitProperties(custom_metadata={ERASURE_COMMIT: "e-1"})
    write_deltalake(
        uri, rows.slice(1), mode="overwrite", predicate="k = 'b'", commit_properties=erasure
    )
    history = sorted(DeltaTable(uri).history(), key=lambda c: c["version"])
    assert [names_its_keys(c) for c in history[1:]] == [True, True, True, False, False]
