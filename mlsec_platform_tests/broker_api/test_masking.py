"""Masks per mask and type: values, nulls, types, keyed-hash determinism, unsupported pairs."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from broker_api.masking import Masker, UnsupportedMask, masked_type
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import Mask

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture(scope="module")
def masker() -> Masker:
    return Masker(KEY)


def masked(masker: Masker, values: list[Any], type_: pa.DataType, mask: Mask) -> pa.ChunkedArray:
    table = pa.table({"c": pa.array(values, type_), "other": pa.array(range(len(values)))})
    out = masker.apply(table, {"c": mask})
    assert out.column("other") == table.column("other")  # other columns untouched
    assert out.schema.field("c").type == masked_type(type_, mask) == type_
    return out.column("c")


def expected_hash(key: bytes, value: str) -> str:
    return "h:" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# The key


@pytest.mark.parametrize("key", [b"", b"short", bytes(31)])
def test_short_keys_are_refused(key: bytes) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Masker(key)


def test_keys_must_be_bytes() -> None:
    with pytest.raises(TypeError):
        Masker("k" * 32)  # type: ignore[arg-type]


def test_the_key_is_never_shown() -> None:
    masker = Masker(b"s3cr3t-" * 8)
    assert "s3cr3t" not in repr(masker) and "s3cr3t" not in str(masker)
    assert not hasattr(masker, "__dict__")


# ---------------------------------------------------------------------------------------------
# Per mask


@pytest.mark.parametrize("type_", [pa.string(), pa.large_string()])
def test_redact_strings(masker: Masker, type_: pa.DataType) -> None:
    out = masked(masker, ["Sao Paulo", "", None, "x"], type_, Mask.REDACT)
    assert out.to_pylist() == ["***", "***", None, "***"]


@pytest.mark.parametrize(
    ("values", "type_"),
    [
        ([1, None, 3], pa.int64()),
        ([Decimal("1.50"), None], pa.decimal128(14, 2)),
        ([datetime(2024, 3, 17, tzinfo=UTC), None], pa.timestamp("us", tz="UTC")),
        ([True, False], pa.bool_()),
        ([date(2024, 3, 17)], pa.date32()),
    ],
)
def test_redact_other_types_is_null(masker: Masker, values: list[Any], type_: pa.DataType) -> None:
    out = masked(masker, values, type_, Mask.REDACT)
    assert out.null_count == len(values)


def test_partial_email(masker: Masker) -> None:
    values = [
        "maria.silva@example.com.br",
        "a@b@c.org",  # the domain follows the last "@"
        "multi\nline@example.org",  # a newline does not hide the local part
        "no-at-sign",
        "",
        "@",
        None,
    ]
    out = masked(masker, values, pa.string(), Mask.PARTIAL_EMAIL)
    assert out.to_pylist() == [
        "***@example.com.br",
        "***@c.org",
        "***@example.org",
        "***",
        "***",
        "***@",
        None,
    ]


def test_last_digits(masker: Masker) -> None:
    values = ["+55 11 98765-4321", "12345", "1234", "12", "", "ação1234", None]
    out = masked(masker, values, pa.string(), Mask.LAST_DIGITS)
    assert out.to_pylist() == ["***4321", "***2345", "***", "***", "***", "***1234", None]
    large = masked(masker, ["5511987654321", None], pa.large_string(), Mask.LAST_DIGITS)
    assert large.to_pylist() == ["***4321", None]


def test_keyed_hash_is_hmac_sha256(masker: Masker) -> None:
    values = ["tok-1", "tok-2", "tok-1", None, "", "ção"]
    out = masked(masker, values, pa.string(), Mask.KEYED_HASH).to_pylist()
    assert out == [None if v is None else expected_hash(KEY, v) for v in values]
    assert out[0] == out[2] != out[1]  # grouping and joining on hashes still work
    assert all(v is None or (v.startswith("h:") and len(v) == 34) for v in out)


def test_keyed_hash_is_deterministic_per_key_and_differs_between_keys(masker: Masker) -> None:
    values = [f"tok-{i}" for i in range(20)]
    first = masked(masker, values, pa.string(), Mask.KEYED_HASH).to_pylist()
    assert masked(Masker(KEY), values, pa.string(), Mask.KEYED_HASH).to_pylist() == first
    other = masked(Masker(OTHER_KEY), values, pa.string(), Mask.KEYED_HASH).to_pylist()
    assert not set(first) & set(other)


def test_keyed_hash_of_long_keys_chunks_and_large_strings() -> None:
    long_key = bytes(range(100))  # longer than a SHA-256 block: hashed first, as HMAC says
    table = pa.Table.from_batches(
        [
            pa.record_batch({"c": pa.array(["a", None], pa.large_string())}),
            pa.record_batch({"c": pa.array(["b", "a"], pa.large_string())}),
        ]
    )
    out = Masker(long_key).apply(table, {"c": Mask.KEYED_HASH})
    assert out.schema.field("c").type == pa.large_string()
    assert out.column("c").to_pylist() == [
        expected_hash(long_key, "a"),
        None,
        expected_hash(long_key, "b"),
        expected_hash(long_key, "a"),
    ]


@pytest.mark.parametrize(
    ("values", "type_"),
    [
        (["a", None], pa.string()),
        ([1, 2], pa.int32()),
        ([Decimal("9.99")], pa.decimal128(14, 2)),
        ([datetime(2024, 3, 17, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
        ([[1, 2]], pa.list_(pa.int64())),
    ],
)
def test_null_keeps_the_type(masker: Masker, values: list[Any], type_: pa.DataType) -> None:
    table = pa.table(
        {"c": pa.array(values, type_)}, schema=pa.schema([pa.field("c", type_, False)])
    )
    out = masker.apply(table, {"c": Mask.NULL})
    assert out.column("c").null_count == len(values)
    assert out.schema.field("c").type == type_
    assert out.schema.field("c").nullable  # the schema no longer promises values


def test_round_decimals_to_units(masker: Masker) -> None:
    type_ = pa.decimal128(14, 2)
    values = [Decimal("12.55"), Decimal("12.50"), Decimal("13.50"), Decimal("-7.49"), None]
    out = masked(masker, values, type_, Mask.ROUND)
    assert out.to_pylist() == [
        Decimal("13.00"),
        Decimal("12.00"),
        Decimal("14.00"),
        Decimal("-7.00"),
        None,
    ]


@pytest.mark.parametrize("type_", [pa.float64(), pa.float32()])
def test_round_floats_to_units(masker: Masker, type_: pa.DataType) -> None:
    out = masked(masker, [3.7, 2.5, -0.4, None], type_, Mask.ROUND)
    assert out.to_pylist() == [4.0, 2.0, -0.0, None]


@pytest.mark.parametrize("type_", [pa.int32(), pa.int64(), pa.int16()])
def test_round_integers_to_tens(masker: Masker, type_: pa.DataType) -> None:
    out = masked(masker, [14, 15, 25, 26, -16, 0, None], type_, Mask.ROUND)
    assert out.to_pylist() == [10, 20, 20, 30, -20, 0, None]


def test_truncate_date(masker: Masker) -> None:
    out = masked(
        masker, [date(2024, 3, 17), date(2024, 3, 1), None], pa.date32(), Mask.TRUNCATE_DATE
    )
    assert out.to_pylist() == [date(2024, 3, 1), date(2024, 3, 1), None]


@pytest.mark.parametrize("tz", ["UTC", "America/Sao_Paulo", None])
def test_truncate_timestamps_keeps_the_time_zone(masker: Masker, tz: str | None) -> None:
    zone = ZoneInfo(tz) if tz else None
    value = datetime(2024, 3, 17, 15, 42, 7, tzinfo=zone)
    type_ = pa.timestamp("us", tz=tz)
    out = masked(masker, [value, None], type_, Mask.TRUNCATE_DATE).to_pylist()
    assert out[1] is None
    # The first day of the month at midnight, in the column's own time zone.
    first = out[0] if zone is None else out[0].astimezone(zone)
    assert first.replace(tzinfo=None) == datetime(2024, 3, 1)


# ---------------------------------------------------------------------------------------------
# Failing closed


@pytest.mark.parametrize(
    ("type_", "mask"),
    [
        (pa.int64(), Mask.PARTIAL_EMAIL),
        (pa.int64(), Mask.LAST_DIGITS),
        (pa.int64(), Mask.KEYED_HASH),
        (pa.binary(), Mask.KEYED_HASH),
        (pa.dictionary(pa.int32(), pa.string()), Mask.PARTIAL_EMAIL),
        (pa.string(), Mask.ROUND),
        (pa.float16(), Mask.ROUND),
        (pa.string(), Mask.TRUNCATE_DATE),
        (pa.date64(), Mask.TRUNCATE_DATE),
        (pa.string(), Mask.NONE),
    ],
)
def test_unsupported_pairs_raise(masker: Masker, type_: pa.DataType, mask: Mask) -> None:
    with pytest.raises(UnsupportedMask, match=mask.value):
        masked_type(type_, mask)
    table = pa.table({"c": pa.nulls(2, type_)})
    with pytest.raises(UnsupportedMask):
        masker.apply(table, {"c": mask})


def test_unknown_masks_and_columns_raise(masker: Masker) -> None:
    table = pa.table({"c": ["x"]})
    with pytest.raises(ValueError):
        masker.apply(table, {"c": "scramble"})  # type: ignore[dict-item]
    with pytest.raises(KeyError, match="'d'"):
        masker.apply(table, {"d": Mask.REDACT})
    twice = pa.Table.from_arrays([pa.array(["x"]), pa.array(["y"])], names=["c", "c"])
    with pytest.raises(KeyError):
        masker.apply(twice, {"c": Mask.REDACT})


def test_masks_accept_their_values_and_empty_tables(masker: Masker) -> None:
    table = pa.table({"c": pa.array([], pa.string())})
    out = masker.apply(table, {"c": "redact"})  # type: ignore[dict-item]
    assert out.num_rows == 0 and out.schema == table.schema
    assert masker.apply(table, {}) is table


def test_every_catalog_mask_fits_its_column() -> None:
    """A mask the catalog names for a column must be applicable to it (else reads would fail)."""
    for spec in CATALOG.values():
        for column in spec.columns:
            if column.mask is not Mask.NONE:
                assert masked_type(column.type, column.mask) == column.type, column.name
