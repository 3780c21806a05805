"""The app without servers (stub services around the real policy, limits and DuckDB engine):
the one exception handler answers every refusal with the problem body, inputs are validated
before the caller is known, a token is accepted only with the certificate it is bound to, and
a request takes one hop to the broker's executor.

Requests come in as the TLS gate hands them on (``serving/test_tls.py`` tests the gate): with
the connection's client certificate in the scope's ``tls`` extension."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest

from broker_api.app import create_app
from broker_api.budgets import DisclosureBudgets
from broker_api.cursor import CursorSigner
from broker_api.detection import ExfiltrationWatch
from broker_api.erasures import ErasureCuts
from broker_api.limits import ConcurrencyGate, ProjectRowQuota, RateLimiter
from broker_api.lineage import AssetLineage, LineageUnavailable
from broker_api.masking import Masker
from broker_api.metrics import BrokerMetrics
from broker_api.observed import ObservedRequests
from broker_api.policy.files import load_policy
from broker_api.principal import Principal
from broker_api.receipts import ReceiptSigner
from broker_api.snapshots import SnapshotCache, SnapshotEngine
from mlsec_platform.catalog.governance import Purpose, Sensitivity
from mlsec_platform.identities.tokens import InvalidToken
from mlsec_platform.serving.disclosures import LocalDisclosures
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.telemetry.datasets import Datasets
from mlsec_platform.telemetry.lineage import LineageEmitter
from mlsec_platform.telemetry.request_log import RequestLog
from mlsec_platform_tests.helpers import PRESENTED, through_the_gate

#: Another certificate than the one every request here presents (``PRESENTED``).
OTHER = "another-certificate-x5t"
PEOPLE = {
    "analyst": Principal(
        "ana",
        ("analysts",),
        "olist-br",
        Purpose.ANALYTICS,
        Sensitivity.INTERNAL,
        certificate=PRESENTED,
    ),
    "stranger": Principal(
        "eve",
        ("visitors",),
        "olist-br",
        Purpose.ANALYTICS,
        Sensitivity.RESTRICTED,
        certificate=PRESENTED,
    ),
    "thief": Principal(
        "ana",
        ("analysts",),
        "olist-br",
        Purpose.ANALYTICS,
        Sensitivity.INTERNAL,
        certificate=OTHER,
    ),
}
PAGE = {"dataset": "gold/fact_order_item", "columns": ["order_id", "price"], "limit": 10}


class Verifier:
    """Tokens are the people's names; a name verified once is remembered (as the real one)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def cached(self, token):
        return PEOPLE[token] if token in self.seen else None

    def verify(self, token):
        if token not in PEOPLE:
            raise InvalidToken("malformed token" if token else "missing bearer token")
        self.seen.add(token)
        return PEOPLE[token]


class Sink:
    def __init__(self) -> None:
        self.events: list[dict] = []

    async def arecord(self, event):
        self.events.append(event)
        return "event"

    def submit(self, event, future):
        self.events.append(event)
        future.set_result("event")


class Lineage:
    materialized = True

    def latest(self, key):
        if not self.materialized:
            raise LineageUnavailable(f"{key.to_user_string()} was never materialized")
        return AssetLineage(key.to_user_string(), 3, "run", datetime.now(UTC), None, (), 1)

    def at_version(self, key, version):
        if version != 3:  # the one version there is
            raise LineageUnavailable(f"{key.to_user_string()} has no version {version}")
        return self.latest(key)


class Cuts(ErasureCuts):
    """Erasure cuts as the lake would say them (``cut`` set by the test), checked for real."""

    def __init__(self) -> None:
        super().__init__(lake=None)  # type: ignore[arg-type]
        self.value = 0

    def cut(self, spec) -> int:
        return self.value


class Executor(ThreadPoolExecutor):
    hops = 0

    def submit(self, *args, **kwargs):
        self.hops += 1
        return super().submit(*args, **kwargs)


def no_openbao():
    raise ConnectionError("no OpenBao in these tests")


