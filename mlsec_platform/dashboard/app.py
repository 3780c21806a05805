"""The BI dashboard over Gold (a Streamlit script; `mlsec dashboard` serves it).

Every number on the page comes from one broker read per Gold KPI table with the viewer's
token (mlsec_platform.dashboard.data): what the viewer's policy hides or masks stays hidden or
masked here, and each page load is audited under the viewer's name. A refused read shows the
broker's reason in place of its charts, never a traceback.
"""

from __future__ import annotations

import os

import streamlit as st

from mlsec_platform.dashboard.data import (
    VIEWER_ENV,
    Panel,
    delivery_by_month,
    load_panels,
    reviews_by_month,
    sales_by,
    viewer_client,
)


def _section(title: str, panel: Panel) -> bool:
    """The section's header and where its numbers come from; False (and the broker's reason
    in place of the charts) when the read was refused."""
    st.header(title)
    if panel.refusal:
        st.error(panel.refusal)
        return False
    masked = ", ".join(f"{c}: {m}" for c, m in panel.masks.items()) or "none"
    st.caption(
        f"{panel.dataset} v{panel.delta_version}, {len(panel.frame)} rows read; masked: {masked}"
    )
    if panel.truncated:
        st.warning(f"Only the first {len(panel.frame)} rows of {panel.dataset} are shown.")
    return True


def _sales(panel: Panel) -> None:
    if not _section("Sales", panel):
        return
    st.metric("Revenue (BRL)", f"{panel.frame['revenue'].sum():,.2f}")
    st.subheader("Sales by month")
    st.bar_chart(sales_by(panel.frame, "year_month"), x="year_month", y="revenue")
    st.subheader("Sales by state")
    by_state = sales_by(panel.frame, "customer_state")
    st.bar_chart(by_state, x="customer_state", y="revenue")
    st.table(by_state.set_index("customer_state"))
    st.subheader("Sales by category")
    by_category = sales_by(panel.frame, "category_english")
    st.bar_chart(by_category.head(15), x="category_english", y="revenue", horizontal=True)


def _delivery(panel: Panel) -> None:
    if not _section("Delivery delay", panel):
        return
    monthly = delivery_by_month(panel.frame)
    st.line_chart(monthly, x="year_month", y="avg_delay_days")
    st.line_chart(monthly, x="year_month", y="late_rate")


def _reviews(panel: Panel) -> None:
    if not _section("Review score", panel):
        return
    st.line_chart(reviews_by_month(panel.frame), x="year_month", y="avg_score")


def main() -> None:
    """The page: one section per Gold KPI table."""
    st.set_page_config(page_title="mlsec: Olist sales", layout="wide")
    st.title("Olist sales, read through the Access Broker")
    st.caption(f"Viewer: {os.environ.get(VIEWER_ENV, 'unknown')}")
    with viewer_client() as broker:
        panels = load_panels(broker)
    _sales(panels["sales"])
    _delivery(panels["delivery"])
    _reviews(panels["reviews"])


# Streamlit runs this file as __main__; importing it (a test, a linter) draws nothing.
if __name__ == "__main__":
    main()
