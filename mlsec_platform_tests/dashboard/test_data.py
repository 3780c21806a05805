"""The dashboard's aggregations of what the broker returned, and its refusal messages (no
server: the frames are what a KPI read returns)."""

from __future__ import annotations

import pandas as pd
import pytest

from broker_api.client import AccessDenied, RateLimited
from mlsec_platform.dashboard.data import (
    delivery_by_month,
    refusal_text,
    reviews_by_month,
    sales_by,
)

SALES = pd.DataFrame(
    {
        "year_month": ["2018-02", "2018-01", "2018-01", "2018-02"],
        "customer_state": ["SP", "SP", "RJ", "RJ"],
        "category_english": ["toys", "toys", "books", "toys"],
        "orders": [3, 2, 1, 4],
        "revenue": [30.0, 20.0, 5.5, 100.0],
    }
)


def test_sales_by_month_are_in_time_order():
    out = sales_by(SALES, "year_month")
    assert out["year_month"].tolist() == ["2018-01", "2018-02"]
    assert out["revenue"].tolist() == [25.5, 130.0]
    assert out["orders"].tolist() == [3, 7]


def test_sales_by_state_and_category_are_largest_first():
    assert sales_by(SALES, "customer_state")["customer_state"].tolist() == ["RJ", "SP"]
    by_category = sales_by(SALES, "category_english")
    assert by_category.to_dict("list") == {
        "category_english": ["toys", "books"],
        "revenue": [150.0, 5.5],
        "orders": [9, 1],
    }


def test_delivery_delay_is_weighted_by_delivered_orders():
    frame = pd.DataFrame(
        {
            "year_month": ["2018-01", "2018-01", "2018-02"],
            "customer_state": ["SP", "RJ", "SP"],
            "delivered_orders": [3, 1, 0],
            "late_orders": [1, 1, 0],
            "avg_delay_days": [-2.0, 6.0, None],
        }
    )
    out = delivery_by_month(frame)
    assert out["avg_delay_days"].iloc[0] == pytest.approx((3 * -2.0 + 6.0) / 4)
    assert out["late_rate"].iloc[0] == pytest.approx(0.5)
    # A month with nothing delivered has no delay or rate, rather than a division by zero.
    assert out["avg_delay_days"].isna().iloc[1] and out["late_rate"].isna().iloc[1]


def test_review_score_is_weighted_by_reviewed_orders():
    frame = pd.DataFrame(
        {
            "year_month": ["2018-01", "2018-01"],
            "category_english": ["toys", "books"],
            "reviewed_orders": [1, 3],
            "avg_score": [1.0, 5.0],
        }
    )
    assert reviews_by_month(frame)["avg_score"].tolist() == [4.0]


def test_a_refusal_reads_as_a_sentence_with_its_request_id():
    denied = refusal_text(AccessDenied(403, "no role grants gold/kpi_delivery", "req-1", "d-1"))
    assert denied.startswith("The broker refused (403): no role grants gold/kpi_delivery.")
    assert "policy does not allow" in denied and "req-1" in denied
    limited = refusal_text(RateLimited(429, "rate limit", "req-2", retry_after=30.0))
    assert "reload later" in limited and "Traceback" not in limited
