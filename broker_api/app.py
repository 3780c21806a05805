"""The Access Broker: the only read path to curated data from outside the platform.

Every request goes: identity (JWT against the issuer's JWKS) -> rate and concurrency limits ->
policy decision (default deny) -> a structured query compiled to parameterized SQL over a
pinned snapshot -> masking -> response with lineage. Exactly one audit event is committed per
request, allowed or denied, before the response leaves; if it cannot be, the answer is 503.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker_api import models as m
from broker_api.compiler import CompiledQuery, QueryError, compile_query, quote
from broker_api.cursor import InvalidCursor, Page
from broker_api.lineage import AssetLineage, LineageUnavailable, asset_key_of
from broker_api.masking import masked_type
from broker_api.middleware import AuditedRequests
from broker_api.policy.decision import Decision
from broker_api.principal import Principal
from broker_api.services import BrokerServices
from broker_api.snapshots import RELATION, QueryTimeout, SnapshotUnavailable
from mlsec_platform.audit.chain import AuditWriteError
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.identities.tokens import InvalidToken
from mlsec_platform.resources.vault import VaultError

VERSION = "1.0.0"
FEATURE_GROUPS = {"customer_rfm": "features/customer_rfm"}
ONLINE_TABLES = {"customer_rfm": "features.customer_rfm_online"}
FEATURE_ENTITY = "customer_token"
_PROBLEMS = {s: {"model": m.Problem} for s in (400, 401, 403, 404, 410, 413, 429, 503, 504)}


class Refusal(Exception):
    """A request not answered with data: its status and a reason safe to show."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        decision_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason
        self.decision_id = decision_id
        self.headers = dict(headers or {})


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, default=str), status_code=status, headers=headers,
        media_type="application/json",
    )  # fmt: skip


def _fingerprint(value: Any) -> str:
    """Filter values are recorded as fingerprints: they may be personal data."""
    return hashlib.sha256(orjson.dumps(value, default=str)).hexdigest()[:16]


def _lineage(lin: AssetLineage) -> dict[str, Any]:
    return {
        "asset_key": lin.asset_key,
        "delta_version": lin.delta_version,
        "run_id": lin.run_id,
        "materialized_at": lin.materialized_at,
        "code_version": lin.code_version,
        "upstream": [{"asset_key": k, "delta_version": v} for k, v in lin.upstream],
    }


def _json_values(column: pa.ChunkedArray) -> list[Any]:
    """A column's values, JSON-ready: decimals as exact strings, dates as ISO strings, UTC
    times as RFC 3339 (``2026-01-31T12:00:00.000000Z``). Arrow casts them to text (building a
    Python datetime per value costs more than the rest of a page; Arrow's strftime, 5x more
    than a cast)."""
    t = column.type
    if pa.types.is_decimal(t) or pa.types.is_date(t):
        return pc.cast(column, pa.string()).to_pylist()
    if pa.types.is_timestamp(t) and t.tz in ("UTC", "+00:00"):
        # The same instant without its zone casts to "YYYY-MM-DD HH:MM:SS[.fraction]".
        text = pc.cast(column.cast(pa.timestamp(t.unit)), pa.string()).to_pylist()
        return [None if v is None else f"{v[:10]}T{v[11:]}Z" for v in text]
    return column.to_pylist()


