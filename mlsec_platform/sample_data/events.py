"""The ``order_status`` event stream of a generated data set: each order's lifecycle events.

Derived from the orders' timestamps (plus one stream for cancellation times), so the events of
a data set are the same on every run; event ids are UUIDv5 over ``(seed, order_id, type)``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlsec_platform.sample_data.arrays import lognormal_seconds, stream_rng
from mlsec_platform.sample_data.columns import iso_utc
from mlsec_platform.sample_data.olist import OlistDataset
from mlsec_platform.sample_data.vocab import DAY, HOUR, ORDER_STATUSES

EVENT_TYPES: tuple[str, ...] = (
    "order_created",
    "order_approved",
    "order_shipped",
    "order_delivered",
    "order_canceled",
)
_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "mlsec_platform.sources.olist.order_status")
_EVENT_CHUNK = 65_536


def order_status_events(dataset: OlistDataset) -> Iterator[dict]:
    """Yield the lifecycle events of every order, in time order (ties: order row, then stage).

    Each event is a dict with exactly the fields of ``EVENT_DOMAINS["order_status"]``:
    ``event_type`` is one of ``order_created``, ``order_approved``, ``order_shipped``,
    ``order_delivered``, ``order_canceled``; ``status`` is the order's status after the event
    (replaying an order's events ends in its ``order_status``: the approval of an order that
    stayed ``invoiced``/``processing`` carries that status, a cancellation carries ``canceled``
    or ``unavailable``); ``occurred_at`` is ISO 8601 UTC; ``seller_id`` is the first item's
    seller for shipped/delivered events, else ``None``; ``event_id`` is a UUIDv5 of (seed,
    order_id, event_type), stable across runs.
    """
    plan = _EventPlan.of(dataset)
    order_ids = plan.order_ids
    customer_ids = plan.customer_ids
    sellers = plan.first_sellers
    statuses = plan.status_names
    prefix = hashlib.sha1(  # UUIDv5 is defined over SHA-1
        _EVENT_NAMESPACE.bytes + f"{dataset.seed}/".encode(), usedforsecurity=False
    )
    for start in range(0, plan.size, _EVENT_CHUNK):
        stop = min(start + _EVENT_CHUNK, plan.size)
        occurred = iso_utc(plan.at[start:stop]).tolist()
        rows = plan.order_pos[start:stop].tolist()
        kinds = plan.kind[start:stop].tolist()
        status_codes = plan.status[start:stop].tolist()
        for row, kind, code, at in zip(rows, kinds, status_codes, occurred, strict=True):
            order_id = order_ids[row]
            event_type = EVENT_TYPES[kind]
            digest = prefix.copy()
            digest.update(f"{order_id}/{event_type}".encode())
            yield {
                "event_id": _uuid5_text(digest.digest()),
                "event_type": event_type,
                "order_id": order_id,
                "customer_id": customer_ids[row],
                "status": statuses[code],
                "occurred_at": at,
                "seller_id": sellers[row] if kind in (2, 3) else None,
            }


def count_order_status_events(dataset: OlistDataset) -> int:
    """How many events :func:`order_status_events` yields for this data set."""
    return _EventPlan.stages(dataset)[0]


def take_events(dataset: OlistDataset, n: int) -> list[dict]:
    """The first ``n`` events of :func:`order_status_events` (raises if there are fewer)."""
    events = list(islice(order_status_events(dataset), n))
    if len(events) < n:
        raise ValueError(f"the data set has only {len(events)} events, {n} were asked for")
    return events


def event_uuid(seed: int, order_id: str, event_type: str) -> str:
    """The event id of one order's event: ``uuid5(namespace, f"{seed}/{order_id}/{type}")``."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{seed}/{order_id}/{event_type}"))


