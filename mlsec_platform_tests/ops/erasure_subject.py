"""The data subject the erasure tests erase, picked from the demo's Raw, and the copies of them
the tests add before (a refused upload kept in quarantine, a batch archived to Cold); broker
tokens of several roles and a query helper."""

from __future__ import annotations

import collections
import uuid

import pyarrow as pa
from deltalake import DeltaTable

from broker_api.identity import issue_broker_token
from mlsec_platform.catalog.datasets import CUSTOMERS
from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.defs.raw import files as file_connector
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.gateway.server import BackgroundGateway
from mlsec_platform.ops.erase import stack_instance
from mlsec_platform.settings import Zone
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform.storage.raw_writer import Lineage, commit_raw_batch
from mlsec_platform_tests.helpers import (
    https_client,
    operator_vault,
    session_client,
    upload_token,
)

PERSON = CUSTOMERS.person.from_column  # customer_unique_id
IDENTIFIERS = (
    "customer_cpf",
    "customer_email",
    "customer_name",
    "customer_phone",
    "customer_street_address",
)
REASON = "LGPD art. 18 request 2026-117"


def raw_table(lake, name: str) -> pa.Table:
    uri = lake.table_uri(Zone.RAW, name)
    return DeltaTable(uri, storage_options=lake.storage_options()).to_pyarrow_table()


def pick_subject(settings) -> dict:
    """A person with two orders, one reviewed, whose CPF, e-mail, name and phone nobody else
    has (so finding one of them anywhere is finding them)."""
    resources = build_resources(settings)
    lake = resources["lake_lifecycle"]
    customers = raw_table(lake, "olist_customers").to_pylist()
    orders = raw_table(lake, "olist_orders").to_pylist()
    reviewed = {r["order_id"] for r in raw_table(lake, "olist_order_reviews").to_pylist()}
    counts = {c: collections.Counter(r[c] for r in customers) for c in IDENTIFIERS}
    by_person = collections.defaultdict(list)
    for row in customers:
        by_person[row[PERSON]].append(row)
    order_of = {o["customer_id"]: o["order_id"] for o in orders}
    for _, rows in sorted(by_person.items()):
        unique = all(counts[c][rows[0][c]] == len(rows) for c in IDENTIFIERS)
        order_ids = {order_of[r["customer_id"]] for r in rows if r["customer_id"] in order_of}
        if len(rows) == 2 and unique and len(order_ids) == 2 and order_ids & reviewed:
            break
    else:
        raise AssertionError("no customer fits")
    pipeline = resources["lake_pipeline"]
    silver = DeltaTable(
        pipeline.table_uri(Zone.SILVER, "customers"), storage_options=pipeline.storage_options()
    ).to_pyarrow_table()
    ids = {r["customer_id"] for r in rows}
    tokenized = [c.name for c in CUSTOMERS.dataset.columns if c.tokenized]
    tokens = {r[c]: c for r in silver.to_pylist() if r["customer_id"] in ids for c in tokenized}
    assert len(tokens) == len(tokenized), "the subject is in Silver before the erasure"
    values = {rows[0][c]: c.removeprefix("customer_") for c in IDENTIFIERS}
    return {
        "rows": rows,
        "cpf": rows[0]["customer_cpf"],
        "customer_ids": sorted(ids),
        "order_ids": sorted(order_ids),
        "person_token": next(t for t, c in tokens.items() if c == CUSTOMERS.person.name),
        "tokens": sorted(tokens),
        #: value -> what it is, for messages that print no personal data
        "needles": {**values, **{t: f"{c} (token)" for t, c in tokens.items()}},
    }


def broker_token(settings, endpoints, **claims) -> str:
    return issue_broker_token(
        operator_vault(settings, endpoints),
        subject=f"erase-test-{uuid.uuid4().hex[:8]}",
        ttl_seconds=900,
        certificate=session_client(settings).pem,
        **claims,
    )


OFFICER = dict(
    groups=["privacy-office"],
    project="olist-br",
    purpose="customer_support",
    clearance="restricted",
    entitlements=["reveal"],
)
FRAUD = dict(
    groups=["fraud"], project="olist-br", purpose="fraud_prevention", clearance="restricted"
)
ANALYST = dict(
    groups=["analysts"], project="olist-br", purpose="analytics", clearance="confidential"
)
SUPPORT = dict(
    groups=["support"], project="olist-br", purpose="customer_support", clearance="confidential"
)


def quarantine_a_refused_upload(settings, endpoints, rows: list[dict]) -> str:
    """An upload of the subject's rows under a wrong header: refused, its payload kept."""
    contract = FILE_SOURCES["olist_customers"]
    header = ",".join(["customer_ref", *contract.column_names[1:]])
    lines = [",".join(f'"{r[c]}"' for c in contract.column_names) for r in rows]
    token = upload_token(settings, endpoints, "upload:olist_customers")
    with (
        BackgroundGateway(settings, PortAllocator().take()) as running,
        https_client(running.url, session_client(settings).tls) as gateway,
    ):
        answer = gateway.put(
            "/v1/files/olist_customers",
            content="\n".join([header, *lines]).encode() + b"\n",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
        )
    assert answer.status_code == 422, answer.text
    return answer.json()["quarantine_id"]


def archive_a_resent_batch(settings, rows: list[dict]) -> str:
    """The subject's rows sent again as a batch of their own, then archived to Cold."""
    lake = build_resources(settings)["lake_connector"]
    contract = FILE_SOURCES["olist_customers"]
    batch = f"resent-{uuid.uuid4().hex[:12]}"
    table = pa.Table.from_pylist(
        [{c: r[c] for c in contract.column_names} for r in rows], schema=contract.raw_schema()
    )
    received = "2020-01-01T00:00:00+00:00"
    lineage = Lineage(
        "olist_customers",
        file_connector.CONNECTOR,
        file_connector.CONNECTOR_VERSION,
        batch,
        received,
        "f" * 64,
    )
    commit_raw_batch(lake, table, lineage, run_id=None)
    from mlsec_platform.definitions import defs

    config = {"retention_days": 0, "sources": ["olist_customers"], "batch_ids": [batch]}
    with stack_instance(settings) as instance:
        result = (
            defs()
            .resolve_job_def("archive_raw")
            .execute_in_process(
                instance=instance, run_config={"ops": {"archive_raw_batches": {"config": config}}}
            )
        )
    assert result.success
    return batch


def query(broker, token: str, **body) -> dict:
    answer = broker.post("/query", json=body, headers={"Authorization": f"Bearer {token}"})
    return {"status": answer.status_code, **answer.json()}
