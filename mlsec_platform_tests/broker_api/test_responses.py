"""Rows as the broker answers them: JSON-ready values."""

from __future__ import annotations

from datetime import datetime


def test_records_are_json_ready_in_every_timestamp_unit() -> None:
    """Decimals and dates as exact text, UTC times as RFC 3339, nulls kept."""
    from datetime import UTC, date
    from decimal import Decimal

    import pyarrow as pa

    from broker_api.responses import records

    instant = datetime(2026, 1, 31, 12, 3, 4, 5, tzinfo=UTC)
    columns = {
        f"at_{unit}": pa.array([instant, None], pa.timestamp("us", tz="UTC")).cast(
            pa.timestamp(unit, tz="UTC"), safe=False
        )
        for unit in ("s", "ms", "us", "ns")
    }
    table = pa.table(
        {
            **columns,
            "price": pa.array([Decimal("12.30"), None], pa.decimal128(14, 2)),
            "day": pa.array([date(2026, 1, 31), None], pa.date32()),
            "n": pa.array([7, None], pa.int32()),
        }
    )
    first, second = records(table)
    assert first == {
        "at_s": "2026-01-31T12:03:04Z",
        "at_ms": "2026-01-31T12:03:04.000Z",
        "at_us": "2026-01-31T12:03:04.000005Z",
        "at_ns": "2026-01-31T12:03:04.000005000Z",
        "price": "12.30",
        "day": "2026-01-31",
        "n": 7,
    }
    assert set(second.values()) == {None}
