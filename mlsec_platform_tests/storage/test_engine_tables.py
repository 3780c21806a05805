"""A staged replace (the Spark engine's incremental commit): one version that removes the files
it names and adds the staged ones, every other file kept; a named file already gone commits
nothing. The staged table is written here by delta-rs, in the layout the engine writes."""

import uuid

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from mlsec_platform.defs.resources import build_resources
from mlsec_platform.settings import Zone
from mlsec_platform.storage.engine_tables import ConcurrentWrite, StagedTable, commit_staged

SCHEMA = pa.schema([("k", pa.string()), ("v", pa.int64())])


@pytest.fixture(scope="module")
def lake(settings, supervisor):
    return build_resources(settings)["lake_pipeline"]


def _files(uri: str, lake) -> set[str]:
    table = DeltaTable(uri, storage_options=lake.storage_options())
    return set(pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist())


def _staged(lake, uri: str, rows: dict, removes: tuple[str, ...]) -> StagedTable:
    staged = StagedTable(uri, uuid.uuid4().hex, SCHEMA, removes)
    table = pa.table(rows, schema=SCHEMA)
    write_deltalake(staged.staging_uri, table, storage_options=lake.storage_options())
    return staged


def test_a_staged_replace_removes_only_the_files_it_names(lake):
    uri = lake.table_uri(Zone.SILVER, f"staged_replace_{uuid.uuid4().hex[:8]}")
    options = lake.storage_options()
    write_deltalake(
        uri, pa.table({"k": ["a", "b"], "v": [1, 2]}, schema=SCHEMA), storage_options=options
    )
    [first] = _files(uri, lake)
    write_deltalake(
        uri, pa.table({"k": ["c"], "v": [3]}, schema=SCHEMA), mode="append", storage_options=options
    )
    [second] = _files(uri, lake) - {first}

    # b changed: the file holding it goes; its other row (a) is staged again beside the new b.
    staged = _staged(lake, uri, {"k": ["a", "b"], "v": [1, 20]}, (first,))
    version, rows = commit_staged(lake, staged, {"mlsec.write_id": "w1"})

    table = DeltaTable(uri, storage_options=options)
    assert version == table.version() == 2
    assert rows == 3
    assert second in _files(uri, lake) and first not in _files(uri, lake)
    assert sorted(table.to_pyarrow_table().to_pylist(), key=lambda r: r["k"]) == [
        {"k": "a", "v": 1},
        {"k": "b", "v": 20},
        {"k": "c", "v": 3},
    ]


def test_a_named_file_already_gone_commits_nothing(lake):
    uri = lake.table_uri(Zone.SILVER, f"staged_replace_{uuid.uuid4().hex[:8]}")
    options = lake.storage_options()
    write_deltalake(uri, pa.table({"k": ["a"], "v": [1]}, schema=SCHEMA), storage_options=options)
    staged = _staged(lake, uri, {"k": ["a"], "v": [10]}, ("part-gone.parquet",))
    with pytest.raises(ConcurrentWrite, match="left the table meanwhile"):
        commit_staged(lake, staged, {"mlsec.write_id": "w2"})
    assert DeltaTable(uri, storage_options=options).version() == 0
