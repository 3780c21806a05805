"""The broker over real HTTP on real curated data: every policy dimension allowed and denied,
injection, token attacks, cursors, features, lineage against Dagster, one audit event each."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta

import dagster as dg
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker_api.client import BrokerClient, BrokerError
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.identities.tokens import ISSUER, issue_token
from mlsec_platform.ops.audit_verify import verify_audit_log
from mlsec_platform.privacy.tokenization import TOKEN_PATTERN
from mlsec_platform_tests.broker_api.conftest import bearer
from mlsec_platform_tests.helpers import audit_head, operator_vault

FACT = "gold/fact_order_item"
DIM = "gold/dim_customer"


def _query(http, token, **body):
    body.setdefault("dataset", FACT)
    body.setdefault("columns", ["order_id", "order_item_id", "price"])
    return http.post("/query", json=body, headers=bearer(token))


def _ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


# ---- policy dimensions ---------------------------------------------------------------------


def test_query_returns_a_page_with_lineage_equal_to_dagster(http, mint, curated) -> None:
    response = _query(http, mint("analyst"), limit=100)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["row_count"] == 100 and len(body["rows"]) == 100
    assert body["next_cursor"]
    event = curated.instance.get_latest_materialization_event(dg.AssetKey(list(CATALOG[FACT].asset_path)))
    mat = event.asset_materialization
    lineage = body["lineage"]
    assert lineage["asset_key"] == "gold/fact_order_item"
    assert lineage["run_id"] == event.run_id
    assert lineage["delta_version"] == mat.metadata["delta_version"].value
    upstream = {u["asset_key"]: u["delta_version"] for u in lineage["upstream"]}
    assert upstream == mat.metadata["lineage/inputs"].value
    assert body["policy"]["policy_ids"] and body["policy"]["policy_version"]
    assert response.headers["X-Request-ID"] == body["request_id"]


def test_purpose_is_checked_against_role_and_catalog(http, mint) -> None:
    wrong_role = _query(http, mint("analyst", purpose="customer_support"))
    assert wrong_role.status_code == 403 and "customer_support" in wrong_role.json()["reason"]
    # Person-level Silver is for support and fraud only (catalog), whatever the role grants.
    officer = mint("officer", purpose="analytics")
    denied = _query(http, officer, dataset="silver/customers", columns=["customer_id"])
    assert denied.status_code == 403 and "analytics" in denied.json()["reason"]
    allowed = _query(http, mint("officer"), dataset="silver/customers", columns=["customer_id"])
    assert allowed.status_code == 200, allowed.text


def test_default_deny_for_unknown_groups(http, mint) -> None:
    response = _query(http, mint("stranger"))
    assert response.status_code == 403
    assert "default-deny" in response.json()["reason"] or response.json()["decision_id"]


def test_clearance_masks_columns(http, mint) -> None:
    columns = ["customer_token", "customer_state", "first_purchase_at", "orders"]
    internal = _ok(_query(http, mint("analyst"), dataset=DIM, columns=columns, limit=50))
    confidential = _ok(_query(http, mint("analyst_conf"), dataset=DIM, columns=columns,
                              limit=50))  # fmt: skip
    masks = {c["name"]: c["mask"] for c in internal["columns"]}
    assert masks == {"customer_token": "keyed_hash", "customer_state": None,
                     "first_purchase_at": "truncate_date", "orders": None}  # fmt: skip
    assert all(r["customer_token"].startswith("h:") for r in internal["rows"])
    assert all(r["first_purchase_at"][8:19] == "01T00:00:00" for r in internal["rows"])
    assert all(TOKEN_PATTERN.fullmatch(r["customer_token"]) for r in confidential["rows"])
    assert all(c["mask"] is None for c in confidential["columns"])
    # Same rows, same order: the masked view is a function of the clear one.
    assert [r["orders"] for r in internal["rows"]] == [r["orders"] for r in confidential["rows"]]


def test_restricted_columns_are_redacted_below_restricted(http, mint) -> None:
    columns = ["customer_id", "name_token", "cpf_token"]
    support = _query(http, mint("support"), dataset="silver/customers", columns=columns).json()
    assert {r["name_token"] for r in support["rows"]} == {"***"}
    fraud = _query(http, mint("fraud"), dataset="silver/customers", columns=columns).json()
    assert all(TOKEN_PATTERN.fullmatch(r["cpf_token"]) for r in fraud["rows"])


def test_filter_on_a_masked_column_is_refused(http, mint) -> None:
    token = mint("analyst")
    response = _query(
        http,
        token,
        dataset=DIM,
        columns=["orders"],
        filters=[{"column": "customer_token", "op": "prefix", "value": "vault:v1:A"}],
    )
    assert response.status_code == 403 and "customer_token" in response.json()["reason"]
    ordered = _query(http, token, dataset=DIM, columns=["orders"],
                     order_by=[{"column": "customer_token"}])  # fmt: skip
    assert ordered.status_code == 403


def test_project_scope_filters_rows(http, mint, curated) -> None:
    body = {"dataset": "gold/kpi_sales_monthly", "columns": ["customer_state", "orders"],
            "limit": 1000}  # fmt: skip
    sp = _query(http, mint("analyst_sp"), **body).json()
    assert sp["rows"] and {r["customer_state"] for r in sp["rows"]} == {"SP"}
    everyone = _query(http, mint("analyst"), **body).json()
    assert len({r["customer_state"] for r in everyone["rows"]}) > 5
    # Asking for another state's rows explicitly gives nothing, not an error that leaks them.
    rj = _query(
        http,
        mint("analyst_sp"),
        **body,
        filters=[{"column": "customer_state", "op": "eq", "value": "RJ"}],
    ).json()
    assert rj["rows"] == []
    unknown = _query(http, mint("analyst", project="olist-mars"), **body)
    assert unknown.status_code == 403


def test_unknown_dataset_star_and_unknown_columns(http, mint) -> None:
    token = mint("analyst")
    assert _query(http, token, dataset="gold/salaries", columns=["x"]).status_code == 404
    assert _query(http, token, columns=["*"]).status_code == 400
    assert _query(http, token, columns=["order_id", "password"]).status_code == 400


def test_over_limit_is_refused_and_rate_limit_answers_429(http, mint) -> None:
    assert _query(http, mint("analyst"), limit=5000).status_code == 400
    support = mint("support")
    statuses = [
        _query(http, support, dataset="silver/orders", columns=["order_id"], limit=1)
        for _ in range(25)
    ]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["Retry-After"]) >= 1


# ---- injection -----------------------------------------------------------------------------

PAYLOADS = ["x' OR '1'='1", "'; DROP TABLE snapshot; --", 'a" OR "1"="1',
            "1 UNION SELECT current_setting('s3_secret_access_key')"]  # fmt: skip


@pytest.mark.parametrize("payload", PAYLOADS)
def test_injection_is_refused_or_plain_data(http, mint, payload) -> None:
    token = mint("analyst")
    as_value = _query(http, token, filters=[{"column": "order_id", "op": "eq", "value": payload}])
    assert as_value.status_code == 200 and as_value.json()["rows"] == []
    assert _query(http, token, columns=[payload]).status_code == 400
    assert _query(http, token, dataset=payload).status_code == 400
    assert _query(http, token, order_by=[{"column": payload}]).status_code == 400
    assert _query(http, token, filters=[{"column": payload, "op": "eq", "value": 1}]
                  ).status_code == 400  # fmt: skip
    assert _query(http, token, filters=[{"column": "order_id", "op": payload, "value": 1}]
                  ).status_code == 400  # fmt: skip
    # The table is still there.
    assert _query(http, token, limit=1).status_code == 200


# ---- token attacks -------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**extra):
    now = int(time.time())
    return {"iss": ISSUER, "aud": "mlsec-broker", "sub": "eve", "iat": now, "nbf": now,
            "exp": now + 600, "groups": ["analysts"], "project": "olist-br",
            "purpose": "analytics", "data_clearance": "restricted", **extra}  # fmt: skip


def _attacks(vault) -> dict[str, str]:
    keys = vault.secrets.transit.read_key("mlsec-issuer")["data"]
    latest = keys["latest_version"]
    public = base64.b64decode(keys["keys"][str(latest)]["public_key"])
    kid = f"mlsec-issuer:v{latest}"
    unsigned = f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}." \
               f"{_b64(json.dumps(_claims()).encode())}."  # fmt: skip
    pem = Ed25519PublicKey.from_public_bytes(public).public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )

    def hs256(secret: bytes) -> str:
        """Key confusion: HMAC 'signed' with what the verifier knows as a public key."""
        signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': kid}).encode())}" \
                        f".{_b64(json.dumps(_claims()).encode())}"  # fmt: skip
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    foreign = Ed25519PrivateKey.generate()
    claims = {k: v for k, v in _claims().items() if k not in ("iss", "aud", "sub", "iat", "nbf",
                                                              "exp")}  # fmt: skip
    real = dict(subject="eve", audience="mlsec-broker")
    missing = {k: v for k, v in claims.items() if k != "data_clearance"}
    return {
        "alg none": unsigned,
        "HS256 with the public key": hs256(public),
        "HS256 with the PEM": hs256(pem),
        "HS256 with the JWK x": hs256(_b64(public).encode()),
        "unknown kid": jwt.encode(
            _claims(), foreign, algorithm="EdDSA", headers={"kid": "mlsec-issuer:v999"}
        ),  # fmt: skip
        "foreign key, real kid": jwt.encode(
            _claims(), foreign, algorithm="EdDSA", headers={"kid": kid}
        ),  # fmt: skip
        "expired": issue_token(vault, ttl_seconds=-60, claims=claims, **real),
        "not yet valid": issue_token(
            vault, ttl_seconds=7200, claims=claims, not_before=int(time.time()) + 3600, **real
        ),  # fmt: skip
        "wrong audience": issue_token(
            vault, ttl_seconds=60, claims=claims, subject="eve", audience="mlsec-gateway"
        ),  # fmt: skip
        "wrong issuer": issue_token(
            vault, ttl_seconds=60, claims={**claims, "iss": "evil"}, **real
        ),  # fmt: skip
        "missing clearance": issue_token(vault, ttl_seconds=60, claims=missing, **real),
        "garbage": "not.a.token",
    }


def test_token_attacks_are_401(http, settings, endpoints) -> None:
    attacks = _attacks(operator_vault(settings, endpoints))
    for name, token in attacks.items():
        response = _query(http, token)
        assert response.status_code == 401, (name, response.text)
        assert response.headers.get("WWW-Authenticate") == "Bearer"
    assert http.post("/query", json={"dataset": FACT, "columns": ["order_id"]}).status_code == 401


# ---- cursors, explain, catalog, metrics ----------------------------------------------------


def test_cursor_pages_partition_the_filtered_rows(http, mint) -> None:
    token = mint("analyst")
    body = {"columns": ["order_id", "order_item_id"], "limit": 1000,
            "filters": [{"column": "customer_state", "op": "eq", "value": "AC"}]}  # fmt: skip
    seen, cursor, pages = [], None, 0
    while True:
        page = _query(http, token, **body, cursor=cursor).json()
        seen += [(r["order_id"], r["order_item_id"]) for r in page["rows"]]
        cursor, pages = page["next_cursor"], pages + 1
        if not cursor:
            break
    assert len(seen) == len(set(seen))
    everything = _query(http, mint("analyst"), **{**body, "limit": 1000}).json()
    assert pages >= 1 and set(seen) >= {(r["order_id"], r["order_item_id"])
                                        for r in everything["rows"]}  # fmt: skip
    # A cursor is bound to its query and subject.
    first = _query(http, token, **{**body, "limit": 2}).json()
    other = _query(http, token, **{**body, "limit": 3}, cursor=first["next_cursor"])
    assert other.status_code == 400
    stolen = _query(http, mint("analyst"), **{**body, "limit": 2}, cursor=first["next_cursor"])
    assert stolen.status_code == 400


def test_explain_shows_placeholders_never_values(http, mint) -> None:
    secret_value = "needle-4242"
    response = http.post("/explain", headers=bearer(mint("analyst_sp")), json={
        "dataset": FACT, "columns": ["order_id", "customer_token"],
        "filters": [{"column": "order_id", "op": "eq", "value": secret_value}],
    })  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert secret_value not in body["sql"] and "?" in body["sql"]
    assert body["row_filter"] and "customer_state" in body["row_filter"]
    assert {c["name"]: c["mask"] for c in body["columns"]}["customer_token"] is None


def test_catalog_lists_what_the_caller_may_read(http, mint) -> None:
    analyst = http.get("/catalog/datasets", headers=bearer(mint("analyst"))).json()
    ids = {d["id"] for d in analyst}
    assert FACT in ids and "silver/customers" not in ids
    schema = http.get("/catalog/schema", params={"dataset": DIM},
                      headers=bearer(mint("analyst"))).json()  # fmt: skip
    tags = {c["name"]: c for c in schema["columns"]}
    assert tags["customer_token"]["tokenized"] and tags["customer_token"]["pii"]
    hidden = http.get("/catalog/schema", params={"dataset": "silver/customers"},
                      headers=bearer(mint("analyst")))  # fmt: skip
    assert hidden.status_code == 403


def test_metrics_and_health(http) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    assert http.get("/health").json()["status"] == "ok"
    families = list(text_string_to_metric_families(http.get("/metrics").text))
    assert any("requests" in f.name for f in families)
    # /health was answered only after its audit event committed, so that commit is counted.
    commits = [s.value for f in families for s in f.samples
               if s.name == "broker_audit_commit_seconds_count"]  # fmt: skip
    assert commits and commits[0] >= 1


# ---- features ------------------------------------------------------------------------------


def _tokens(http, mint, n: int) -> list[str]:
    rows = _query(http, mint("analyst_conf"), dataset="gold/dim_customer",
                  columns=["customer_token"], limit=n,
                  filters=[{"column": "orders", "op": "gte", "value": 2}]).json()["rows"]  # fmt: skip
    return [r["customer_token"] for r in rows]


def test_feature_vector_reads_the_online_store(http, mint) -> None:
    tokens = _tokens(http, mint, 3)
    params = {"group": "customer_rfm", "entity": [*tokens, "vault:v1:nobody"]}
    response = http.get("/feature/vector", params=params, headers=bearer(mint("analyst_conf")))
    assert response.status_code == 200, response.text
    body = response.json()
    assert {v["customer_token"] for v in body["vectors"]} == set(tokens)
    assert body["missing"] == ["vault:v1:nobody"]
    assert body["group_version"] == "customer_rfm:v1"
    assert body["freshness"]["age_seconds"] >= 0
    assert body["lineage"]["asset_key"] == "features/customer_rfm"
    # Below the clearance of the entity key, lookups by it are refused (no probing).
    masked = http.get("/feature/vector", params=params, headers=bearer(mint("analyst")))
    assert masked.status_code == 403


def test_feature_vector_respects_project_scope_in_the_warehouse(http, mint) -> None:
    tokens = _tokens(http, mint, 200)
    everyone = http.get("/feature/vector", params={"group": "customer_rfm", "entity": tokens[:100]},
                        headers=bearer(mint("analyst_conf"))).json()  # fmt: skip
    sp = http.get("/feature/vector", params={"group": "customer_rfm", "entity": tokens[:100]},
                  headers=bearer(mint("analyst_sp"))).json()  # fmt: skip
    assert {v["customer_state"] for v in sp["vectors"]} <= {"SP"}
    assert len(sp["vectors"]) == sum(v["customer_state"] == "SP" for v in everyone["vectors"])


def test_online_reads_carry_their_row_scope_and_leave_none_behind(broker) -> None:
    online = broker.services.online
    sql = ("SELECT current_setting('mlsec.row_scope', true), current_setting("
           "'transaction_read_only'), count(*) FROM features.customer_rfm_online")  # fmt: skip
    scope, read_only, sp_rows = online.fetch(sql, (), "SP")[0]
    everyone = online.fetch(sql, (), "*")[0][2]
    assert (scope, read_only) == ("SP", "on") and 0 < sp_rows < everyone
    # The scope lived as long as its statement: the connection's next one has none, and the
    # warehouse's row-level security shows it nothing (fail closed).
    with online._connection().cursor() as cur:
        cur.execute(sql)
        left, _, rows = cur.fetchone()
    assert not left and rows == 0


def test_historical_is_point_in_time_correct(http, mint, curated) -> None:
    token = mint("analyst_conf")
    # A customer with feature rows in at least two months (tokens, and so the order of
    # customers, differ from stack to stack: look for one rather than take the first).
    for customer in _tokens(http, mint, 50):
        history = _query(http, token, dataset="features/customer_rfm",
                         columns=["event_timestamp", "frequency", "monetary"],
                         filters=[{"column": "customer_token", "op": "eq", "value": customer}],
                         order_by=[{"column": "event_timestamp"}]).json()["rows"]  # fmt: skip
        if len(history) >= 2:
            break
    assert len(history) >= 2
    first = datetime.fromisoformat(history[0]["event_timestamp"])
    second = datetime.fromisoformat(history[1]["event_timestamp"])
    asks = [first - timedelta(days=1), first, second - timedelta(seconds=1), second]
    response = http.post("/feature/historical", headers=bearer(token), json={
        "group": "customer_rfm", "features": ["frequency", "monetary"],
        "entities": [{"customer_token": customer, "event_timestamp": a.isoformat()}
                     for a in asks],
    })  # fmt: skip
    assert response.status_code == 200, response.text
    rows = response.json()["rows"]
    assert rows[0]["frequency"] is None  # nothing known yet
    assert [r["frequency"] for r in rows[1:]] == [
        history[0]["frequency"],
        history[0]["frequency"],
        history[1]["frequency"],
    ]


# ---- audit ---------------------------------------------------------------------------------


def test_every_request_yields_exactly_one_audit_event(http, mint, settings, superuser_dsn) -> None:
    import psycopg2

    before = audit_head(superuser_dsn)
    token = mint("analyst")
    responses = [
        _query(http, token, limit=3),
        _query(http, token, dataset="gold/salaries", columns=["x"]),
        _query(http, "forged"),
        _query(http, mint("stranger")),
        http.get("/no/such/route"),
        http.get("/catalog/datasets", headers=bearer(token)),
        http.post("/query", content=b"{not json", headers=bearer(token)),
    ]
    ids = [r.headers["X-Request-ID"] for r in responses]
    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT payload FROM audit.events WHERE event_type = 'broker.request' "
                    "AND seq > %s", (before,))  # fmt: skip
        events = [row[0] for row in cur.fetchall()]
    conn.close()
    by_id = {}
    for event in events:
        by_id.setdefault(event["request_id"], []).append(event)
    assert all(len(by_id.get(i, [])) == 1 for i in ids), by_id
    allowed = by_id[ids[0]][0]
    assert allowed["outcome"] == "allowed" and allowed["rows"] == 3
    assert allowed["subject"].startswith("analyst") and allowed["policy_version"]
    assert allowed["dataset"] == FACT and allowed["version"] is not None
    assert allowed["columns"] == ["order_id", "order_item_id", "price"]
    assert {by_id[i][0]["status"] for i in ids[1:]} == {404, 401, 403, 400, 200}
    report = verify_audit_log(settings)
    assert report.ok, report.broken


def test_no_answer_leaves_without_its_audit_event(broker, mint) -> None:
    """With the audit log unwritable, an allowed page (sealed on the worker thread) and a
    refusal (recorded by the middleware) both become 503, and no row leaves."""
    import asyncio
    import copy

    import httpx
    import psycopg2

    from broker_api.app import create_app
    from broker_api.audit import AuditSink

    async def unreachable():
        raise psycopg2.OperationalError("the audit database is unreachable")

    services = copy.copy(broker.services)
    services.sink = AuditSink(unreachable, actor="broker")
    app = create_app(services)
    body = {"dataset": FACT, "columns": ["order_id", "price"], "limit": 5}

    async def ask():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
            return (
                await client.post("/query", json=body, headers=bearer(mint("analyst"))),
                await client.post("/query", json=body, headers=bearer(mint("stranger"))),
            )

    allowed, refused = asyncio.run(ask())
    for response in (allowed, refused):
        assert response.status_code == 503, response.text
        assert response.json()["reason"] == "audit log unavailable: request not served"
        assert "rows" not in response.json() and response.headers["X-Request-ID"]


# ---- SDK -----------------------------------------------------------------------------------


def test_sdk_follows_cursors_and_carries_lineage(broker, mint, curated) -> None:
    with BrokerClient(broker.url, mint("analyst")) as client:
        frame = client.query(
            FACT,
            ["order_id", "order_item_id", "price", "customer_state"],
            filters=[("customer_state", "in", ["AC", "AP"])],
            limit=100,
        )
        assert len(frame) > 100 and frame.attrs["lineage"]["asset_key"] == FACT
        assert set(frame["customer_state"]) <= {"AC", "AP"}
        assert not frame.duplicated(["order_id", "order_item_id"]).any()
        with pytest.raises(BrokerError) as refused:
            client.query("gold/salaries", ["x"])
        assert refused.value.status == 404 and refused.value.request_id


def test_records_are_json_ready_in_every_timestamp_unit() -> None:
    """Decimals and dates as exact text, UTC times as RFC 3339, nulls kept."""
    from datetime import UTC, date
    from decimal import Decimal

    import pyarrow as pa

    from broker_api.app import _records

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
    first, second = _records(table)
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