def _uuid5_text(sha1_digest: bytes) -> str:
    """The text of a UUIDv5 whose SHA-1 digest is given (same as ``str(uuid.uuid5(...))``)."""
    raw = bytearray(sha1_digest[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _seconds(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Timestamp text -> (epoch seconds, valid mask)."""
    parsed = pc.cast(column, pa.timestamp("s")).combine_chunks()
    valid = np.asarray(parsed.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    values = parsed.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.int64), valid


@dataclass
class _EventPlan:
    """All events of a data set as parallel arrays, sorted by time."""

    order_pos: np.ndarray
    kind: np.ndarray
    status: np.ndarray
    at: np.ndarray
    order_ids: list[str]
    customer_ids: list[str]
    first_sellers: list[str | None]
    status_names: list[str]

    @property
    def size(self) -> int:
        return len(self.kind)

    @staticmethod
    def stages(dataset: OlistDataset):
        """Per-stage presence masks and times; first element is the total event count."""
        orders = dataset.tables["olist_orders"]
        status = orders["order_status"]
        purchase, _ = _seconds(orders["order_purchase_timestamp"])
        approved, has_approved = _seconds(orders["order_approved_at"])
        carrier, has_carrier = _seconds(orders["order_delivered_carrier_date"])
        delivered, has_delivered = _seconds(orders["order_delivered_customer_date"])

        def status_is(*names: str) -> np.ndarray:
            mask = pc.is_in(status, value_set=pa.array(names))
            return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)

        n = len(purchase)
        canceled = status_is("canceled", "unavailable")
        masks = (
            np.ones(n, dtype=bool),
            has_approved,
            has_carrier & status_is("shipped", "delivered"),
            has_delivered & status_is("delivered"),
            canceled,
        )
        rng = stream_rng(dataset.seed, "events.cancel")
        cancel_delay = np.clip(lognormal_seconds(rng, n, 20 * HOUR, 1.0), 60, 30 * DAY)
        cancel_at = np.where(has_approved, approved, purchase) + cancel_delay
        times = (purchase, approved, carrier, delivered, cancel_at)
        total = int(sum(int(m.sum()) for m in masks))
        return total, masks, times, status

    @classmethod
    def of(cls, dataset: OlistDataset) -> _EventPlan:
        _, masks, times, status = cls.stages(dataset)
        orders = dataset.tables["olist_orders"]
        names = [s for s, _ in ORDER_STATUSES]
        final = pc.index_in(status, value_set=pa.array(names))
        final = np.asarray(final.to_numpy(zero_copy_only=False), dtype=np.int64)
        natural = [names.index(s) for s in ("created", "approved", "shipped", "delivered")]
        kept_after_approval = np.isin(final, [names.index("invoiced"), names.index("processing")])
        positions, kinds, statuses, moments = [], [], [], []
        for kind, (mask, moment) in enumerate(zip(masks, times, strict=True)):
            rows = np.flatnonzero(mask)
            if kind == 4:
                code = final[rows]
            elif kind == 1:
                code = np.where(kept_after_approval[rows], final[rows], natural[1])
            else:
                code = np.full(len(rows), natural[kind])
            positions.append(rows)
            kinds.append(np.full(len(rows), kind, dtype=np.int64))
            statuses.append(code)
            moments.append(moment[rows])
        pos = np.concatenate(positions)
        kind = np.concatenate(kinds)
        at = np.concatenate(moments)
        order = np.lexsort((kind, pos, at))
        items = dataset.tables["olist_order_items"]
        first = pc.equal(items["order_item_id"], "1")
        first_items = items.filter(first)
        where = pc.index_in(orders["order_id"], value_set=first_items["order_id"].combine_chunks())
        sellers = first_items["seller_id"].take(where).to_pylist()
        return cls(
            order_pos=pos[order],
            kind=kind[order],
            status=np.concatenate(statuses)[order],
            at=at[order],
            order_ids=orders["order_id"].to_pylist(),
            customer_ids=orders["customer_id"].to_pylist(),
            first_sellers=sellers,
            status_names=names,
        )
