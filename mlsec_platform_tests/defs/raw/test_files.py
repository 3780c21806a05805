"""100k orders of generated files: gateway -> landing -> sensor -> Raw, exactly once."""

import hashlib

import dagster as dg
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.defs.raw.files import RAW_FILE_ASSETS
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.ops.drain import drain_landing
from mlsec_platform.sample_data.olist import generate, write_csv
from mlsec_platform.settings import Zone
from mlsec_platform.storage.raw_writer import LINEAGE_COLUMNS
from mlsec_platform_tests.helpers import s3_admin

ORDERS = 100_000


@pytest.fixture(scope="module")
def resources(settings, supervisor):
    return build_resources(settings)


@pytest.fixture(scope="module")
def ingested(gateway, uploader, resources, tmp_path_factory):
    dataset = generate(seed=7, orders=ORDERS)
    files = write_csv(dataset, tmp_path_factory.mktemp("olist"))
    batches = {}
    for source, path in files.items():
        response = gateway.put(f"/v1/files/{source}", content=path.read_bytes(), headers=uploader)
        assert response.status_code == 201, response.text
        batches[source] = response.json()["batch_id"]
    instance = dg.DagsterInstance.ephemeral()
    runs = drain_landing(instance, resources, echo=lambda _: None)
    return dataset, batches, instance, runs


def _raw_batch(resources, source: str, batch: str):
    lake = resources["lake_connector"]
    table = DeltaTable(lake.table_uri(Zone.RAW, source), storage_options=lake.storage_options())
    return table.to_pyarrow_dataset().to_table(filter=pc.field("_batch_id") == batch)


@pytest.mark.parametrize("source", list(FILE_SOURCES))
def test_every_generated_row_is_in_raw_exactly_once(source, ingested, resources):
    dataset, batches, _, _ = ingested
    raw = _raw_batch(resources, source, batches[source])
    expected = dataset.tables[source]
    assert raw.num_rows == expected.num_rows
    columns = FILE_SOURCES[source].column_names
    key = [(c, "ascending") for c in columns]
    assert raw.select(columns).sort_by(key).equals(expected.sort_by(key)), source
    for column in LINEAGE_COLUMNS:
        assert raw.column(column).null_count == 0, column
    assert set(raw.column("_connector").to_pylist()) == {"landing_files"}


def test_each_batch_run_shows_its_metadata_in_dagster(ingested):
    _, batches, instance, runs = ingested
    assert {r.partition for r in runs} >= set(batches.values())
    for source, batch in batches.items():
        [run] = [r for r in runs if r.partition == batch]
        record = instance.get_run_by_id(run.run_id)
        assert record.is_success and record.tags["mlsec/source"] == source
        assert record.tags["dagster/sensor_name"] == "landing_files_sensor"
        assert record.job_name == f"ingest_{source}"  # named, never __ASSET_JOB
        meta = run.metadata
        assert meta["rows"] > 0 and len(meta["sha256"]) == 64
        assert meta["connector_version"] == "1.0.0" and meta["delta_version"] >= 0
        assert meta["uploader"] == "uploader-1"


def test_landing_objects_move_to_processed_only_after_commit(ingested, supervisor, settings):
    _, batches, _, _ = ingested
    admin = s3_admin(supervisor, settings)
    bucket = settings.bucket(Zone.LANDING)
    for source, batch in batches.items():
        admin.head_object(Bucket=bucket, Key=f"processed/{source}/{batch}.csv")
        listing = admin.list_objects_v2(Bucket=bucket, Prefix=f"incoming/{source}/{batch}")
        assert "Contents" not in listing


def test_rerunning_a_batch_never_duplicates_rows(ingested, resources):
    _, batches, instance, _ = ingested
    source = "olist_order_items"
    before = _raw_batch(resources, source, batches[source]).num_rows
    result = dg.materialize(
        [RAW_FILE_ASSETS[source]],
        partition_key=batches[source],
        instance=instance,
        resources=resources,
    )
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["already_committed"].value is True
    assert _raw_batch(resources, source, batches[source]).num_rows == before


def test_the_same_file_uploaded_again_adds_nothing(
    ingested, gateway, uploader, resources, tmp_path
):
    dataset, batches, instance, _ = ingested
    files = write_csv(dataset, tmp_path)
    response = gateway.put(
        "/v1/files/olist_sellers", content=files["olist_sellers"].read_bytes(), headers=uploader
    )
    assert response.status_code == 201
    [run] = drain_landing(instance, resources, echo=lambda _: None)
    assert run.metadata["duplicate_of"] == batches["olist_sellers"]
    assert run.metadata["rows"] == 0


def test_a_landing_object_changed_after_acceptance_is_quarantined(
    gateway, uploader, resources, supervisor, settings
):
    body = b"seller_id,seller_zip_code_prefix,seller_city,seller_state\ntamper-1,01001,x,SP\n"
    batch = gateway.put("/v1/files/olist_sellers", content=body, headers=uploader).json()[
        "batch_id"
    ]
    admin = s3_admin(supervisor, settings)
    key = f"incoming/olist_sellers/{batch}.csv"
    head = admin.head_object(Bucket=settings.bucket(Zone.LANDING), Key=key)
    admin.put_object(
        Bucket=settings.bucket(Zone.LANDING),
        Key=key,
        Metadata=head["Metadata"],
        Body=body.replace(b"tamper-1", b"tamper-2"),
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("olist_sellers_batches", [batch])
    result = dg.materialize(
        [RAW_FILE_ASSETS["olist_sellers"]],
        partition_key=batch,
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    kept = admin.get_object(
        Bucket=settings.bucket(Zone.QUARANTINE), Key=f"connector/file/{batch}/payload"
    )["Body"].read()
    assert hashlib.sha256(kept).hexdigest() != head["Metadata"]["sha256"]
    assert "tamper-2" not in _raw_ids(resources)


def _raw_ids(resources) -> set[str]:
    lake = resources["lake_connector"]
    table = DeltaTable(
        lake.table_uri(Zone.RAW, "olist_sellers"), storage_options=lake.storage_options()
    )
    return set(table.to_pyarrow_table(columns=["seller_id"]).column(0).to_pylist())


def test_raw_holds_null_words_as_sent_only_an_empty_field_is_null(gateway, uploader, resources):
    """NA, NULL, nan, #N/A... are text a caller sent (a city may be called "NA"); Raw keeps
    them, and Silver's typing decides what they mean."""
    words = ["NULL", "NA", "nan", "#N/A", "null", "N/A"]
    header = ",".join(FILE_SOURCES["olist_sellers"].column_names)
    rows = "".join(f"nullword-{i},{w},{w},\n" for i, w in enumerate(words))
    response = gateway.put(
        "/v1/files/olist_sellers", content=f"{header}\n{rows}".encode(), headers=uploader
    )
    assert response.status_code == 201, response.text
    drain_landing(dg.DagsterInstance.ephemeral(), resources, echo=lambda _: None)
    raw = _raw_batch(resources, "olist_sellers", response.json()["batch_id"])
    got = sorted(raw.to_pylist(), key=lambda row: row["seller_id"])
    assert [r["seller_zip_code_prefix"] for r in got] == words
    assert [r["seller_city"] for r in got] == words
    assert [r["seller_state"] for r in got] == [None] * len(words)
