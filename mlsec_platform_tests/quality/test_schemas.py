"""The generated pandera schemas, on small batches: keys, nulls, tokens and value rules."""

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pandera.errors
import pyarrow as pa
import pytest

from mlsec_platform.catalog.columns import PEOPLE, token
from mlsec_platform.catalog.datasets import dataset
from mlsec_platform.catalog.governance import ColumnSpec, DatasetSpec, Purpose
from mlsec_platform.quality.gates import relevant_cases
from mlsec_platform.quality.schemas import (
    TOKEN_SHAPE,
    schema_for,
    unique_key_check,
    validation_frame,
)
from mlsec_platform.settings import Zone

ARROW_STRING = pd.ArrowDtype(pa.string())


def _sellers(ids: list[str], states: list[str | None]) -> pa.Table:
    spec = dataset("silver/sellers")
    n = len(ids)
    return pa.table(
        {
            "seller_id": ids,
            "seller_zip_prefix": ["01310"] * n,
            "seller_city": ["sao paulo"] * n,
            "seller_state": states,
            "_raw_batch_id": ["b1"] * n,
        },
        schema=spec.arrow_schema(),
    )


def _items(keys: list[tuple[str, int]], prices: list[str]) -> pa.Table:
    spec = dataset("silver/order_items")
    n = len(keys)
    return pa.table(
        {
            "order_id": [k[0] for k in keys],
            "order_item_id": [k[1] for k in keys],
            "product_id": ["p1"] * n,
            "seller_id": ["s1"] * n,
            "shipping_limit_at": [datetime(2026, 1, 1, tzinfo=UTC)] * n,
            "price": [Decimal(p) for p in prices],
            "freight_value": [Decimal("1.00")] * n,
            "_raw_batch_id": ["b1"] * n,
        },
        schema=spec.arrow_schema(),
    )


def _failures(spec_id: str, table: pa.Table):
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        schema_for(dataset(spec_id)).validate(validation_frame(table), lazy=True)
    return caught.value.failure_cases


def test_a_clean_batch_passes():
    schema_for(dataset("silver/sellers")).validate(
        validation_frame(_sellers(["a", "b", "c"], ["SP", "RJ", "PR"])), lazy=True
    )
    schema_for(dataset("silver/order_items")).validate(
        validation_frame(_items([("o1", 1), ("o1", 2), ("o2", 1)], ["10.00", "0.00", "3.50"])),
        lazy=True,
    )


def test_a_duplicate_key_fails_and_names_both_rows():
    cases = _failures("silver/sellers", _sellers(["a", "b", "a", "c"], ["SP", "RJ", "SP", "PR"]))
    key_cases = cases[cases["check"] == "unique_key(seller_id)"]
    assert sorted(set(key_cases["index"].tolist())) == [0, 2]
    # What the gate keeps for quarantine and its summary: the key column of both rows.
    kept = relevant_cases(cases, ("seller_id",))
    kept = kept[kept["check"] == "unique_key(seller_id)"]
    assert sorted(zip(kept["column"], kept["index"], strict=True)) == [
        ("seller_id", 0),
        ("seller_id", 2),
    ]


def test_a_composite_key_is_unique_as_a_whole():
    table = _items([("o1", 1), ("o1", 2), ("o2", 1), ("o1", 2)], ["1.00"] * 4)
    cases = _failures("silver/order_items", table)
    key_cases = cases[cases["check"] == "unique_key(order_id, order_item_id)"]
    assert sorted(set(key_cases["index"].tolist())) == [1, 3]


def test_the_key_check_finds_one_duplicate_among_many_and_tells_swapped_parts_apart():
    check = unique_key_check(("order_id", "seller_id"))
    ids = [f"o{i}" for i in range(300_000)]
    frame = pd.DataFrame({"order_id": ids, "seller_id": ids[::-1]}).astype(ARROW_STRING)
    assert check(frame).check_passed
    # (a, b) and (b, a) are two keys: a hash that ignored the order would call them one.
    swapped = pd.DataFrame({"order_id": ["a", "b"], "seller_id": ["b", "a"]}).astype(ARROW_STRING)
    assert check(swapped).check_passed
    duplicated = pd.concat([frame, frame.iloc[[123_456]]], ignore_index=True)
    result = check(duplicated)
    assert not result.check_passed
    assert sorted(result.check_output[~result.check_output].index) == [123_456, 300_000]


def test_value_rules_and_nulls_fail_on_arrow_backed_frames():
    cases = _failures("silver/sellers", _sellers(["a", "b", "c"], ["SP", "XX", None]))
    failed = {(row.column, row.check, row.index) for row in cases.itertuples()}
    assert any(c == "seller_state" and k.startswith("isin") and i == 1 for c, k, i in failed)
    assert any(c == "seller_state" and k == "not_nullable" and i == 2 for c, k, i in failed)
    negative = _failures("silver/order_items", _items([("o1", 1), ("o2", 1)], ["5.00", "-1.00"]))
    assert negative[negative["column"] == "price"]["index"].tolist() == [1]


def test_a_dataset_without_value_rules_is_checked_on_its_catalog_alone():
    spec = DatasetSpec(
        Zone.SILVER,
        "members",
        "customers",
        "A dataset no one wrote value rules for.",
        (
            ColumnSpec("member_id", pa.string(), "Id.", nullable=False),
            token("cpf_token", "CPF", from_column="member_cpf", domain=PEOPLE),
        ),
        key=("member_id",),
        purposes=frozenset({Purpose.FRAUD}),
    )
    table = pa.table(
        {"member_id": ["m1", "m1", None], "cpf_token": ["tok_" + "A" * 22, "123", None]}
    )
    with pytest.raises(pandera.errors.SchemaErrors) as caught:
        schema_for(spec).validate(validation_frame(table), lazy=True)
    failed = {(row.column, row.check) for row in caught.value.failure_cases.itertuples()}
    assert ("member_id", "not_nullable") in failed
    assert ("cpf_token", f"str_matches('{TOKEN_SHAPE}')") in failed
    assert any(check.startswith("unique_key(member_id)") for _, check in failed)
