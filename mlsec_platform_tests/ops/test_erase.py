"""`mlsec erase` end to end on the demo's stack (20,000 generated orders through the gateway):
one customer erased, then searched for everywhere, by every means a reader has.

Before the erasure the subject is also put where only odd paths leave copies: an upload the
gateway refused (quarantine), a re-sent batch archived to Cold, and a broker that has read
them (its snapshot cache) with a cursor in hand.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from broker_api.server import BackgroundBroker
from mlsec_platform.catalog.columns import PEOPLE
from mlsec_platform.cli import main
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.ops.erase import ErasureBusy, erase_subject, stack_instance
from mlsec_platform.ops.reveal import TokensUnknown, reveal_as_operator
from mlsec_platform.privacy.erasure.receipt import (
    ReceiptForged,
    ReceiptMalformed,
    public_keys,
    verify_with_public_keys,
)
from mlsec_platform.settings import Zone
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.helpers import (
    audit_events,
    https_client,
    operator_vault,
    session_client,
)
from mlsec_platform_tests.ops.erasure_subject import (
    ANALYST,
    FRAUD,
    OFFICER,
    PERSON,
    REASON,
    SUPPORT,
    archive_a_resent_batch,
    broker_token,
    pick_subject,
    quarantine_a_refused_upload,
    query,
    raw_table,
)
from mlsec_platform_tests.ops.subject_search import Auditor, shown


@pytest.fixture(scope="module")
def broker(settings, endpoints):
    with (
        BackgroundBroker(settings, PortAllocator().take()) as running,
        https_client(running.url, session_client(settings).tls) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def erased(settings, endpoints, demo_output, broker) -> dict:
    subject = pick_subject(settings)
    quarantined = quarantine_a_refused_upload(settings, endpoints, subject["rows"])
    archived = archive_a_resent_batch(settings, subject["rows"])
    officer = broker_token(settings, endpoints, **OFFICER)
    mine = [{"column": "customer_id", "op": "in", "value": subject["customer_ids"]}]
    before = query(
        broker, officer, dataset="silver/customers", columns=["customer_id"], filters=mine
    )
    assert before["status"] == 200 and before["row_count"] == 2, before  # cached by the broker
    page = query(broker, officer, dataset="gold/fact_order_item", columns=["order_id"], limit=5)
    assert page["next_cursor"]
    auditor = Auditor(settings, endpoints)  # the searches below can find the subject
    held = auditor.in_objects(list(subject["needles"]))
    zones = {"raw", "silver", "gold", "cold", "landing", "tokens"}
    assert {p.split("/")[0] for p in held} >= zones, held
    assert {"gold.fact_order_item", "features.customer_rfm_online"} <= set(
        auditor.in_warehouse(list(subject["needles"]))
    )
    result = CliRunner().invoke(
        main, ["erase", "--subject", f"customer_cpf={subject['cpf']}", "--reason", REASON]
    )
    assert result.exit_code == 0, result.output
    path = Path(re.search(r"Signed receipt: (\S+)", result.output)[1])
    return {
        **subject,
        "output": result.output,
        "receipt_path": path,
        "receipt": json.loads(path.read_bytes())["receipt"],
        "quarantine_id": quarantined,
        "archived_batch": archived,
        "pinned": {"silver/customers": before["lineage"]["delta_version"]},
        "cursor": page["next_cursor"],
        "officer": officer,  # a cursor is bound to the subject it was issued to
    }


def test_the_receipt_says_what_was_removed_where_and_names_nobody(erased):
    receipt, needles = erased["receipt"], erased["needles"]
    assert receipt["found"] is True and receipt["reason"] == REASON
    assert receipt["requested_by"] == "operator:operator"
    assert receipt["subject"]["kind"] == "customer_cpf"
    assert receipt["subject"]["keyed_hash"].startswith("vault:v1:")
    removed = {e["place"]: e for e in receipt["removed"]}
    for place in (
        "raw/olist_customers", "raw/olist_orders", "raw/olist_order_reviews",
        "raw/events_order_status", "cold/olist_customers", "silver/customers",
        "silver/order_reviews", "gold/dim_customer", "gold/fact_order_item",
        "features/customer_rfm", "warehouse/gold.fact_order_item",
        "warehouse/features.customer_rfm_online", f"tokens/{PEOPLE}/entries",
    ):  # fmt: skip
        assert place in removed, place
    vault = removed[f"tokens/{PEOPLE}/entries"]
    # The person's token and one per identifier (name, CPF, e-mail, phone, address...).
    assert vault["rows_removed"] >= len(erased["tokens"]) and vault["log_entries_removed"] >= 1
    raw = removed["raw/olist_customers"]
    assert raw["rows_removed"] == 2 and raw["version_after"] > raw["version_before"]
    assert raw["files_removed"] >= 1 and raw["log_entries_removed"] >= 1
    assert removed["cold/olist_customers"]["rows_removed"] == 2
    kept = [p for p in removed if p.startswith("quarantine/")]
    assert any(erased["quarantine_id"] in p for p in kept), kept
    assert any(p.startswith("landing/processed/olist_customers/") for p in removed)
    assert {p for p, e in removed.items() if e["kind"] != "object"} <= set(receipt["searched"])
    text = erased["receipt_path"].read_text()
    assert not [what for value, what in needles.items() if value in text]
    assert erased["cpf"] not in erased["output"]


def test_the_receipt_verifies_and_any_changed_byte_does_not(erased, tmp_path, settings, endpoints):
    path = erased["receipt_path"]
    verified = CliRunner().invoke(main, ["erase", "verify", str(path)])
    assert verified.exit_code == 0 and "verified" in verified.output, verified.output
    data = path.read_bytes()
    for position in (0, len(data) // 3, data.index(b"rows_removed") + 15, len(data) - 20):
        changed = tmp_path / f"changed-{position}.json"
        changed.write_bytes(data[:position] + bytes([data[position] ^ 0x04]) + data[position + 1 :])
        refused = CliRunner().invoke(main, ["erase", "verify", str(changed)])
        assert refused.exit_code == 1, (position, refused.output)
        assert refused.output.startswith(f"Error: {changed}: "), refused.output
    keys = public_keys(operator_vault(settings, endpoints))  # the key's public halves
    assert verify_with_public_keys(data, keys)["id"] == erased["receipt"]["id"]
    for position in range(len(data)):  # every byte, offline
        flipped = data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]
        with pytest.raises((ReceiptForged, ReceiptMalformed)):
            verify_with_public_keys(flipped, keys)


def test_no_object_in_any_zone_holds_the_subject(erased, settings, endpoints):
    needles = erased["needles"]
    keys = {
        **{i: "customer_id" for i in erased["customer_ids"]},
        **{o: "order_id" for o in erased["order_ids"]},
    }
    found = Auditor(settings, endpoints).in_objects([*needles, *keys])
    assert not found, shown(found, {**needles, **keys})


def test_no_delta_version_still_readable_holds_the_subject(erased, settings, endpoints):
    needles = erased["needles"]
    found, read = Auditor(settings, endpoints).in_versions(list(needles))
    assert read > 20  # the tables' remaining versions were read, not skipped
    assert not found, shown(found, needles)


def test_the_warehouse_online_store_and_audit_log_hold_nothing(erased, settings, endpoints):
    needles = erased["needles"]
    found = Auditor(settings, endpoints).in_warehouse(list(needles))
    assert not found, shown(found, needles)


def test_no_broker_endpoint_returns_the_subject(erased, broker, settings, endpoints):
    token = erased["person_token"]
    ids, orders = erased["customer_ids"], erased["order_ids"]
    asks = {
        "fraud": [
            ("silver/customers", "customer_id", ids),
            ("silver/orders", "customer_id", ids),
            ("silver/order_items", "order_id", orders),
            ("silver/order_payments", "order_id", orders),
            ("silver/order_reviews", "order_id", orders),
            ("silver/order_events", "order_id", orders),
            ("gold/fact_order_item", "customer_token", [token]),
        ],
        "analyst": [
            ("gold/dim_customer", "customer_token", [token]),
            ("gold/fact_order_item", "order_id", orders),
            ("features/customer_rfm", "customer_token", [token]),
        ],
        "support": [("silver/customers", "customer_token", [token])],
    }
    claims = {"fraud": FRAUD, "analyst": ANALYST, "support": SUPPORT}
    for role, queries in asks.items():
        who = broker_token(settings, endpoints, **claims[role])
        for dataset, column, values in queries:
            answer = query(
                broker,
                who,
                dataset=dataset,
                columns=[column],
                filters=[{"column": column, "op": "in", "value": values}],
            )
            assert (answer["status"], answer["row_count"]) == (200, 0), (role, dataset, answer)
    officer = broker_token(settings, endpoints, **OFFICER)
    revealed = query(
        broker,
        officer,
        dataset="silver/customers",
        columns=["customer_id", "email_token"],
        filters=[{"column": "customer_id", "op": "in", "value": ids}],
        reveal={"columns": ["email_token"], "reason": "checking an erasure worked"},
    )
    assert (revealed["status"], revealed["row_count"]) == (200, 0), revealed

    auth = {"Authorization": f"Bearer {officer}"}
    vector = broker.get(
        "/feature/vector", params={"group": "customer_rfm", "entity": token}, headers=auth
    ).json()
    assert vector["vectors"] == [] and vector["missing"] == [token], vector
    historical = broker.post(
        "/feature/historical",
        headers=auth,
        json={
            "group": "customer_rfm",
            "features": ["frequency", "monetary"],
            "entities": [
                {"customer_token": token, "event_timestamp": datetime.now(UTC).isoformat()}
            ],
        },
    ).json()
    assert [(r["frequency"], r["monetary"]) for r in historical["rows"]] == [(None, None)]


def test_the_subjects_tokens_reveal_nothing(erased, settings):
    """The operator's reveal (and the broker's, which reads the same vault) finds none."""
    for token in erased["tokens"]:
        with pytest.raises(TokensUnknown):
            reveal_as_operator(settings, [token], PEOPLE, "checking an erasure worked", print)


def test_versions_before_the_erasure_are_gone_pinned_or_by_cursor(
    erased, broker, settings, endpoints
):
    officer = erased["officer"]
    pinned = query(
        broker,
        officer,
        dataset="silver/customers",
        columns=["customer_id"],
        version=erased["pinned"]["silver/customers"],
    )
    assert pinned["status"] == 410 and "older than an erasure" in pinned["reason"], pinned
    resumed = query(
        broker,
        officer,
        dataset="gold/fact_order_item",
        columns=["order_id"],
        limit=5,
        cursor=erased["cursor"],
    )
    assert resumed["status"] == 410, resumed
    latest = query(broker, officer, dataset="silver/customers", columns=["customer_id"], limit=1)
    assert (
        latest["status"] == 200
        and latest["lineage"]["delta_version"] > erased["pinned"]["silver/customers"]
    )
    assert latest["lineage"]["run_id"] == ""  # the erasure's own materialization, not a run


def test_the_audit_log_records_the_erasure_as_the_operator(erased, settings, endpoints):
    from mlsec_platform.stack.bootstrap import BootstrapCredentials

    dsn = {**BootstrapCredentials.load(settings).postgres_dsn(endpoints), "dbname": "warehouse"}
    ids = {erased["receipt"]["id"]}
    started = [e for e in audit_events(dsn, "erasure.started") if e["id"] in ids]
    done = [e for e in audit_events(dsn, "erasure") if e["id"] in ids]
    steps = [e for e in audit_events(dsn, "erasure.removed") if e["id"] in ids]
    assert len(started) == len(done) == 1
    assert done[0]["found"] and done[0]["subject"] == erased["receipt"]["subject"]
    assert len(steps) == len(erased["receipt"]["removed"])
    digest = hashlib.sha256(erased["receipt_path"].read_bytes()).hexdigest()
    assert done[0]["receipt_sha256"] == digest
    with psycopg2.connect(**dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT actor FROM audit.events WHERE event_type = 'secret.read' "
            "AND payload->>'path' = 'transit/decrypt/token-index' AND payload->>'for' = 'erasure'"
        )
        unwrapped = cur.fetchall()
        cur.execute(
            "SELECT DISTINCT actor FROM audit.events WHERE event_type = 'secret.read' "
            "AND payload->>'path' = 'mlsec/s3/eraser'"
        )
        eraser_keys = cur.fetchall()
    conn.close()
    assert unwrapped == [("operator:operator",)]  # the index key, on the operator's token
    # The token vault's deleter: its key read by the erasure alone, never by a workload.
    assert eraser_keys == [("operator:operator",)]


def test_erasing_again_finds_nothing_and_says_so(erased, tmp_path):
    receipt = tmp_path / "again.json"
    again = CliRunner().invoke(
        main,
        [
            "erase",
            "--subject",
            f"customer_cpf={erased['cpf']}",
            "--reason",
            REASON,
            "--receipt",
            str(receipt),
        ],
    )
    assert again.exit_code == 0 and "Nothing found" in again.output, again.output
    body = json.loads(receipt.read_bytes())["receipt"]
    assert body["found"] is False and body["removed"] == []
    assert body["subject"] == erased["receipt"]["subject"]  # the same person, by keyed hash
    assert CliRunner().invoke(main, ["erase", "verify", str(receipt)]).exit_code == 0


def test_an_erasure_waits_for_a_run_that_rewrites_the_curated_zones(erased, settings):
    automation = dg.DagsterRun(
        job_name="__ASSET_JOB",  # what the automation sensor launches
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        asset_selection=frozenset({dg.AssetKey(["silver", "customers"])}),
    )
    with stack_instance(settings) as instance:
        instance.add_run(automation)
        try:
            with pytest.raises(ErasureBusy, match=automation.run_id):
                erase_subject(settings, f"customer_cpf={erased['cpf']}", REASON, instance, print)
        finally:
            instance.report_run_failed(automation)


def test_a_value_two_people_share_erases_nobody(erased, settings):
    customers = raw_table(
        build_resources(settings)["lake_lifecycle"], "olist_customers"
    ).to_pylist()
    people = collections.defaultdict(set)
    for row in customers:
        people[row["customer_name"]].add(row[PERSON])
    shared = next(name for name, persons in sorted(people.items()) if len(persons) == 2)
    refused = CliRunner().invoke(
        main, ["erase", "--subject", f"customer_name={shared}", "--reason", REASON]
    )
    assert refused.exit_code != 0
    assert "belongs to 2 people" in str(refused.exception or refused.output)
    assert "(customer_id or customer_unique_id)" in str(refused.exception or refused.output)
    after = raw_table(build_resources(settings)["lake_lifecycle"], "olist_customers").to_pylist()
    assert {r[PERSON] for r in after if r["customer_name"] == shared} == people[shared]


def test_a_bad_subject_is_refused_before_anything_logs_in():
    refused = CliRunner().invoke(main, ["erase", "--subject", "passport=X", "--reason", REASON])
    assert refused.exit_code == 2 and "unknown subject kind 'passport'" in refused.output
    missing = CliRunner().invoke(main, ["erase", "--subject", "customer_cpf=1"])
    assert missing.exit_code == 2 and "--reason" in missing.output


def test_a_token_two_people_share_stays_with_the_other(erased, settings):
    """Erasing one of two people with the same name: their own tokens are forgotten, the
    name's token stays in the vault and still reveals for the other person's row."""
    resources = build_resources(settings)
    customers = raw_table(resources["lake_lifecycle"], "olist_customers").to_pylist()
    people = collections.defaultdict(set)
    for row in customers:
        people[row["customer_name"]].add(row[PERSON])
    name = next(n for n, persons in sorted(people.items()) if len(persons) == 2)
    gone, kept = sorted(people[name])
    ids = {p: {r["customer_id"] for r in customers if r[PERSON] == p} for p in (gone, kept)}
    pipeline = resources["lake_pipeline"]
    silver = (
        DeltaTable(
            pipeline.table_uri(Zone.SILVER, "customers"), storage_options=pipeline.storage_options()
        )
        .to_pyarrow_table()
        .to_pylist()
    )
    row_of = {p: next(r for r in silver if r["customer_id"] in ids[p]) for p in ids}
    assert row_of[gone]["name_token"] == row_of[kept]["name_token"]  # one value, one token

    done = CliRunner().invoke(main, ["erase", "--subject", f"{PERSON}={gone}", "--reason", REASON])
    assert done.exit_code == 0, done.output
    shared = row_of[kept]["name_token"]
    assert reveal_as_operator(settings, [shared], PEOPLE, "the other person", print) == [name]
    with pytest.raises(TokensUnknown):
        reveal_as_operator(settings, [row_of[gone]["cpf_token"]], PEOPLE, "erased", print)


def test_the_next_curated_run_rebuilds_what_the_erasure_rewrote(erased, settings, endpoints):
    """An erasure rewrites whole tables and cuts their history, so the next `curated` run
    cannot read what changed since its last commit: the RFM features rebuild and the warehouse
    loads the fact table and their online store whole (no change by keys from a feed it cannot
    read), and the subject stays gone. Last in the module: the run moves every table's version."""
    from mlsec_platform_tests.curated_data import run_curated

    run = run_curated(build_resources(settings), dg.DagsterInstance.ephemeral())
    assert run.success, [e.message for e in run.all_events if e.is_failure]
    made = {
        e.event_specific_data.materialization.asset_key.to_user_string(): {
            k: v.value for k, v in e.event_specific_data.materialization.metadata.items()
        }
        for e in run.get_asset_materialization_events()
    }
    assert made["features/customer_rfm"]["write_mode"] == "overwrite"
    assert not made["features/customer_rfm"]["incremental"]
    for name in ("fact_order_item", "customer_rfm_online"):
        assert "copy" in made[f"warehouse/{name}"]["seconds"], name
    found = Auditor(settings, endpoints).in_warehouse(list(erased["needles"]))
    assert not found, shown(found, erased["needles"])
