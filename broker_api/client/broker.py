"""The Access Broker's API in Python: queries, features, catalog and health."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from broker_api.client.arguments import FilterSpec, OrderSpec, entity_rows, names, query_body
from broker_api.client.frames import answers_frame
from broker_api.client.transport import BrokerTransport
from broker_api.models import MAX_PAGE_ROWS


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
        return answers_frame(pages, "rows", cid, next_cursor=cursor)

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
        params += [("entity", e) for e in names(entities, "entities")]
        if features is not None:
            params += [("feature", f) for f in names(features, "features")]
        cid = self._correlation()
        body = self._send("GET", "/feature/vector", cid, params=params)
        return answers_frame(
            [body],
            "vectors",
            cid,
            group_version=body.get("group_version"),
            freshness=body.get("freshness"),
            missing=body.get("missing", []),
        )

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
                "features": names(features, "features"),
                "entities": wire[start : start + MAX_PAGE_ROWS],
            }
            if version is not None:
                body["version"] = int(version)
            answers.append(self._send("POST", "/feature/historical", cid, json=body))
        return answers_frame(answers, "rows", cid)

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
