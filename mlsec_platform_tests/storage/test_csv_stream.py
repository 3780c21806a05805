"""The CSV a warehouse load streams into COPY (``storage/csv_stream.py``)."""

from __future__ import annotations

import io
import threading
from datetime import datetime

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from mlsec_platform.storage import csv_stream
from mlsec_platform.storage.csv_stream import CsvStream


def _table(rows: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "text": pa.array(
                [f'row {i}, "quoted"\nline' if i % 7 == 0 else "" for i in range(rows)]
            ),
            "at": pa.array(
                [datetime(2026, 1, 1 + i % 28) for i in range(rows)], pa.timestamp("us")
            ),
            "none": pa.nulls(rows, pa.string()),
        }
    )


def _read_all(stream: CsvStream) -> bytes:
    parts = []
    while part := stream.read(1 << 20):
        parts.append(part)
    return b"".join(parts)


def test_the_stream_reads_as_the_whole_table_written_at_once():
    table = _table(3 * csv_stream.BATCH_ROWS + 17)
    whole = io.BytesIO()
    pacsv.write_csv(table, whole, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    with CsvStream(table) as stream:
        assert _read_all(stream) == whole.getvalue()
        assert stream.read() == b""  # stays at its end


def test_an_empty_table_is_an_empty_stream():
    with CsvStream(_table(0)) as stream:
        assert _read_all(stream) == b""


def test_a_writer_error_is_raised_to_the_reader():
    unwritable = pa.table({"m": pa.array([{"a": 1}], pa.map_(pa.string(), pa.int64()))})
    with CsvStream(unwritable) as stream, pytest.raises(pa.ArrowInvalid, match="Unsupported Type"):
        stream.read()


def test_leaving_early_stops_the_writer():
    before = threading.active_count()
    with CsvStream(_table(20 * csv_stream.BATCH_ROWS)) as stream:
        stream.read()  # COPY failed after its first part
    assert threading.active_count() == before
