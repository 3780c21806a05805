"""Silver -> Gold and feature transforms as SQL, written once for two engines.

Each transform is a function of a :class:`Dialect` returning SQL over named input tables. The
few expressions DuckDB and Spark SQL spell differently (month labels, day differences,
rounding) come from the dialect; everything else is the common subset, so both engines compute
the same tables (a test compares them). Floating results are rounded to 6 decimals for that
reason: the engines sum in different orders. Shares average integers 0/1, not 0.0/1.0: Spark
reads ``1.0`` as DECIMAL(2,1), whose average keeps only 5 decimals.

Grain rules: ``fact_order_item`` has exactly one row per Silver order item. Reviews (several
per order possible) are averaged per order and payments are not joined, so nothing fans out;
missing dimension rows surface as NULL keys that the gate refuses instead of dropped rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa


@dataclass(frozen=True)
class Dialect:
    name: str
    #: 'YYYY-MM' of a timestamp.
    year_month: Callable[[str], str]
    #: Whole days from date ``a`` to date ``b`` (b - a).
    days_between: Callable[[str, str], str]
    #: Whole seconds from timestamp ``a`` to timestamp ``b`` (BIGINT: sums of it are exact).
    seconds_between: Callable[[str, str], str]
    #: A DOUBLE rounded to ``n`` decimals, half away from zero. DuckDB rounds the exact binary
    #: value, the Spark form rounds ``x * 10^n``: near-ties can differ (measured: 6.0665625),
    #: so ratios of integers use :meth:`round_ratio` instead.
    round: Callable[[str, int], str]
    #: First instant of the month after the timestamp's month.
    next_month_start: Callable[[str], str]
    #: Integer division of BIGINTs (truncating).
    int_div: Callable[[str, str], str]

    def round_ratio(self, num: str, den: str, n: int) -> str:
        """``num / den`` (BIGINT expressions) rounded half away from zero to ``n`` decimals in
        exact integer arithmetic, as a DOUBLE (NULL where ``den`` is 0). The engines round a
        DOUBLE differently on near-ties (DuckDB rounds its exact binary value, Spark and Sail
        ``x * 10^n``: 6.0665625 became 6.066562 and 6.066563); a ratio of integers has no such
        doubt, so both compute the same value."""
        scale = 10**n
        q = self.int_div(f"(abs({num}) * {2 * scale} + ({den}))", f"(2 * nullif({den}, 0))")
        return f"(CAST(sign({num}) * {q} AS DOUBLE) / CAST({scale} AS DOUBLE))"


DUCKDB = Dialect(
    "duckdb",
    year_month=lambda ts: f"strftime({ts}, '%Y-%m')",
    days_between=lambda a, b: f"CAST(date_diff('day', {a}, {b}) AS INTEGER)",
    seconds_between=lambda a, b: f"date_diff('second', {a}, {b})",
    round=lambda x, n: f"round({x}, {n})",
    next_month_start=lambda ts: f"(date_trunc('month', {ts}) + INTERVAL 1 MONTH)",
    int_div=lambda a, b: f"CAST(({a}) // ({b}) AS BIGINT)",
)
SPARK = Dialect(
    "spark",
    year_month=lambda ts: f"date_format({ts}, 'yyyy-MM')",
    days_between=lambda a, b: f"CAST(datediff({b}, {a}) AS INT)",
    seconds_between=lambda a, b: f"(unix_seconds({b}) - unix_seconds({a}))",
    round=lambda x, n: f"(round({x} * 1E{n}) / 1E{n})",
    next_month_start=lambda ts: f"(date_trunc('MONTH', {ts}) + INTERVAL 1 MONTH)",
    int_div=lambda a, b: f"CAST(({a}) div ({b}) AS BIGINT)",
)

Query = Callable[[Dialect], str]


def dim_customer(d: Dialect) -> str:
    """Inputs: customers, orders, br_states."""
    return """
        WITH visits AS (
            SELECT c.customer_token, c.customer_zip3, c.customer_city, c.customer_state,
                   o.purchased_at,
                   row_number() OVER (PARTITION BY c.customer_token
                                      ORDER BY o.purchased_at DESC, c.customer_id DESC) AS rn,
                   min(o.purchased_at) OVER (PARTITION BY c.customer_token) AS first_purchase_at,
                   count(*) OVER (PARTITION BY c.customer_token) AS orders
            FROM customers c JOIN orders o ON o.customer_id = c.customer_id
        )
        SELECT v.customer_token, v.customer_zip3, v.customer_city, v.customer_state,
               s.region AS customer_region, v.first_purchase_at,
               CAST(v.orders AS BIGINT) AS orders
        FROM visits v LEFT JOIN br_states s ON s.uf = v.customer_state
        WHERE v.rn = 1
    """


def dim_product(d: Dialect) -> str:
    """Inputs: products."""
    return """
        SELECT product_id, category, category_english, weight_g,
               CAST(length_cm AS BIGINT) * height_cm * width_cm AS volume_cm3, photos_qty
        FROM products
    """


def dim_seller(d: Dialect) -> str:
    """Inputs: sellers, br_states."""
    return """
        SELECT s.seller_id, s.seller_zip_prefix, s.seller_city, s.seller_state,
               b.region AS seller_region
        FROM sellers s LEFT JOIN br_states b ON b.uf = s.seller_state
    """


def fact_order_item(d: Dialect) -> str:
    """Inputs: order_items, orders, customers, sellers, order_reviews."""
    delivered_day = "CAST(o.delivered_customer_at AS DATE)"
    return f"""
        WITH review AS (
            SELECT order_id,
                   {d.round_ratio("sum(review_score)", "count(review_score)", 6)} AS review_score
            FROM order_reviews GROUP BY order_id
        )
        SELECT i.order_id, i.order_item_id, c.customer_token, i.product_id, i.seller_id,
               CAST(o.purchased_at AS DATE) AS date_key, o.purchased_at, o.order_status,
               i.price, i.freight_value, i.price + i.freight_value AS item_total,
               o.delivered_customer_at AS delivered_at, o.estimated_delivery_date,
               {d.days_between("o.estimated_delivery_date", delivered_day)}
                   AS delivery_delay_days,
               CASE WHEN o.delivered_customer_at IS NULL OR o.estimated_delivery_date IS NULL
                    THEN NULL ELSE {delivered_day} > o.estimated_delivery_date END AS is_late,
               r.review_score, c.customer_state, s.seller_state, i._raw_batch_id
        FROM order_items i
        LEFT JOIN orders o ON o.order_id = i.order_id
        LEFT JOIN customers c ON c.customer_id = o.customer_id
        LEFT JOIN sellers s ON s.seller_id = i.seller_id
        LEFT JOIN review r ON r.order_id = i.order_id
    """


#: What each input of ``fact_order_item`` says changed: the column of its change rows that
#: names the orders affected (directly, or through the orders or items that carry it).
FACT_CHANGE_COLUMNS = {
    "order_items": "order_id",
    "orders": "order_id",
    "order_reviews": "order_id",
    "customers": "customer_id",
    "sellers": "seller_id",
}


def fact_changed_orders() -> str:
    """The orders whose ``fact_order_item`` rows may differ, from each input's change rows
    (``changed_<input>``) and the current ``orders`` and ``order_items``: recomputing those
    orders' rows and merging them gives the table a full rebuild gives, since every fact row
    depends on its own order, item, customer, seller and reviews only. On DuckDB."""
    return """
        SELECT order_id FROM changed_order_items
        UNION SELECT order_id FROM changed_orders
        UNION SELECT order_id FROM changed_order_reviews
        UNION SELECT order_id FROM orders
              WHERE customer_id IN (SELECT customer_id FROM changed_customers)
        UNION SELECT order_id FROM order_items
              WHERE seller_id IN (SELECT seller_id FROM changed_sellers)
    """


def kpi_sales_monthly(d: Dialect) -> str:
    """Inputs: fact_order_item, dim_product."""
    return f"""
        SELECT {d.year_month("f.purchased_at")} AS year_month, f.customer_state,
               coalesce(p.category_english, 'unknown') AS category_english,
               CAST(count(DISTINCT f.order_id) AS BIGINT) AS orders,
               CAST(count(*) AS BIGINT) AS items,
               sum(f.price) AS revenue, sum(f.freight_value) AS freight
        FROM fact_order_item f LEFT JOIN dim_product p ON p.product_id = f.product_id
        GROUP BY {d.year_month("f.purchased_at")}, f.customer_state,
                 coalesce(p.category_english, 'unknown')
    """


def kpi_delivery(d: Dialect) -> str:
    """Inputs: fact_order_item (delivered orders, order grain)."""
    late = "CASE WHEN CAST(delivered_at AS DATE) > estimated THEN 1 ELSE 0 END"
    # Whole seconds summed exactly, divided once: the mean does not depend on summation order.
    seconds = d.seconds_between("purchased_at", "delivered_at")
    delay = d.days_between("estimated", "CAST(delivered_at AS DATE)")
    return f"""
        WITH o AS (
            SELECT order_id, min(purchased_at) AS purchased_at, min(delivered_at) AS delivered_at,
                   min(estimated_delivery_date) AS estimated, min(customer_state) AS customer_state
            FROM fact_order_item
            WHERE order_status = 'delivered' AND delivered_at IS NOT NULL
            GROUP BY order_id
        )
        SELECT {d.year_month("purchased_at")} AS year_month, customer_state,
               CAST(count(*) AS BIGINT) AS delivered_orders,
               CAST(sum({late}) AS BIGINT) AS late_orders,
               {d.round_ratio(f"sum({late})", "count(*)", 6)} AS late_rate,
               {d.round_ratio(f"sum({seconds})", "count(*) * 86400", 6)} AS avg_delivery_days,
               {d.round_ratio(f"sum({delay})", "count(*)", 6)} AS avg_delay_days
        FROM o
        GROUP BY {d.year_month("purchased_at")}, customer_state
    """


def kpi_review_score(d: Dialect) -> str:
    """Inputs: fact_order_item, dim_product (order x category grain)."""
    return f"""
        WITH oc AS (
            SELECT DISTINCT f.order_id, {d.year_month("f.purchased_at")} AS year_month,
                   coalesce(p.category_english, 'unknown') AS category_english, f.review_score
            FROM fact_order_item f LEFT JOIN dim_product p ON p.product_id = f.product_id
            WHERE f.review_score IS NOT NULL
        )
        SELECT year_month, category_english, CAST(count(*) AS BIGINT) AS reviewed_orders,
               {d.round("avg(review_score)", 6)} AS avg_score,
               {d.round_ratio("sum(CASE WHEN review_score <= 2 THEN 1 ELSE 0 END)", "count(*)", 6)}
                   AS share_low,
               {d.round_ratio("sum(CASE WHEN review_score >= 5 THEN 1 ELSE 0 END)", "count(*)", 6)}
                   AS share_top
        FROM oc GROUP BY year_month, category_english
    """


def customer_rfm(d: Dialect) -> str:
    """Inputs: fact_order_item. One row per person and month with orders (point in time)."""
    if d is SPARK:
        return _customer_rfm_by_join(d)
    return f"""
        {_rfm_monthly(d)}
        SELECT customer_token, event_timestamp, state AS customer_state,
               {
        d.days_between("CAST(max(last_purchase) OVER w AS DATE)", "CAST(event_timestamp AS DATE)")
    } AS recency_days,
               CAST(sum(n) OVER w AS BIGINT) AS frequency,
               sum(spend) OVER w AS monetary,
               {d.round("sum(score_sum) OVER w / nullif(sum(scored) OVER w, 0)", 6)}
                   AS avg_review_score,
               {d.round_ratio("CAST(sum(late) OVER w AS BIGINT)", "sum(delivered) OVER w", 6)}
                   AS late_delivery_rate
        FROM monthly
        WINDOW w AS (PARTITION BY customer_token ORDER BY event_timestamp
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    """


def _rfm_monthly(d: Dialect) -> str:
    """The CTEs ``o`` (one row per order) and ``monthly`` (per person and month)."""
    return f"""
        WITH o AS (
            SELECT order_id, customer_token, min(customer_state) AS customer_state,
                   min(purchased_at) AS purchased_at, sum(item_total) AS order_total,
                   min(review_score) AS review_score,
                   max(CASE WHEN is_late THEN 1 ELSE 0 END) AS late,
                   max(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END) AS delivered
            FROM fact_order_item GROUP BY order_id, customer_token
        ),
        monthly AS (
            SELECT customer_token, {d.next_month_start("purchased_at")} AS event_timestamp,
                   count(*) AS n, sum(order_total) AS spend,
                   sum(review_score) AS score_sum, count(review_score) AS scored,
                   sum(late) AS late, sum(delivered) AS delivered,
                   max(purchased_at) AS last_purchase, min(customer_state) AS state
            FROM o
            GROUP BY customer_token, {d.next_month_start("purchased_at")}
        )"""


def _customer_rfm_by_join(d: Dialect) -> str:
    """The same rows with each month joined to the months up to it, all running totals in one
    aggregate. Sail 0.7 evaluates each window aggregate of the window form in a pass of its
    own (one running sum cost about as much as the whole monthly rollup, and there are
    seven): over 300k synthetic orders the window form took 28.6 s and this 10.5 s on Sail,
    the rows identical. A person has a few months, so the join is small. Sums of integers and
    decimals and a max are exact, so the values are the window form's; ``<=>`` keeps a null
    token's months together, as the window's partition does."""
    return f"""
        {_rfm_monthly(d)},
        running AS (
            SELECT m.customer_token, m.event_timestamp, min(m.state) AS state,
                   max(p.last_purchase) AS last_purchase, sum(p.n) AS n,
                   sum(p.spend) AS spend, sum(p.score_sum) AS score_sum,
                   sum(p.scored) AS scored, sum(p.late) AS late, sum(p.delivered) AS delivered
            FROM monthly m JOIN monthly p
              ON p.customer_token <=> m.customer_token AND p.event_timestamp <= m.event_timestamp
            GROUP BY m.customer_token, m.event_timestamp
        )
        SELECT customer_token, event_timestamp, state AS customer_state,
               {
        d.days_between("CAST(last_purchase AS DATE)", "CAST(event_timestamp AS DATE)")
    } AS recency_days,
               CAST(n AS BIGINT) AS frequency,
               spend AS monetary,
               {d.round("score_sum / nullif(scored, 0)", 6)} AS avg_review_score,
               {d.round_ratio("CAST(late AS BIGINT)", "delivered", 6)} AS late_delivery_rate
        FROM running
    """


def dim_date(first: date, last: date) -> pa.Table:
    """Every day from ``first`` to ``last`` (inclusive); engine-independent."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return pa.table(
        {
            "date_key": pa.array(days, pa.date32()),
            "year": pa.array([x.year for x in days], pa.int32()),
            "quarter": pa.array([(x.month - 1) // 3 + 1 for x in days], pa.int32()),
            "month": pa.array([x.month for x in days], pa.int32()),
            "day": pa.array([x.day for x in days], pa.int32()),
            "iso_weekday": pa.array([x.isoweekday() for x in days], pa.int32()),
            "is_weekend": pa.array([x.isoweekday() >= 6 for x in days], pa.bool_()),
            "year_month": pa.array([f"{x.year:04d}-{x.month:02d}" for x in days], pa.string()),
        }
    )


#: Gold table -> (query, the tables it reads).
GOLD_QUERIES: dict[str, tuple[Query, tuple[str, ...]]] = {
    "dim_customer": (dim_customer, ("customers", "orders", "br_states")),
    "dim_product": (dim_product, ("products",)),
    "dim_seller": (dim_seller, ("sellers", "br_states")),
    "fact_order_item": (
        fact_order_item,
        ("order_items", "orders", "customers", "sellers", "order_reviews"),
    ),
    "kpi_sales_monthly": (kpi_sales_monthly, ("fact_order_item", "dim_product")),
    "kpi_delivery": (kpi_delivery, ("fact_order_item",)),
    "kpi_review_score": (kpi_review_score, ("fact_order_item", "dim_product")),
}
