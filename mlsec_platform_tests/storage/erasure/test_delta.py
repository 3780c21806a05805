"""A Delta table without one subject, in its current version and in every readable one; an
erasure killed before its cut is cut by the next run (real S3, the lifecycle identity)."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from mlsec_platform.defs.resources import build_resources
from mlsec_platform.privacy.erasure.scope import REDACTED, TableRule
from mlsec_platform.settings import Zone
from mlsec_platform.storage.erasure.delta import (
    CUT_MARKER,
    ERASURE_CUT,
    cut_history,
    erase_table,
    needs_cut,
    read_cut,
    row_mask,
    write_cut,
)
from mlsec_platform.storage.raw_writer import Lineage, batch_with_content, commit_raw_batch
from mlsec_platform.storage.sealing import is_sealed

RULE = TableRule(match=("customer_id",), free_text=("message",))


@pytest.fixture(scope="module")
def lakes(supervisor, settings):
    resources = build_resources(settings)
    return resources["lake_connector"], resources["lake_lifecycle"]


def _batch(lake, name: str, rows: list[tuple[str, str | None]], batch: str) -> None:
    table = pa.table(
        {"customer_id": [r[0] for r in rows], "message": [r[1] for r in rows]},
        schema=pa.schema([("customer_id", pa.string()), ("message", pa.string())]),
    )
    lineage = Lineage(name, "test", "1", batch, datetime.now(UTC).isoformat(), batch * 2)
    commit_raw_batch(lake, table, lineage, run_id=None)


def _all_strings(lake, name: str) -> str:
    """Every string in every object of the table's folder (Parquet decoded)."""
    s3, bucket = lake.client(), lake.bucket(Zone.RAW)
    found = []
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=f"{name}/").get("Contents", []):
        data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        found.append(
            str(pq.read_table(io.BytesIO(data)).to_pylist())
            if data[:4] == b"PAR1"
            else data.decode("utf-8", "replace")
        )
    return "\n".join(found)


def test_rows_go_text_is_redacted_and_a_killed_run_is_cut_by_the_next(lakes):
    connector, lifecycle = lakes
    name = f"erasure_probe_{uuid.uuid4().hex[:8]}"
    secret = f"ana.{uuid.uuid4().hex[:6]}@example.com"
    _batch(connector, name, [("c1", f"write me at {secret}"), ("c2", "fine")], "b1")
    _batch(connector, name, [("c3", f"ana is {secret}!"), ("c4", None)], "b2")
    _batch(connector, name, [("c5", "untouched")], "b3")
    uri, options = lifecycle.table_uri(Zone.RAW, name), lifecycle.storage_options()
    before = DeltaTable(uri, storage_options=options).version()

    done = erase_table(lifecycle, Zone.RAW, name, RULE, {"customer_id": {"c1"}}, [secret], "e1")
    assert (done.rows_removed, done.texts_redacted, done.version_before) == (1, 1, before)
    table = DeltaTable(uri, storage_options=options)
    assert is_sealed(table) and needs_cut(table)  # Raw is append-only again, the cut pending
    rows = sorted(
        table.to_pyarrow_table().select(["customer_id", "message"]).to_pylist(),
        key=lambda r: r["customer_id"],
    )
    assert rows == [
        {"customer_id": "c2", "message": "fine"},
        {"customer_id": "c3", "message": f"ana is {REDACTED}!"},
        {"customer_id": "c4", "message": None},
        {"customer_id": "c5", "message": "untouched"},
    ]
    assert secret in _all_strings(lifecycle, name)  # still in older files and log stats

    # Killed here. The next run finds nothing left to remove, and still cuts.
    again = erase_table(lifecycle, Zone.RAW, name, RULE, {"customer_id": {"c1"}}, [secret], "e2")
    assert (again.rows_removed, again.texts_redacted) == (0, 0)
    cut, files, log = cut_history(lifecycle, Zone.RAW, name)
    assert files >= 2 and log >= 4
    table = DeltaTable(uri, storage_options=options)
    assert not needs_cut(table) and table.metadata().configuration[ERASURE_CUT] == str(cut)
    assert is_sealed(table)
    for version in range(cut):
        with pytest.raises(TableNotFoundError):
            DeltaTable(uri, storage_options=options, version=version)
    assert secret not in _all_strings(lifecycle, name) and "'c1'" not in _all_strings(
        lifecycle, name
    )
    # The rewritten files hold plain strings: filtered reads and the connector still work.
    data = table.to_pyarrow_dataset()
    assert data.to_table(filter=pc.field("customer_id") == "c3").num_rows == 1
    assert batch_with_content(table, "b2" * 2) == "b2"
    _batch(connector, name, [("c6", "after")], "b4")
    assert DeltaTable(uri, storage_options=options).to_pyarrow_table().num_rows == 5


def test_an_untouched_table_is_not_cut(lakes):
    connector, lifecycle = lakes
    name = f"erasure_probe_{uuid.uuid4().hex[:8]}"
    _batch(connector, name, [("c1", "x")], "b1")
    done = erase_table(lifecycle, Zone.RAW, name, RULE, {"customer_id": {"zz"}}, ["nobody"], "e")
    assert not done.changed
    assert not needs_cut(
        DeltaTable(lifecycle.table_uri(Zone.RAW, name), storage_options=lifecycle.storage_options())
    )
    assert erase_table(lifecycle, Zone.RAW, "no_such_table", RULE, {}, [], "e") is None


def test_a_cut_marker_only_ever_rises(lakes):
    _, lifecycle = lakes
    name = f"erasure_probe_{uuid.uuid4().hex[:8]}"
    assert read_cut(lifecycle, Zone.RAW, name) == 0
    write_cut(lifecycle, Zone.RAW, name, 7, "e1")
    write_cut(lifecycle, Zone.RAW, name, 3, "e2")
    assert read_cut(lifecycle, Zone.RAW, name) == 7
    key = f"{name}/{CUT_MARKER}"
    assert lifecycle.client().head_object(Bucket=lifecycle.bucket(Zone.RAW), Key=key)


def test_an_empty_table_holds_no_row_of_the_subject():
    """An empty table's mask is an empty boolean array (it was a null-typed one, which no
    kernel combines with booleans: the second erasure on the demo stopped on it)."""
    empty = pa.table(
        {"customer_id": pa.array([], pa.string()), "message": pa.array([], pa.string())}
    )
    mask = row_mask(empty, RULE, {"customer_id": {"c1"}})
    assert mask.type == pa.bool_() and len(mask) == 0
    assert empty.filter(mask).num_rows == 0
