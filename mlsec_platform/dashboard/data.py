"""What the dashboard shows, read through the Access Broker with the viewer's own token.

Plain Python (no Streamlit): each Gold KPI table is read once through the SDK, so the broker's
policy (purpose, row scope, masks, limits) and audit apply to every chart, and the charts are
aggregations of what the viewer was allowed to see. A refusal becomes the panel's message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from broker_api.client import BrokerClient, BrokerError, ClientTls

#: The environment `mlsec dashboard` hands the Streamlit process: the viewer's token (never
#: printed), the broker's URL and the viewer's name for the page's caption.
TOKEN_ENV = "MLSEC_DASHBOARD_TOKEN"  # noqa: S105 - the variable's name, not a token
BROKER_URL_ENV = "MLSEC_DASHBOARD_BROKER"
VIEWER_ENV = "MLSEC_DASHBOARD_VIEWER"

#: Rows read per KPI table at most (the broker's pages are at most 1,000 rows for analysts).
MAX_ROWS = 50_000
PAGE_SIZE = 1_000


@dataclass(frozen=True)
class GoldRead:
    """One read of a Gold KPI table: the columns the charts of a panel need."""

    dataset: str
    columns: tuple[str, ...]


READS = {
    "sales": GoldRead(
        "gold/kpi_sales_monthly",
        ("year_month", "customer_state", "category_english", "orders", "revenue"),
    ),
    "delivery": GoldRead(
        "gold/kpi_delivery",
        ("year_month", "customer_state", "delivered_orders", "late_orders", "avg_delay_days"),
    ),
    "reviews": GoldRead(
        "gold/kpi_review_score",
        ("year_month", "category_english", "reviewed_orders", "avg_score"),
    ),
}


@dataclass
class Panel:
    """What one read gave: its rows, or the broker's refusal as a sentence for the page."""

    dataset: str
    frame: pd.DataFrame | None = None
    refusal: str | None = None
    masks: dict[str, str] = field(default_factory=dict)
    delta_version: int | None = None
    truncated: bool = False


def refusal_text(error: BrokerError) -> str:
    """A refusal as the viewer reads it: what happened, what to do, and the ids to quote."""
    advice = {
        401: "the token is missing, expired or not bound to this certificate: restart "
        "`mlsec dashboard`",
        403: "the broker's policy does not allow this read for this viewer",
        404: "no such dataset or version",
        410: "this version is gone",
        429: "a rate or quota limit: reload later",
    }.get(error.status, "the broker could not answer: try later")
    return (
        f"The broker refused ({error.status}): {error.reason}. {advice[0].upper()}{advice[1:]}. "
        f"Request id {error.request_id}."
    )


def read_panel(broker: BrokerClient, read: GoldRead) -> Panel:
    """``read`` through ``broker`` (float decimals: the charts plot them)."""
    try:
        frame = broker.query(
            read.dataset,
            list(read.columns),
            order_by=["year_month"],
            limit=MAX_ROWS,
            page_size=PAGE_SIZE,
            decimals="float",
        )
    except BrokerError as error:
        return Panel(read.dataset, refusal=refusal_text(error))
    lineage = frame.attrs.get("lineage") or {}
    return Panel(
        read.dataset,
        frame,
        masks=dict(frame.attrs.get("masks") or {}),
        delta_version=lineage.get("delta_version"),
        truncated=frame.attrs.get("next_cursor") is not None,
    )


def sales_by(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Revenue and orders per value of ``column`` (month, state or category), largest first
    except by month (in time order)."""
    out = frame.groupby(column, as_index=False)[["revenue", "orders"]].sum()
    if column == "year_month":
        return out.sort_values(column, ignore_index=True)
    return out.sort_values("revenue", ascending=False, ignore_index=True)


def delivery_by_month(frame: pd.DataFrame) -> pd.DataFrame:
    """Per month: mean delay in days (weighted by delivered orders) and the share delivered late."""
    weighted = frame.assign(delay_x_orders=frame["avg_delay_days"] * frame["delivered_orders"])
    out = weighted.groupby("year_month", as_index=False)[
        ["delivered_orders", "late_orders", "delay_x_orders"]
    ].sum()
    delivered = out["delivered_orders"].where(out["delivered_orders"] > 0)
    out["avg_delay_days"] = (out["delay_x_orders"] / delivered).round(2)
    out["late_rate"] = (out["late_orders"] / delivered).round(4)
    return out.drop(columns="delay_x_orders").sort_values("year_month", ignore_index=True)


def reviews_by_month(frame: pd.DataFrame) -> pd.DataFrame:
    """Per month: the mean review score, weighted by reviewed orders."""
    weighted = frame.assign(score_x_orders=frame["avg_score"] * frame["reviewed_orders"])
    out = weighted.groupby("year_month", as_index=False)[
        ["reviewed_orders", "score_x_orders"]
    ].sum()
    reviewed = out["reviewed_orders"].where(out["reviewed_orders"] > 0)
    out["avg_score"] = (out["score_x_orders"] / reviewed).round(3)
    return out.drop(columns="score_x_orders").sort_values("year_month", ignore_index=True)


def viewer_client(environ: Mapping[str, str] | None = None) -> BrokerClient:
    """The broker client of the viewer `mlsec dashboard` started this process for."""
    env = os.environ if environ is None else environ
    return BrokerClient(env[BROKER_URL_ENV], env[TOKEN_ENV], tls=ClientTls.from_env(env))


def load_panels(broker: BrokerClient) -> dict[str, Panel]:
    """Every panel's read, in :data:`READS` order (one refused read leaves the others)."""
    return {name: read_panel(broker, read) for name, read in READS.items()}
