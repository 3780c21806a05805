"""The Access Broker's API in Python: queries, features, catalog and health."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from broker_api.client.arguments import FilterSpec, OrderSpec, entity_rows, names, query_body
from broker_api.client.frames import Decimals, answers_frame, check_decimals
from broker_api.client.transport import BrokerTransport

#: Rows a page of :meth:`BrokerClient.query` by default (policies allow 100 or more).
DEFAULT_PAGE_SIZE = 100


def receipt_attrs(receipts: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """A frame's receipt attrs: ``receipt`` (its first request's) and ``receipts`` (one per
    request, as ``request_ids``); none when the client does not ask for receipts."""
    if not receipts or receipts[0] is None:
        return {}
    return {"receipt": receipts[0], "receipts": list(receipts)}


class BrokerClient(BrokerTransport):
    """The Access Broker over HTTP; use as a context manager or call :meth:`close`."""

    # -- queries -------------------------------------------------------------------------------

    def query(
        self,
        dataset: str,
        columns: str | Sequence[str],
        *,
        filters: Sequence[FilterSpec] | None = None,
        order_by: OrderSpec | Sequence[OrderSpec] | None = None,
        limit: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        version: int | None = None,
        reveal: Mapping[str, Any] | Any | None = None,
        max_pages: int | None = None,
        cursor: str | None = None,
        decimals: Decimals = "arrow",
    ) -> pd.DataFrame:
        """At most ``limit`` rows of ``dataset`` (None: all of them), fetched ``page_size``
        rows a page (fewer when ``limit`` is smaller) by following ``next_cursor``, for at most
        ``max_pages`` pages. ``cursor`` resumes from a previous frame's ``attrs["next_cursor"]``
        (same arguments: a cursor is bound to its query, though not to its page size).

        Decimal columns are exact (``decimals="arrow"``: an Arrow decimal dtype) or
        ``"float"`` (float64).

        ``attrs``: ``lineage`` and ``policy`` (first page), ``masks`` ({column: mask}),
        ``request_ids`` (one per page), ``next_cursor`` (None when the query is exhausted; set
        when ``limit`` or ``max_pages`` stopped it early) and ``correlation_id``; with
        ``receipts=True``, ``receipt`` and ``receipts`` (:func:`receipt_attrs`).
        """
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1 (or None for every row)")
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if max_pages is not None and max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        check_decimals(decimals)
        body = query_body(
            dataset,
            columns,
            filters=filters,
            order_by=order_by,
            limit=page_size,
            version=version,
            reveal=reveal,
        )
        cid = self._correlation()
        pages: list[dict[str, Any]] = []
        receipts: list[dict[str, Any] | None] = []
        rows = 0
        while True:
            # A cursor resumes its query at any page size: the last page asks only for the
            # rows still wanted, so the frame's cursor resumes exactly after them.
            size = page_size if limit is None else min(page_size, limit - rows)
            page, receipt = self._exchange(
                "POST", "/query", cid, json={**body, "limit": size, "cursor": cursor}
            )
            pages.append(page)
            receipts.append(receipt)
            rows += len(page["rows"])
            cursor = page.get("next_cursor")
            if (
                cursor is None
                or (limit is not None and rows >= limit)
                or (max_pages is not None and len(pages) >= max_pages)
            ):
                break
        return answers_frame(
            pages, "rows", cid, decimals, next_cursor=cursor, **receipt_attrs(receipts)
        )

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
        self,
        group: str,
        entities: Sequence[str],
        features: Sequence[str] | None = None,
        *,
        decimals: Decimals = "arrow",
    ) -> pd.DataFrame:
        """Latest feature values of ``entities`` (customer tokens) in feature ``group``.

        ``attrs``: ``group_version``, ``freshness``, ``lineage``, ``missing`` (entities not
        found), ``policy``, ``masks``, ``request_ids``, ``correlation_id``.
        """
        params: list[tuple[str, str]] = [("group", group)]
        params += [("entity", e) for e in names(entities, "entities")]
        if features is not None:
            params += [("feature", f) for f in names(features, "features")]
        check_decimals(decimals)
        cid = self._correlation()
        body, receipt = self._exchange("GET", "/feature/vector", cid, params=params)
        return answers_frame(
            [body],
            "vectors",
            cid,
            decimals,
            group_version=body.get("group_version"),
            freshness=body.get("freshness"),
            missing=body.get("missing", []),
            **receipt_attrs([receipt]),
        )

    def historical(
        self,
        group: str,
        features: Sequence[str],
        entities: pd.DataFrame,
        *,
        version: int | None = None,
        chunk_size: int = DEFAULT_PAGE_SIZE,
        decimals: Decimals = "arrow",
    ) -> pd.DataFrame:
        """Point-in-time feature values: for each ``(customer_token, event_timestamp)`` row of
        ``entities``, the values as of that moment, sent ``chunk_size`` rows a request (the
        policy's rows per page caps it).

        ``attrs``: ``lineage`` and ``policy`` (first chunk), ``masks``, ``request_ids``,
        ``correlation_id``.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        check_decimals(decimals)
        missing = {"customer_token", "event_timestamp"} - set(entities.columns)
        if missing:
            raise ValueError(f"entities lacks column(s) {sorted(missing)}")
        wire = entity_rows(entities)
        if not wire:
            raise ValueError("entities is empty")
        cid = self._correlation()
        answers, receipts = [], []
        for start in range(0, len(wire), chunk_size):
            body: dict[str, Any] = {
                "group": group,
                "features": names(features, "features"),
                "entities": wire[start : start + chunk_size],
            }
            if version is not None:
                body["version"] = int(version)
            answer, receipt = self._exchange("POST", "/feature/historical", cid, json=body)
            answers.append(answer)
            receipts.append(receipt)
        return answers_frame(answers, "rows", cid, decimals, **receipt_attrs(receipts))

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