@pytest.fixture
def broker():
    policy = load_policy()
    snapshots = SimpleNamespace(get=lambda spec, version: spec.arrow_schema().empty_table())
    engine = SnapshotEngine(SnapshotCache(lambda spec: "", dict))
    metrics = BrokerMetrics()
    disclosures = LocalDisclosures()
    services = SimpleNamespace(
        close=lambda: None,
        settings=PlatformSettings(),
        metrics=metrics,
        observed=ObservedRequests(
            metrics,
            RequestLog("broker"),
            LineageEmitter(None),
            Datasets("mlsec-", "127.0.0.1:5432", "warehouse"),
        ),
        sink=Sink(),
        verifier=Verifier(),
        policy=policy,
        limiter=RateLimiter(),
        executor=Executor(2),
        lineage=Lineage(),
        erasure_cuts=Cuts(),
        concurrency=ConcurrencyGate(),
        quota=ProjectRowQuota(),
        snapshots=snapshots,
        engine=engine,
        masker=Masker(b"k" * 32),
        cursors=CursorSigner(b"c" * 32),
        receipts=ReceiptSigner(no_openbao),  # receipts are tested on the stack (test_receipts)
        budgets=DisclosureBudgets(disclosures, b"d" * 32, metrics.registry),
        watch=ExfiltrationWatch(
            disclosures, b"d" * 32, lambda: policy.guards, lambda *_: None, metrics.registry
        ),
    )
    yield services, create_app(services)
    services.watch.close()
    engine.close()
    services.executor.shutdown()


def ask(
    app, *requests: tuple[str, str, str | None, object], presented: str | None = PRESENTED
) -> list[httpx.Response]:
    async def run():
        transport = httpx.ASGITransport(app=through_the_gate(app, presented))
        async with httpx.AsyncClient(transport=transport, base_url="http://broker") as client:
            return [
                await client.request(
                    method,
                    path,
                    json=body,
                    headers={"Authorization": f"Bearer {who}"} if who else {},
                )
                for method, path, who, body in requests
            ]

    return asyncio.run(run())


def test_an_allowed_page_takes_one_executor_hop(broker) -> None:
    services, app = broker
    first, second = ask(
        app, ("POST", "/query", "analyst", PAGE), ("POST", "/query", "analyst", PAGE)
    )
    assert first.status_code == second.status_code == 200, first.text
    assert second.json()["row_count"] == 0 and second.json()["lineage"]["delta_version"] == 3
    # The first request's token is verified off the loop too; a remembered one is not.
    assert services.executor.hops == 3
    assert [e["status"] for e in services.sink.events] == [200, 200]


def test_invalid_inputs_are_refused_before_the_caller_is_known(broker) -> None:
    services, app = broker
    (response,) = ask(app, ("POST", "/query", "analyst", {**PAGE, "dataset": "Gold"}))
    assert response.status_code == 400 and "body.dataset" in response.json()["reason"]
    # Not authenticated: no rate-limit token used, no caller named in the audit event.
    assert len(services.limiter) == 0 and "subject" not in services.sink.events[0]
    assert services.executor.hops == 0


@pytest.mark.parametrize(
    ("method", "path", "who", "body", "status", "headers", "decided"),
    [
        ("POST", "/query", None, PAGE, 401, {"www-authenticate": "Bearer"}, False),
        ("POST", "/query", "forged", PAGE, 401, {"www-authenticate": "Bearer"}, False),
        ("POST", "/query", "stranger", PAGE, 403, {}, True),
        ("POST", "/query", "analyst", {**PAGE, "dataset": "gold/salaries"}, 404, {}, True),
        ("POST", "/query", "analyst", {**PAGE, "limit": 5000}, 400, {}, True),
        ("POST", "/query", "analyst", {**PAGE, "cursor": "forged"}, 400, {}, True),
        (
            "POST",
            "/explain",
            "analyst",
            {**PAGE, "filters": [{"column": "price", "op": "eq", "value": "cheap"}]},
            400,
            {},
            True,
        ),
        ("GET", "/feature/vector?group=nope&entity=a", "analyst", None, 404, {}, False),
        ("GET", "/catalog/schema?dataset=silver/customers", "analyst", None, 403, {}, True),
        ("GET", "/no/such/route", None, None, 404, {}, False),
        ("DELETE", "/query", None, None, 405, {}, False),
    ],
)
def test_every_refusal_is_answered_with_the_problem_body(
    broker, method, path, who, body, status, headers, decided
) -> None:
    services, app = broker
    (response,) = ask(app, (method, path, who, body))
    problem = response.json()
    assert response.status_code == problem["status"] == status, problem
    assert set(problem) == {"status", "reason", "request_id", "decision_id"}
    assert problem["request_id"] == response.headers["x-request-id"]
    assert {k: response.headers.get(k) for k in headers} == headers
    (event,) = services.sink.events
    assert (event["status"], event["reason"]) == (status, problem["reason"])
    assert problem["decision_id"] == (event["decision_id"] if decided else None)


