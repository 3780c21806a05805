"""A small Python SDK for the Access Broker: structured queries in, pandas DataFrames out.

    with BrokerClient("https://broker.example", token=get_token) as broker:
        df = broker.query(
            "gold/orders",
            ["order_id", "price", "customer_state"],
            filters=[("price", "gt", 10), ("customer_state", "in", ["SP", "RJ"])],
            order_by=["-price"],
        )
        df.attrs["lineage"], df.attrs["masks"]

Every request carries the bearer token (a callable is asked afresh per request, so it may
refresh) and an ``X-Correlation-ID``: the one given, else a new one per call, shared by all
pages of one query. 429 and 503 are retried after ``Retry-After``; any other refusal raises
:class:`BrokerError` with the ids that find its audit event.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any

import httpx
import numpy as np
import pandas as pd

from broker_api.models import MAX_PAGE_ROWS
from mlsec_platform.errors import MlsecError
from mlsec_platform.serving.client import ServiceClient, Token

#: Statuses that mean "not now": retried after Retry-After.
RETRY_STATUSES = frozenset({429, 503})
#: The longest the client waits before one retry, whatever Retry-After says.
MAX_RETRY_WAIT = 30.0
#: Masks whose output is text whatever the column's type (left as strings in frames).
_TEXT_MASKS = frozenset({"redact", "partial_email", "last_digits", "keyed_hash"})
_OP_ALIASES = {"==": "eq", "=": "eq", "!=": "ne", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}

#: A filter: ``{"column", "op", "value"}``, ``(column, op, value)`` or ``(column, "is_null")``.
FilterSpec = Mapping[str, Any] | Sequence[Any]
#: An ordering: ``"col"``, ``"-col"`` (descending), ``(col, "desc")`` or ``{"column", ...}``.
OrderSpec = str | Mapping[str, Any] | Sequence[str]


class BrokerError(MlsecError):
    """The broker refused or failed a request (its problem body, as far as it sent one)."""

    def __init__(
        self, status: int, reason: str, request_id: str | None, decision_id: str | None = None
    ) -> None:
        super().__init__(f"{status}: {reason} (request_id={request_id}, decision_id={decision_id})")
        self.status = status
        self.reason = reason
        self.request_id = request_id
        self.decision_id = decision_id

    @classmethod
    def from_response(cls, response: httpx.Response) -> BrokerError:
        """Read the JSON problem body; anything else (e.g. a proxy's page) keeps its status."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            text = response.text.strip()[:200] or response.reason_phrase
            return cls(response.status_code, text, response.headers.get("x-request-id"))
        return cls(
            int(body.get("status", response.status_code)),
            str(body.get("reason", response.reason_phrase)),
            body.get("request_id") or response.headers.get("x-request-id"),
            body.get("decision_id"),
        )


def retry_delay(
    retry_after: str | None,
    *,
    now: datetime | None = None,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retrying: ``Retry-After`` (seconds or an HTTP date), capped at
    :data:`MAX_RETRY_WAIT`; 0.5 to 1.5 s when the header is missing or unreadable."""
    seconds: float | None = None
    if retry_after:
        try:
            seconds = float(retry_after)
        except ValueError:
            try:
                when = parsedate_to_datetime(retry_after)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds is None or seconds != seconds:  # missing, unreadable or NaN
        return 0.5 + jitter()
    return min(max(seconds, 0.0), MAX_RETRY_WAIT)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON: dates and datetimes in ISO 8601, Decimals and numpy scalars as
    numbers, tuples and sets as lists, enums as their values."""
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        integral = value.is_finite() and value == value.to_integral_value()
        return int(value) if integral else float(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def normalize_filter(spec: FilterSpec) -> dict[str, Any]:
    """One filter as the wire's ``{"column", "op", "value"}``; ops may be written ``>`` etc."""
    if isinstance(spec, Mapping):
        out = dict(spec)
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        if len(spec) == 3:
            out = {"column": spec[0], "op": spec[1], "value": spec[2]}
        elif len(spec) == 2 and str(spec[1]) == "is_null":
            out = {"column": spec[0], "op": "is_null", "value": True}
        else:
            raise ValueError(f"a filter is (column, op, value), got {spec!r}")
    else:
        raise TypeError(f"a filter is a dict or a (column, op, value) tuple, got {spec!r}")
    op = str(jsonable(out.get("op")))
    out["op"] = _OP_ALIASES.get(op, op)
    if "value" in out:
        out["value"] = jsonable(out["value"])
    return out


def normalize_order(spec: OrderSpec) -> dict[str, Any]:
    """One ordering as the wire's ``{"column", "direction"}``."""
    if isinstance(spec, str):
        if spec.startswith("-"):
            return {"column": spec[1:], "direction": "desc"}
        return {"column": spec.removeprefix("+"), "direction": "asc"}
    if isinstance(spec, Mapping):
        return jsonable(spec)
    if isinstance(spec, Sequence) and len(spec) == 2:
        return {"column": spec[0], "direction": str(jsonable(spec[1])).lower()}
    raise TypeError(f"an ordering is 'col', '-col', (col, direction) or a dict, got {spec!r}")


def _names(values: str | Iterable[str], what: str) -> list[str]:
    """A list of names; a lone string is one name, not its characters."""
    if isinstance(values, str):
        return [values]
    out = list(values)
    if not all(isinstance(v, str) for v in out):
        raise TypeError(f"{what} must be strings, got {out!r}")
    return out


def query_body(
    dataset: str,
    columns: str | Sequence[str],
    *,
    filters: Sequence[FilterSpec] | None = None,
    order_by: OrderSpec | Sequence[OrderSpec] | None = None,
    limit: int = 100,
    version: int | None = None,
    reveal: Mapping[str, Any] | Any | None = None,
) -> dict[str, Any]:
    """The ``QueryRequest`` JSON for these arguments (without a cursor)."""
    if isinstance(filters, Mapping | str):
        raise TypeError("filters is a list of filters")
    body: dict[str, Any] = {
        "dataset": dataset,
        "columns": _names(columns, "columns"),
        "limit": int(limit),
    }
    if filters:
        body["filters"] = [normalize_filter(f) for f in filters]
    if order_by:
        orders = [order_by] if isinstance(order_by, str | Mapping) else list(order_by)
        body["order_by"] = [normalize_order(o) for o in orders]
    if version is not None:
        body["version"] = int(version)
    if reveal is not None:
        dump = getattr(reveal, "model_dump", None)
        body["reveal"] = dump(mode="json") if callable(dump) else jsonable(dict(reveal))
    return body


def _convert(values: pd.Series, type_: str, mask: str | None) -> pd.Series:
    """``values`` (as JSON decoded them) in a dtype fitting the Arrow type name ``type_``;
    unchanged when the mask makes them text or they do not convert."""
    if mask in _TEXT_MASKS:
        return values
    t = type_.lower()
    try:
        if t.startswith("timestamp"):
            return pd.to_datetime(values, utc="tz=" in t, format="ISO8601")
        if t.startswith("date"):
            return pd.to_datetime(values, format="ISO8601").dt.date
        if t.startswith(("int", "uint")):
            return values.astype("Int64")
        if t in ("bool", "boolean"):
            return values.astype("boolean")
        if t in ("float", "double", "halffloat") or t.startswith("float"):
            return values.astype("float64")
        if t.startswith("decimal"):
            return values.map(lambda v: None if v is None else Decimal(str(v)))
    except (ValueError, TypeError, OverflowError, InvalidOperation):
        return values
    return values


def to_frame(
    columns: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """Rows (dicts) as a DataFrame with the response's column order and types."""
    names = [c["name"] for c in columns]
    frame = pd.DataFrame.from_records(list(rows), columns=names)
    for c in columns:
        frame[c["name"]] = _convert(frame[c["name"]], str(c.get("type", "")), c.get("mask"))
    return frame


def _masks(columns: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    return {c["name"]: c["mask"] for c in columns if c.get("mask") not in (None, "none")}


class BrokerClient(ServiceClient):
    """The Access Broker over HTTP; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        token: Token,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        correlation_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        super().__init__(
            url, token, timeout=timeout, user_agent="mlsec-broker-client", transport=transport
        )
        self.max_retries = max_retries
        self.correlation_id = correlation_id
        #: How the client waits between retries (replaceable, e.g. to not sleep in tests).
        self.sleep: Callable[[float], None] = time.sleep

    # -- queries -------------------------------------------------------------------------------

    def query(
        self,
        dataset: str,
        columns: str | Sequence[str],
        *,
        filters: Sequence[FilterSpec] | None = None,
        order_by: OrderSpec | Sequence[OrderSpec] | None = None,
        limit: int = 100,
        version: int | None = None,
        reveal: Mapping[str, Any] | Any | None = None,
        follow: bool = True,
        max_pages: int | None = None,
        cursor: str | None = None,
    ) -> pd.DataFrame:
        """Rows of ``dataset``, following ``next_cursor`` (unless ``follow`` is False) until the
        last page or ``max_pages``; ``cursor`` resumes from a previous frame's
        ``attrs["next_cursor"]`` (same arguments). ``limit`` is rows per page.

        ``attrs``: ``lineage`` and ``policy`` (first page), ``masks`` ({column: mask}),
        ``request_ids`` (one per page), ``next_cursor`` and ``correlation_id``.
        """
        if max_pages is not None and max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        body = query_body(
            dataset,
            columns,
            filters=filters,
            order_by=order_by,
            limit=limit,
            version=version,
            reveal=reveal,
        )
        cid = self._correlation()
        pages: list[dict[str, Any]] = []
        while True:
            page = self._send("POST", "/query", cid, json={**body, "cursor": cursor})
            pages.append(page)
            cursor = page.get("next_cursor")
            if not follow or cursor is None or (max_pages is not None and len(pages) >= max_pages):
                break
        first = pages[0]
        frame = to_frame(first["columns"], [row for p in pages for row in p["rows"]])
        frame.attrs.update(
            lineage=first.get("lineage"),
            policy=first.get("policy"),
            masks=_masks(first["columns"]),
            request_ids=[p.get("request_id") for p in pages],
            next_cursor=cursor,
            correlation_id=cid,
        )
        return frame

    def explain(
        self,
        dataset: str,
        columns: str | Sequence[str],
        *,
        filters: Sequence[FilterSpec] | None = None,
        order_by: OrderSpec | Sequence[OrderSpec] | None = None,
        limit: int = 100,
        version: int | None = None,
        reveal: Mapping[str, Any] | Any | None = None,
    ) -> dict[str, Any]:
        """What :meth:`query` with these arguments would be allowed, masked and compiled to."""
        body = query_body(
            dataset,
            columns,
            filters=filters,
            order_by=order_by,
            limit=limit,
            version=version,
            reveal=reveal,
        )
        return self._send("POST", "/explain", self._correlation(), json=body)

    # -- features ------------------------------------------------------------------------------

    def feature_vector(
        self, group: str, entities: Sequence[str], features: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """Latest feature values of ``entities`` (customer tokens) in feature ``group``.

        ``attrs``: ``group_version``, ``freshness``, ``lineage``, ``missing`` (entities not
        found), ``policy``, ``masks``, ``request_ids``, ``correlation_id``.
        """
        params: list[tuple[str, str]] = [("group", group)]
        params += [("entity", e) for e in _names(entities, "entities")]
        if features is not None:
            params += [("feature", f) for f in _names(features, "features")]
        cid = self._correlation()
        body = self._send("GET", "/feature/vector", cid, params=params)
        frame = to_frame(body["columns"], body["vectors"])
        frame.attrs.update(
            group_version=body.get("group_version"),
            freshness=body.get("freshness"),
            lineage=body.get("lineage"),
            missing=body.get("missing", []),
            policy=body.get("policy"),
            masks=_masks(body["columns"]),
            request_ids=[body.get("request_id")],
            correlation_id=cid,
        )
        return frame

    def historical(
        self,
        group: str,
        features: Sequence[str],
        entities: pd.DataFrame,
        *,
        version: int | None = None,
    ) -> pd.DataFrame:
        """Point-in-time feature values: for each ``(customer_token, event_timestamp)`` row of
        ``entities``, the values as of that moment (sent in chunks the broker accepts).

        ``attrs``: ``lineage`` and ``policy`` (first chunk), ``masks``, ``request_ids``,
        ``correlation_id``.
        """
        missing = {"customer_token", "event_timestamp"} - set(entities.columns)
        if missing:
            raise ValueError(f"entities lacks column(s) {sorted(missing)}")
        wire = entity_rows(entities)
        if not wire:
            raise ValueError("entities is empty")
        cid = self._correlation()
        answers = []
        for start in range(0, len(wire), MAX_PAGE_ROWS):
            body: dict[str, Any] = {
                "group": group,
                "features": _names(features, "features"),
                "entities": wire[start : start + MAX_PAGE_ROWS],
            }
            if version is not None:
                body["version"] = int(version)
            answers.append(self._send("POST", "/feature/historical", cid, json=body))
        first = answers[0]
        frame = to_frame(first["columns"], [row for a in answers for row in a["rows"]])
        frame.attrs.update(
            lineage=first.get("lineage"),
            policy=first.get("policy"),
            masks=_masks(first["columns"]),
            request_ids=[a.get("request_id") for a in answers],
            correlation_id=cid,
        )
        return frame

    # -- catalog and health --------------------------------------------------------------------

    def datasets(self) -> list[dict[str, Any]]:
        """The datasets this caller may read, with their governance tags."""
        body = self._send("GET", "/catalog/datasets", self._correlation())
        if isinstance(body, dict) and "datasets" in body:
            return body["datasets"]
        return body

    def schema(self, dataset: str) -> dict[str, Any]:
        """One dataset's description and columns (types, sensitivity, masks)."""
        return self._send(
            "GET", "/catalog/schema", self._correlation(), params={"dataset": dataset}
        )

    def health(self) -> dict[str, Any]:
        """The broker's health report."""
        return self._send("GET", "/health", self._correlation())

    # -- transport -----------------------------------------------------------------------------

    def _correlation(self) -> str:
        return self.correlation_id or str(uuid.uuid4())

    def _headers(self, correlation_id: str) -> dict[str, str]:
        return {**self._bearer(), "X-Correlation-ID": correlation_id}

    def _send(
        self,
        method: str,
        path: str,
        correlation_id: str,
        *,
        json: Any = None,
        params: Any = None,
    ) -> Any:
        """The decoded JSON answer; 429/503 retried up to ``max_retries`` times."""
        for attempt in range(self.max_retries + 1):
            response = self._http.request(
                method, path, json=json, params=params, headers=self._headers(correlation_id)
            )
            if response.is_success:
                return response.json()
            if response.status_code not in RETRY_STATUSES or attempt == self.max_retries:
                break
            self.sleep(retry_delay(response.headers.get("retry-after")))
        raise BrokerError.from_response(response)


def entity_rows(entities: pd.DataFrame) -> list[dict[str, str]]:
    """``entities``' ``customer_token`` and ``event_timestamp`` as wire rows (ISO 8601)."""
    stamps = pd.to_datetime(entities["event_timestamp"])
    if stamps.isna().any() or entities["customer_token"].isna().any():
        raise ValueError("entities has missing customer_token or event_timestamp values")
    return [
        {"customer_token": str(token), "event_timestamp": stamp.isoformat()}
        for token, stamp in zip(entities["customer_token"], stamps, strict=True)
    ]
