"""Disclosure budgets: how many distinct data subjects, and how many rows, a project may be
shown for a purpose per window (the policy's ``budgets``, :mod:`broker_api.policy.guards`).

Counted from what an answer returns, after the row scope, the page limit and the byte cap cut
it, before it leaves: the data subject of a row is its customer key (``customer_token``, else
``customer_id``), counted as a keyed hash of the stored value, so a masked key counts as the
person it stands for and the counters hold no key. A subject already disclosed in the window
costs nothing again, on any route or page; an answer without rows costs nothing at all. The
counts live with the other replicas' in PostgreSQL
(:mod:`mlsec_platform.serving.disclosures`): one round trip per answer of a budgeted project
and purpose that returns rows (none for the others). An answer that would cross a cap is
refused (429, naming the budget, ``Retry-After`` the window's end) and counts nothing; an
accepted one carries what is left in ``X-Disclosure-*`` headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter

from broker_api.errors import LimitReached
from broker_api.policy.guards import UNCAPPED, Budget
from broker_api.principal import Principal
from broker_api.shared_limits import LimitsUnavailable
from mlsec_platform.catalog.datasets import CUSTOMERS
from mlsec_platform.catalog.governance import DatasetSpec
from mlsec_platform.serving.counters import CountersUnavailable
from mlsec_platform.serving.disclosures import Disclosed, SharedDisclosures

#: The columns that name a data subject, in order of preference (the person's token first).
SUBJECT_COLUMNS = (CUSTOMERS.person.name, "customer_id")


class BudgetExhausted(LimitReached):
    """The answer would disclose more than a disclosure budget allows in its window."""


def subject_column(spec: DatasetSpec) -> str | None:
    """The column naming the data subject of each row of ``spec``, if it has one."""
    return next((c for c in SUBJECT_COLUMNS if c in spec.column_names), None)


def subject_keys(table: pa.Table, column: str | None) -> list[Any]:
    """The data subjects' keys of ``table``'s rows (none: no subject column)."""
    return [] if column is None else table.column(column).to_pylist()


class DisclosureBudgets:
    """Charges answers to the budget of the caller's project and purpose (see the module)."""

    def __init__(self, store: SharedDisclosures, key: bytes, registry: CollectorRegistry) -> None:
        self._store = store
        self._key = hashlib.blake2b(key, person=b"mlsec-disclose").digest()
        self.refused_total = Counter(
            "disclosure_refused",
            "Answers refused by a disclosure budget.",
            ["budget"],
            namespace="broker",
            registry=registry,
        )

    def _hash(self, column: str, value: Any) -> str:
        return hashlib.blake2b(
            f"{column}={value}".encode(), key=self._key, digest_size=16
        ).hexdigest()

    def _disclose(self, budget: Budget, project: str, keys: list[str], rows: int) -> Disclosed:
        try:
            return self._store.disclose(
                f"{budget.name}:{project}",
                budget.window_seconds,
                keys,
                rows,
                UNCAPPED if budget.subjects is None else budget.subjects,
                UNCAPPED if budget.rows is None else budget.rows,
            )
        except CountersUnavailable as exc:
            raise LimitsUnavailable(str(exc)) from None

    def charge(
        self,
        principal: Principal,
        budget: Budget | None,
        column: str | None,
        keys: Iterable[Any],
        rows: int,
        audit: dict[str, Any],
        headers: dict[str, str],
    ) -> None:
        """Count ``rows`` and the subjects ``keys`` (values of ``column``) an answer returns
        against ``budget``, or refuse it (429); what is left goes into ``headers``."""
        if budget is None:
            return
        hashed = sorted({self._hash(column, k) for k in keys if k is not None} if column else ())
        if rows == 0 and not hashed:
            return  # an answer that discloses nothing costs nothing
        state = self._disclose(budget, principal.project, hashed, rows)
        audit.update(budget=budget.name)
        if not state.allowed:
            self.refused_total.labels(budget=budget.name).inc()
            raise BudgetExhausted(
                f"disclosure budget {budget.name!r} of project {principal.project!r} "
                f"({_caps(budget)} per {budget.window_seconds} s) would be crossed by this "
                f"answer ({len(hashed)} data subjects, {rows} rows): ask for less, or after "
                "the window ends",
                retry_after=max(1, round(state.resets_in)),
            )
        headers.update(remaining_headers(budget, state))

    def state(self, principal: Principal, budget: Budget | None) -> dict[str, Any] | None:
        """The budget and what is left of it now, for ``/explain`` (counts nothing)."""
        if budget is None:
            return None
        state = self._disclose(budget, principal.project, [], 0)
        return {
            "name": budget.name,
            "window_seconds": budget.window_seconds,
            "resets_in_seconds": round(state.resets_in, 3),
            "subjects": _left(budget.subjects, state.subjects),
            "rows": _left(budget.rows, state.rows),
        }


def _caps(budget: Budget) -> str:
    caps = [f"{budget.subjects} data subjects"] if budget.subjects is not None else []
    return " and ".join([*caps, *([f"{budget.rows} rows"] if budget.rows is not None else [])])


def _left(cap: int | None, used: int) -> dict[str, int] | None:
    return None if cap is None else {"cap": cap, "used": used, "remaining": max(0, cap - used)}


def remaining_headers(budget: Budget, state: Disclosed) -> dict[str, str]:
    """``X-Disclosure-*``: the budget's name, what is left of it and when its window ends."""
    headers = {
        "x-disclosure-budget": budget.name,
        "x-disclosure-reset": str(max(1, round(state.resets_in))),
    }
    if budget.subjects is not None:
        headers["x-disclosure-subjects-remaining"] = str(max(0, budget.subjects - state.subjects))
    if budget.rows is not None:
        headers["x-disclosure-rows-remaining"] = str(max(0, budget.rows - state.rows))
    return headers