def test_a_version_before_an_erasure_is_gone_pinned_or_latest(broker) -> None:
    services, app = broker
    (served,) = ask(app, ("POST", "/query", "analyst", {**PAGE, "version": 3}))
    assert served.status_code == 200, served.text
    services.erasure_cuts.value = 4  # an erasure cut the dataset at version 4
    pinned, latest = ask(
        app,
        ("POST", "/query", "analyst", {**PAGE, "version": 3}),
        ("POST", "/query", "analyst", PAGE),  # Dagster still names version 3: fail closed
    )
    assert pinned.status_code == latest.status_code == 410
    assert "older than an erasure" in pinned.json()["reason"]
    assert [e["status"] for e in services.sink.events] == [200, 410, 410]
    assert services.sink.events[1]["decision_id"] == pinned.json()["decision_id"]


def test_a_token_is_refused_over_a_connection_without_its_certificate(broker) -> None:
    """RFC 8705: a stolen token is useless without its certificate's key. Refused before the
    caller is counted or any policy decided, and recorded without naming them."""
    services, app = broker
    (thief,) = ask(app, ("POST", "/query", "thief", PAGE))
    (bare,) = ask(app, ("POST", "/query", "analyst", PAGE), presented=None)
    assert (thief.status_code, thief.json()["reason"]) == (
        401,
        "token is bound to another client certificate",
    )
    assert (bare.status_code, bare.json()["reason"]) == (
        401,
        "no client certificate was presented with this token",
    )
    assert thief.headers["www-authenticate"] == "Bearer" and thief.json()["decision_id"] is None
    assert len(services.limiter) == 0 and services.executor.hops == 2  # verified, then refused
    assert [("subject" in e, e["status"]) for e in services.sink.events] == [(False, 401)] * 2


def test_limits_answer_429_with_retry_after(broker) -> None:
    services, app = broker
    services.lineage.materialized = False  # a refusal after the decision names it too
    (unmaterialized,) = ask(app, ("POST", "/query", "analyst", PAGE))
    assert unmaterialized.status_code == 404 and unmaterialized.json()["decision_id"]
    services.concurrency = ConcurrencyGate(global_cap=0)
    services.lineage.materialized = True
    (busy,) = ask(app, ("POST", "/query", "analyst", PAGE))
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    # A stopped clock refills nothing: the burst runs out however slowly the requests go.
    services.limiter = RateLimiter(clock=lambda: 0.0)
    responses = ask(app, *[("POST", "/explain", "analyst", PAGE)] * 80)
    limited = [r for r in responses if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["reason"] == "rate limit reached"


def test_requests_are_counted_by_route_template(broker) -> None:
    services, app = broker
    ask(
        app,
        ("POST", "/query", "analyst", PAGE),
        ("GET", "/health", None, None),
        ("GET", "/feature/vector?group=nope&entity=a", "analyst", None),
        ("GET", "/no/such/route", None, None),
    )
    body, _ = services.metrics.render()
    counted = {
        line.split("{")[1].split("}")[0]
        for line in body.decode().splitlines()
        if line.startswith("broker_requests_total{")
    }
    assert counted == {
        'endpoint="/query",status="200"',
        'endpoint="/health",status="200"',
        'endpoint="/feature/vector",status="404"',
        'endpoint="other",status="404"',
    }