def _records(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts."""
    names = table.column_names
    return [dict(zip(names, row, strict=True))
            for row in zip(*(_json_values(c) for c in table.columns), strict=True)]  # fmt: skip


def _columns_out(spec: DatasetSpec, decision: Decision) -> list[dict[str, Any]]:
    out = []
    for name in decision.columns:
        mask = decision.masks.get(name)
        type_ = spec.column(name).type
        shown = masked_type(type_, mask) if mask is not None else type_
        out.append({"name": name, "type": str(shown), "mask": mask.value if mask else None,
                    "revealed": name in decision.revealed})  # fmt: skip
    return out


def create_app(services: BrokerServices) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI):
        try:
            yield
        finally:
            await run_in_threadpool(services.close)

    app = FastAPI(
        title="mlsec Access Broker",
        version=VERSION,
        description=__doc__,
        lifespan=lifespan,
        responses=_PROBLEMS,
    )

    # ---- one audit event per request -------------------------------------------------------

    app.add_middleware(AuditedRequests, services=services)

    def offloaded(fn):
        """Run a blocking endpoint on the broker's own thread pool (a plain executor hop costs
        the event loop less than the default per-call thread limiter) and seal its response
        there. Every offloaded endpoint takes ``request`` and returns a finished Response."""

        def answer(*args: Any, **kwargs: Any) -> Response:
            response = fn(*args, **kwargs)
            # Final: its audit event starts committing from here, not after the thread hop.
            kwargs["request"].state.seal(response)
            return response

        @functools.wraps(fn)
        async def endpoint(*args: Any, **kwargs: Any) -> Any:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                services.executor, functools.partial(answer, *args, **kwargs)
            )

        return endpoint

    def problem(request: Request, status: int, reason: str, decision_id: str | None = None,
                headers: Mapping[str, str] | None = None) -> Response:  # fmt: skip
        request.state.audit.setdefault("reason", reason)
        if decision_id:
            request.state.audit.setdefault("decision_id", decision_id)
        body = {"status": status, "reason": reason, "request_id": request.state.request_id,
                "decision_id": decision_id}  # fmt: skip
        return _json(body, status, headers)

    @app.exception_handler(Refusal)
    async def on_refusal(request: Request, exc: Refusal):
        return problem(request, exc.status, exc.reason, exc.decision_id, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        # Name where and what, never echo the input back.
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return problem(request, 400, f"invalid request at {where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        return problem(request, exc.status_code, str(exc.detail))

    # ---- identity, limits, policy ----------------------------------------------------------

    def authenticate(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            principal = services.verifier.verify(
                token.strip() if scheme.lower() == "bearer" else None
            )
        except InvalidToken as exc:
            services.metrics.deny("identity")
            raise Refusal(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
        request.state.audit.update(principal.audit_fields())
        limits = services.policy.limits_for(principal)
        wait = services.limiter.check(principal, limits)
        if wait is not None:
            services.metrics.limit("rate")
            raise Refusal(429, "rate limit reached", headers={"Retry-After": str(int(wait))})
        return principal

    def decide(request: Request, principal: Principal, dataset: str, columns: Sequence[str],
               **kwargs: Any) -> tuple[DatasetSpec, Decision]:  # fmt: skip
        decision = services.policy.decide(principal, dataset, columns, **kwargs)
        request.state.audit.update(
            dataset=dataset,
            decision_id=decision.id,
            policy_ids=list(decision.policy_ids),
            policy_version=decision.policy_version,
        )
        if not decision.allowed:
            services.metrics.deny("policy")
            raise Refusal(decision.status, decision.reason, decision_id=decision.id)
        request.state.audit.update(
            # Lists, not maps keyed by column: column names are data, not audit field names.
            masks=[{"column": c, "mask": mk.value} for c, mk in decision.masks.items()],
            row_filter=(
                None if decision.row_filter is None
                else {"column": decision.row_filter.column,
                      "values": list(decision.row_filter.values)}
            ),
        )  # fmt: skip
        return CATALOG[dataset], decision

    @contextmanager
    def slot(principal: Principal, decision: Decision) -> Iterator[None]:
        """One of the subject's in-flight slots for the block, or 429."""
        with services.concurrency.slot(principal.subject, decision.limits.concurrency) as ok:
            if not ok:
                services.metrics.limit("concurrency")
                raise Refusal(429, "too many requests in flight", headers={"Retry-After": "1"})
            yield

    def lineage_for(request: Request, spec: DatasetSpec, version: int | None) -> AssetLineage:
        try:
            if version is None:
                lin = services.lineage.latest(asset_key_of(spec))
            else:
                lin = services.lineage.at_version(asset_key_of(spec), version)
        except LineageUnavailable as exc:
            raise Refusal(404, str(exc)) from None
        request.state.audit.update(version=lin.delta_version, run_id=lin.run_id)
        return lin

    def policy_ref(decision: Decision) -> dict[str, Any]:
        return {"decision_id": decision.id, "policy_ids": list(decision.policy_ids),
                "policy_version": decision.policy_version}  # fmt: skip

    def run(spec: DatasetSpec, version: int, query: CompiledQuery, decision: Decision) -> pa.Table:
        try:
            table = services.snapshots.get(spec, version)
            return services.engine.run(
                query, table, timeout_seconds=decision.limits.timeout_seconds
            )
        except SnapshotUnavailable as exc:
            raise Refusal(410, str(exc)) from None
        except QueryTimeout as exc:
            raise Refusal(504, str(exc)) from None

    def reveal(request: Request, principal: Principal, decision: Decision, table: pa.Table,
               reason: str) -> pa.Table:  # fmt: skip
        request.state.audit.update(revealed=list(decision.revealed), reveal_reason=reason)
        try:
            return services.reveal(table, decision.revealed, subject=principal.subject,
                                   reason=reason, request_id=request.state.request_id)  # fmt: skip
        except PermissionError as exc:
            raise Refusal(403, str(exc), decision_id=decision.id) from None
        except (VaultError, AuditWriteError) as exc:
            raise Refusal(503, f"reveal unavailable: {exc}", decision_id=decision.id) from None

    # ---- endpoints --------------------------------------------------------------------------

    def query_page(request: Request, body: m.QueryRequest, *, explain: bool = False):
        principal = authenticate(request)
        spec, decision = decide(
            request, principal, body.dataset, body.columns,
            filter_columns=[f.column for f in body.filters],
            order_columns=[o.column for o in body.order_by],
            reveal_columns=body.reveal.columns if body.reveal else (),
            reveal_reason=body.reveal.reason if body.reveal else None,
        )  # fmt: skip
        request.state.audit.update(
            columns=list(decision.columns),
            filters=[{"column": f.column, "op": f.op.value, "value_sha256": _fingerprint(f.value)}
                     for f in body.filters],
            order_by=[f"{o.column} {o.direction.value}" for o in body.order_by],
        )  # fmt: skip
        if body.limit > decision.limits.max_rows_per_page:
            raise Refusal(400, f"limit {body.limit} is above this policy's "
                               f"{decision.limits.max_rows_per_page} rows per page",
                          decision_id=decision.id)  # fmt: skip
        page = Page(version=-1, offset=0)
        if body.cursor:
            try:
                page = services.cursors.open(body.cursor, body, principal.subject)
            except InvalidCursor as exc:
                raise Refusal(400, str(exc), decision_id=decision.id) from None
        lin = lineage_for(request, spec, page.version if body.cursor else body.version)
        try:
            query = compile_query(
                spec, decision.columns, body.filters, body.order_by, relation=RELATION,
                row_filter=decision.row_filter, limit=body.limit + 1, offset=page.offset,
            )  # fmt: skip
        except QueryError as exc:
            raise Refusal(400, str(exc), decision_id=decision.id) from None
        if explain:
            return spec, decision, lin, query
        with slot(principal, decision):
            result = run(spec, lin.delta_version, query, decision)
        more = result.num_rows > body.limit
        result = result.slice(0, body.limit)
        if decision.masks:
            result = services.masker.apply(result, decision.masks)
        if decision.revealed:
            result = reveal(request, principal, decision, result, body.reveal.reason)
        records = _records(result)
        # The byte cap: cut the page where it would pass the cap; the cursor resumes there.
        total, keep = len(orjson.dumps(records, default=str)), len(records)
        if total > decision.limits.max_bytes:
            total = keep = 0
            for record in records:
                size = len(orjson.dumps(record, default=str)) + 1
                if total + size > decision.limits.max_bytes:
                    break
                total, keep = total + size, keep + 1
        if keep == 0 and records:
            raise Refusal(413, "one row is larger than this policy's byte cap",
                          decision_id=decision.id)  # fmt: skip
        if keep < len(records):
            records, more = records[:keep], True
        # The project's daily quota counts the rows actually returned.
        if not services.quota.charge(principal.project, len(records), decision.limits):
            services.metrics.limit("quota")
            reset = str(services.quota.seconds_to_reset())
            raise Refusal(429, f"project {principal.project!r} has used its rows for today",
                          decision_id=decision.id, headers={"Retry-After": reset})  # fmt: skip
        next_cursor = (
            services.cursors.issue(body, principal.subject,
                                   Page(lin.delta_version, page.offset + len(records)))
            if more else None
        )  # fmt: skip
        request.state.audit.update(rows=len(records), bytes=total)
        services.metrics.returned(spec.id, len(records), total)
        return {
            "request_id": request.state.request_id,
            "dataset": spec.id,
            "columns": _columns_out(spec, decision),
            "rows": records,
            "row_count": len(records),
            "next_cursor": next_cursor,
            "lineage": _lineage(lin),
            "policy": policy_ref(decision),
        }

    @app.post("/query", response_model=m.QueryResponse, tags=["data"])
    @offloaded
    def query(request: Request, body: m.QueryRequest) -> Response:
        """One page of a dataset: explicit columns, typed filters, order, limit and cursor."""
        return _json(query_page(request, body))

    @app.post("/explain", response_model=m.Explanation, tags=["data"])
    @offloaded
    def explain(request: Request, body: m.QueryRequest) -> Response:
        """What a query would do (decision, masks, row scope, SQL with placeholders): no data."""
        spec, decision, lin, compiled = query_page(request, body, explain=True)
        request.state.audit.update(rows=0, bytes=0)
        return _json({
            "request_id": request.state.request_id,
            "allowed": True,
            "reason": decision.reason,
            "columns": _columns_out(spec, decision),
            "row_filter": compiled.where.split(" AND ")[0] if decision.row_filter else None,
            "sql": compiled.sql,
            "parameters": len(compiled.params),
            "limits": {k: v for k, v in vars(decision.limits).items()},
            "lineage": _lineage(lin),
            "policy": policy_ref(decision),
        })  # fmt: skip

    @app.get("/feature/vector", response_model=m.FeatureVectorResponse, tags=["features"])
    @offloaded
    def feature_vector(
        request: Request,
        group: Annotated[str, Query(pattern=r"^[a-z_][a-z0-9_]{0,62}$")],
        entity: Annotated[list[str], Query(min_length=1, max_length=100)],
        feature: Annotated[list[str] | None, Query(max_length=64)] = None,
    ) -> Response:
        """Online feature values for entities (latest per entity), masked for the reader."""
        principal = authenticate(request)
        dataset = FEATURE_GROUPS.get(group)
        if dataset is None:
            raise Refusal(404, f"unknown feature group {group!r}")
        spec = CATALOG[dataset]
        wanted = feature or [c for c in spec.column_names if c not in (FEATURE_ENTITY,)]
        columns = [FEATURE_ENTITY, *[c for c in wanted if c != FEATURE_ENTITY]]
        spec, decision = decide(request, principal, dataset, columns,
                                filter_columns=[FEATURE_ENTITY])  # fmt: skip
        request.state.audit.update(columns=list(decision.columns), entities=len(entity))
        lin = lineage_for(request, spec, None)
        scope = "*" if decision.row_filter is None else ",".join(decision.row_filter.values)
        select = ", ".join(quote(spec, c) for c in decision.columns)
        try:
            with slot(principal, decision):
                rows = services.online.fetch(
                    f"SELECT {select}, materialized_at AS _materialized_at "  # noqa: S608 - catalog names only
                    f"FROM {ONLINE_TABLES[group]} WHERE customer_token = ANY(%s)",
                    (list(entity),),
                    scope,
                )
        except psycopg2.Error:
            raise Refusal(
                503,
                "the online feature store is unavailable",
                decision_id=decision.id,
                headers={"Retry-After": "5"},
            ) from None
        materialized = max((r[-1] for r in rows), default=None)
        records = [dict(zip(decision.columns, r[:-1], strict=True)) for r in rows]
        found = {r[FEATURE_ENTITY] for r in records}
        if decision.masks:  # masks are Arrow kernels: only then build a table
            schema = pa.schema(
                [spec.arrow_schema().field(c).with_nullable(True) for c in decision.columns]
            )
            table = pa.Table.from_pylist(records, schema=schema)
            records = _records(services.masker.apply(table, decision.masks))
        request.state.audit.update(rows=len(records))
        group_version = records[0].get("feature_group_version") if records and \
            "feature_group_version" in records[0] else f"{group}:v{spec.version}"  # fmt: skip
        age = (datetime.now(UTC) - materialized).total_seconds() if materialized else None
        return _json({
            "request_id": request.state.request_id,
            "group": group,
            "group_version": group_version,
            "columns": _columns_out(spec, decision),
            "vectors": records,
            "missing": [e for e in entity if e not in found],
            "freshness": {"materialized_at": materialized, "age_seconds": age},
            "lineage": _lineage(lin),
            "policy": policy_ref(decision),
        })  # fmt: skip

    @app.post("/feature/historical", response_model=m.HistoricalResponse, tags=["features"])
    @offloaded
    def feature_historical(request: Request, body: m.HistoricalRequest) -> Response:
        """Point-in-time correct values: per entity row, the latest features at or before its
        ``event_timestamp`` (never a value computed after it)."""
        principal = authenticate(request)
        dataset = FEATURE_GROUPS.get(body.group)
        if dataset is None:
            raise Refusal(404, f"unknown feature group {body.group!r}")
        columns = [
            FEATURE_ENTITY,
            "event_timestamp",
            *[c for c in body.features if c not in (FEATURE_ENTITY, "event_timestamp")],
        ]
        spec, decision = decide(request, principal, dataset, columns,
                                filter_columns=[FEATURE_ENTITY, "event_timestamp"])  # fmt: skip
        request.state.audit.update(columns=list(decision.columns), entities=len(body.entities))
        lin = lineage_for(request, spec, body.version)
        entities = pa.table({
            "_row": pa.array(range(len(body.entities)), pa.int64()),
            "_entity": pa.array([e.customer_token for e in body.entities], pa.string()),
            "_as_of": pa.array([e.event_timestamp.astimezone(UTC) for e in body.entities],
                               pa.timestamp("us", tz="UTC")),
        })  # fmt: skip
        features = [c for c in decision.columns if c not in (FEATURE_ENTITY, "event_timestamp")]
        scoped = "TRUE"
        params: list[Any] = []
        if decision.row_filter is not None:
            col = quote(spec, decision.row_filter.column)
            marks = ", ".join("?" * len(decision.row_filter.values)) or "NULL"
            scoped = f"{col} IN ({marks})"
            params.extend(decision.row_filter.values)
        picked = ", ".join(f"f.{quote(spec, c)}" for c in features)
        sql = (
            f"SELECT e._entity AS customer_token, e._as_of AS requested_at, "
            f"f.event_timestamp AS event_timestamp{', ' + picked if picked else ''} "
            f"FROM entities e ASOF LEFT JOIN (SELECT * FROM {RELATION} WHERE {scoped}) f "
            f"ON e._entity = f.customer_token AND e._as_of >= f.event_timestamp ORDER BY e._row"
        )
        try:
            with slot(principal, decision):
                table = services.snapshots.get(spec, lin.delta_version)
                result = services.engine.run_with(
                    sql,
                    params,
                    {RELATION: table, "entities": entities},
                    timeout_seconds=decision.limits.timeout_seconds,
                )
        except SnapshotUnavailable as exc:
            raise Refusal(410, str(exc)) from None
        except QueryTimeout as exc:
            raise Refusal(504, str(exc)) from None
        masks = {c: mk for c, mk in decision.masks.items() if c in result.column_names}
        if masks:
            result = services.masker.apply(result, masks)
        records = _records(result)
        request.state.audit.update(rows=len(records))
        cols = _columns_out(spec, decision)
        cols.insert(1, {"name": "requested_at", "type": "timestamp[us, tz=UTC]", "mask": None,
                        "revealed": False})  # fmt: skip
        return _json({
            "request_id": request.state.request_id,
            "group": body.group,
            "columns": cols,
            "rows": records,
            "row_count": len(records),
            "lineage": _lineage(lin),
            "policy": policy_ref(decision),
        })  # fmt: skip

    def dataset_out(spec: DatasetSpec) -> dict[str, Any]:
        return {"id": spec.id, "zone": spec.zone.value, "domain": spec.domain,
                "description": spec.description, "key": list(spec.key),
                "purposes": sorted(p.value for p in spec.purposes),
                "sensitivity": spec.sensitivity.label,
                "row_security_key": spec.row_security_key, "version": spec.version}  # fmt: skip

    @app.get("/catalog/datasets", response_model=list[m.DatasetOut], tags=["catalog"])
    @offloaded
    def catalog_datasets(request: Request) -> Response:
        """The datasets this caller's policy lets them read for their purpose."""
        principal = authenticate(request)
        visible = [
            dataset_out(spec) for spec in CATALOG.values()
            if services.policy.decide(principal, spec.id, list(spec.key)).allowed
        ]  # fmt: skip
        request.state.audit.update(rows=len(visible))
        return _json(visible)

    @app.get("/catalog/schema", response_model=m.SchemaOut, tags=["catalog"])
    @offloaded
    def catalog_schema(
        request: Request, dataset: Annotated[str, Query(pattern=r"^[a-z]+/[a-z_][a-z0-9_]{0,62}$")]
    ) -> Response:
        """Columns of one dataset with their governance tags."""
        principal = authenticate(request)
        spec = CATALOG.get(dataset)
        key = list(spec.key) if spec else ["_"]
        _, decision = decide(request, principal, dataset, key)
        return _json({
            "dataset": dataset_out(spec),
            "columns": [{"name": c.name, "type": str(c.type), "description": c.description,
                         "nullable": c.nullable, "pii": c.pii.value,
                         "sensitivity": c.sensitivity.label, "mask": c.mask.value,
                         "tokenized": c.tokenized} for c in spec.columns],
        })  # fmt: skip

    @app.get("/health", tags=["operations"])
    async def health() -> Response:
        """Liveness: the broker answers and its audit writer is running."""
        return _json({"status": "ok", "version": VERSION})

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format."""
        body, content_type = services.metrics.render()
        return Response(body, media_type=content_type)

    return app
