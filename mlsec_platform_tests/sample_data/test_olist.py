"""The Olist-shaped demo data: contracts, determinism, integrity, realism, events, CSV."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.sample_data import olist as og
from mlsec_platform.sample_data import pt_br, vocab
from mlsec_platform.sources.validation import Rejected
from mlsec_platform_tests.sample_data.conftest import ORDERS, SEED


def column(dataset: og.OlistDataset, table: str, name: str) -> list:
    return dataset.tables[table][name].to_pylist()


def as_set(dataset: og.OlistDataset, table: str, name: str) -> set:
    return set(column(dataset, table, name))


# -- contracts ---------------------------------------------------------------------------------


def test_every_table_matches_its_contract(dataset):
    assert list(dataset.tables) == list(FILE_SOURCES)
    for name, table in dataset.tables.items():
        assert table.schema.equals(FILE_SOURCES[name].raw_schema()), name
        assert table.num_rows > 0, name
        for col in FILE_SOURCES[name].columns:
            if col.required:
                assert table[col.name].null_count == 0, (name, col.name)


def test_values_are_well_formed_text(dataset):
    hex32 = re.compile(r"^[0-9a-f]{32}$")
    for table, col in [
        ("olist_orders", "order_id"),
        ("olist_customers", "customer_id"),
        ("olist_customers", "customer_unique_id"),
        ("olist_products", "product_id"),
        ("olist_sellers", "seller_id"),
        ("olist_order_reviews", "review_id"),
    ]:
        values = column(dataset, table, col)
        assert all(hex32.match(v) for v in values), (table, col)
    timestamp = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
    money = re.compile(r"^\d+\.\d{2}$")
    integer = re.compile(r"^\d+$")
    for name, contract in FILE_SOURCES.items():
        for col in contract.columns:
            values = [v for v in column(dataset, name, col.name) if v is not None]
            if col.kind == "timestamp":
                assert all(timestamp.match(v) for v in values), (name, col.name)
            elif col.kind == "integer":
                assert all(integer.match(v) for v in values), (name, col.name)
            elif col.kind == "decimal" and name != "olist_geolocation":
                assert all(money.match(v) for v in values), (name, col.name)
            assert all(v != "" for v in values), (name, col.name)
    zips = column(dataset, "olist_customers", "customer_zip_code_prefix")
    assert all(re.match(r"^\d{5}$", z) for z in zips)


def test_ids_are_unique(dataset):
    for table, col in [
        ("olist_orders", "order_id"),
        ("olist_customers", "customer_id"),
        ("olist_products", "product_id"),
        ("olist_sellers", "seller_id"),
        ("olist_order_reviews", "review_id"),
    ]:
        values = column(dataset, table, col)
        assert len(set(values)) == len(values), (table, col)


# -- determinism -------------------------------------------------------------------------------


def test_same_seed_same_tables_other_seed_other_tables(dataset):
    again = og.generate(seed=SEED, orders=ORDERS)
    assert again == dataset
    for name in dataset.tables:
        assert again.tables[name].equals(dataset.tables[name]), name
    other = og.generate(seed=SEED + 1, orders=ORDERS)
    for name in dataset.tables:
        if name == "product_category_name_translation":
            assert other.tables[name].equals(dataset.tables[name])
        else:
            assert not other.tables[name].equals(dataset.tables[name]), name


def test_csv_is_byte_identical_for_the_same_seed(dataset, tmp_path):
    first = og.write_csv(dataset, tmp_path / "a")
    second = og.write_csv(og.generate(seed=SEED, orders=ORDERS), tmp_path / "b")
    other = og.write_csv(og.generate(seed=SEED + 1, orders=ORDERS), tmp_path / "c")
    assert set(first) == set(FILE_SOURCES)
    for name, path in first.items():
        assert path.name == f"{name}.csv"
        assert path.read_bytes() == second[name].read_bytes(), name
    assert first["olist_orders"].read_bytes() != other["olist_orders"].read_bytes()


def test_arguments_are_checked():
    with pytest.raises(ValueError):
        og.generate(seed=-1, orders=10)
    with pytest.raises(ValueError):
        og.generate(seed=1, orders=0)


# -- referential integrity ---------------------------------------------------------------------


def test_referential_integrity(dataset):
    order_ids = as_set(dataset, "olist_orders", "order_id")
    customer_ids = as_set(dataset, "olist_customers", "customer_id")
    assert as_set(dataset, "olist_orders", "customer_id") <= customer_ids
    assert len(customer_ids) == ORDERS, "one customer_id per order, as in Olist"
    assert as_set(dataset, "olist_order_items", "order_id") == order_ids
    assert as_set(dataset, "olist_order_items", "product_id") <= as_set(
        dataset, "olist_products", "product_id"
    )
    assert as_set(dataset, "olist_order_items", "seller_id") <= as_set(
        dataset, "olist_sellers", "seller_id"
    )
    assert as_set(dataset, "olist_order_payments", "order_id") == order_ids
    assert as_set(dataset, "olist_order_reviews", "order_id") <= order_ids
    categories = as_set(dataset, "olist_products", "product_category_name") - {None}
    translated = as_set(dataset, "product_category_name_translation", "product_category_name")
    assert categories <= translated
    assert len(translated) >= 65
    zips = as_set(dataset, "olist_customers", "customer_zip_code_prefix") | as_set(
        dataset, "olist_sellers", "seller_zip_code_prefix"
    )
    assert zips == as_set(dataset, "olist_geolocation", "geolocation_zip_code_prefix")


def test_every_product_and_seller_is_used(dataset):
    items = dataset.tables["olist_order_items"]
    assert set(items["product_id"].to_pylist()) == as_set(dataset, "olist_products", "product_id")
    assert set(items["seller_id"].to_pylist()) == as_set(dataset, "olist_sellers", "seller_id")


def test_item_and_payment_numbering(dataset):
    for table, key in [
        ("olist_order_items", "order_item_id"),
        ("olist_order_payments", "payment_sequential"),
    ]:
        df = dataset.tables[table].select(["order_id", key]).to_pandas()
        df[key] = df[key].astype(int)
        for _, group in df.groupby("order_id")[key]:
            assert sorted(group) == list(range(1, len(group) + 1)), table


# -- personal data -----------------------------------------------------------------------------


def test_customers_carry_valid_pt_br_personal_data(dataset):
    customers = dataset.tables["olist_customers"].to_pandas()
    assert customers["customer_cpf"].map(pt_br.is_valid_cpf).all()
    phone = re.compile(r"^\+55 \(\d{2}\) 9\d{4}-\d{4}$")
    email = re.compile(r"^[a-z0-9_.]+@[a-z.]+\.[a-z]+$")
    for row in customers.itertuples():
        assert phone.match(row.customer_phone), row.customer_phone
        assert pt_br.ddd_of_phone(row.customer_phone) in pt_br.STATE_BY_UF[row.customer_state].ddds
        assert email.match(row.customer_email), row.customer_email
        lo, hi = pt_br.STATE_BY_UF[row.customer_state].zip_range
        assert lo <= int(row.customer_zip_code_prefix) <= hi
    # a person keeps the same CPF across the orders of the same customer_unique_id
    per_person = customers.groupby("customer_unique_id")["customer_cpf"].nunique()
    assert (per_person == 1).all()
    assert customers.groupby("customer_cpf")["customer_unique_id"].nunique().max() == 1


# -- money and time ----------------------------------------------------------------------------


def test_payments_sum_to_price_plus_freight(dataset):
    items = dataset.tables["olist_order_items"].to_pylist()
    payments = dataset.tables["olist_order_payments"].to_pylist()
    due: dict[str, Decimal] = {}
    for item in items:
        amount = Decimal(item["price"]) + Decimal(item["freight_value"])
        due[item["order_id"]] = due.get(item["order_id"], Decimal(0)) + amount
    paid: dict[str, Decimal] = {}
    for pay in payments:
        paid[pay["order_id"]] = paid.get(pay["order_id"], Decimal(0)) + Decimal(
            pay["payment_value"]
        )
        assert pay["payment_type"] in vocab.PAYMENT_TYPES
        installments = int(pay["payment_installments"])
        assert 1 <= installments <= 10
        if pay["payment_type"] != "credit_card":
            assert installments == 1
    assert paid == due


def ts(text: str | None) -> datetime | None:
    return None if text is None else datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def test_order_timestamps_are_consistent(dataset):
    first, last = datetime(2016, 9, 4), datetime(2018, 10, 18)
    for order in dataset.tables["olist_orders"].to_pylist():
        purchase = ts(order["order_purchase_timestamp"])
        approved = ts(order["order_approved_at"])
        carrier = ts(order["order_delivered_carrier_date"])
        delivered = ts(order["order_delivered_customer_date"])
        estimated = ts(order["order_estimated_delivery_date"])
        assert first <= purchase < last
        assert estimated > purchase
        status = order["order_status"]
        if status == "delivered":
            assert purchase < approved <= carrier <= delivered
        if status in ("canceled", "unavailable", "created", "approved", "invoiced", "processing"):
            assert carrier is None and delivered is None
        if status == "shipped":
            assert purchase < approved <= carrier and delivered is None
        if status == "created":
            assert approved is None
        if approved is not None:
            assert approved > purchase


def test_purchases_grow_over_time(dataset):
    months = pc.utf8_slice_codeunits(
        dataset.tables["olist_orders"]["order_purchase_timestamp"], 0, 4
    ).to_pylist()
    per_year = {year: months.count(year) for year in ("2016", "2017", "2018")}
    assert per_year["2016"] < per_year["2017"] / 20
    assert per_year["2017"] < per_year["2018"] * 1.3


def test_shipping_limit_after_purchase(dataset):
    orders = {o["order_id"]: o for o in dataset.tables["olist_orders"].to_pylist()}
    for item in dataset.tables["olist_order_items"].to_pylist():
        assert ts(item["shipping_limit_date"]) > ts(
            orders[item["order_id"]]["order_purchase_timestamp"]
        )


def test_reviews(dataset):
    reviews = dataset.tables["olist_order_reviews"].to_pandas()
    assert 0.97 < len(reviews) / ORDERS < 1.0
    assert set(reviews["review_score"]) <= {"1", "2", "3", "4", "5"}
    assert 0.3 < reviews["review_comment_message"].notna().mean() < 0.5
    created = reviews["review_creation_date"].map(ts)
    answered = reviews["review_answer_timestamp"].map(ts)
    assert (answered > created).all()


# -- realism at scale --------------------------------------------------------------------------


def shares(table: pa.Table, name: str) -> dict[str, float]:
    counts = table[name].value_counts().to_pylist()
    return {c["values"]: c["counts"] / table.num_rows for c in counts}


def test_row_count_relations_at_100k_orders(big):
    t = big.tables
    n = 100_000
    assert t["olist_orders"].num_rows == n
    assert t["olist_customers"].num_rows == n
    assert 1.10 < t["olist_order_items"].num_rows / n < 1.18
    assert 1.01 < t["olist_order_payments"].num_rows / n < 1.08
    assert 0.985 < t["olist_order_reviews"].num_rows / n < 0.997
    assert 31_000 < t["olist_products"].num_rows < 34_000
    assert 2_800 < t["olist_sellers"].num_rows < 3_400
    assert t["product_category_name_translation"].num_rows == len(vocab.CATEGORIES)
    unique_people = len(pc.unique(t["olist_customers"]["customer_unique_id"]))
    assert 0.95 < unique_people / n < 0.98
    zips = len(pc.unique(t["olist_geolocation"]["geolocation_zip_code_prefix"]))
    assert 1.0 <= t["olist_geolocation"].num_rows / zips <= 3.0


def test_distributions_at_100k_orders(big):
    t = big.tables
    status = shares(t["olist_orders"], "order_status")
    assert status["delivered"] == pytest.approx(0.965, abs=0.005)
    assert set(status) == {s for s, _ in vocab.ORDER_STATUSES}
    payment = shares(t["olist_order_payments"], "payment_type")
    assert payment["credit_card"] == pytest.approx(0.74, abs=0.02)
    assert payment["boleto"] == pytest.approx(0.19, abs=0.015)
    assert payment["voucher"] == pytest.approx(0.055, abs=0.01)
    assert payment["debit_card"] == pytest.approx(0.015, abs=0.005)
    score = shares(t["olist_order_reviews"], "review_score")
    for value, share in vocab.REVIEW_SCORES.items():
        assert score[str(value)] == pytest.approx(share, abs=0.015), value
    state = shares(t["olist_customers"], "customer_state")
    assert state["SP"] == pytest.approx(0.42, abs=0.01)
    assert shares(t["olist_sellers"], "seller_state")["SP"] > 0.5
    price = pc.cast(t["olist_order_items"]["price"], pa.float64()).to_numpy()
    assert 60 < np.median(price) < 95
    assert price.max() > 1_000
    freight = pc.cast(t["olist_order_items"]["freight_value"], pa.float64()).to_numpy()
    assert 10 < np.median(freight) < 25 and freight.min() >= 0
    geo = t["olist_geolocation"].to_pandas()
    for uf, rows in geo.groupby("geolocation_state"):
        lat_min, lat_max, lng_min, lng_max = pt_br.state_bbox(uf)
        lat, lng = rows["geolocation_lat"].astype(float), rows["geolocation_lng"].astype(float)
        assert lat.between(lat_min, lat_max).all() and lng.between(lng_min, lng_max).all(), uf


# -- CSV ---------------------------------------------------------------------------------------


def test_csv_header_and_round_trip(dataset, tmp_path):
    paths = og.write_csv(dataset, tmp_path)
    for name, path in paths.items():
        header = path.read_text(encoding="utf-8").split("\n", 1)[0]
        assert header == ",".join(FILE_SOURCES[name].column_names), name
        convert = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in FILE_SOURCES[name].column_names},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        table = pacsv.read_csv(path, convert_options=convert)
        assert table.schema.equals(FILE_SOURCES[name].raw_schema()), name
        assert table.equals(dataset.tables[name]), name
        assert og.read_csv(path, name).equals(dataset.tables[name]), name


def test_csv_quotes_commas_and_quotes(tmp_path):
    table = pa.table(
        {"product_category_name": ["a,b", 'say "hi"'], "product_category_name_english": ["x", "y"]},
        schema=FILE_SOURCES["product_category_name_translation"].raw_schema(),
    )
    data = og.OlistDataset(0, 0, {"product_category_name_translation": table})
    path = og.write_csv(data, tmp_path)["product_category_name_translation"]
    text = path.read_text(encoding="utf-8")
    assert '"a,b"' in text and '"say ""hi"""' in text
    assert og.read_csv(path, "product_category_name_translation").equals(table)


def test_the_generator_draws_statuses_from_the_catalog_vocabulary() -> None:
    from mlsec_platform.catalog.datasets import ORDER_STATUSES

    assert [s for s, _ in vocab.ORDER_STATUSES] == list(ORDER_STATUSES)


def test_read_csv_parses_as_the_gateway_does(tmp_path):
    path = tmp_path / "product_category_name_translation.csv"
    path.write_bytes(b"product_category_name,product_category_name_english\na,b,c\n")
    with pytest.raises(Rejected, match="^malformed CSV: "):
        og.read_csv(path, "product_category_name_translation")
