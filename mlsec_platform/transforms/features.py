"""Feature transforms over Silver, written once for both engines (see :mod:`.gold`).

``customer_order_status`` reads the order lifecycle events and the customers they name: the
events carry the order's ``customer_id`` only, and ``silver/customers`` is where that id meets
the person's token, so the token a feature row is keyed by is the one every other table of
the person carries (``gold/dim_customer``, ``features/customer_rfm``). An event whose customer
is not in Silver yet has no person to count for; it counts once the customer's row arrives
(the customer's change recomputes that person).
"""

from __future__ import annotations

from mlsec_platform.transforms.gold import Dialect

#: Statuses after which an order is no longer open (``unavailable``: Olist's own cancellation).
DELIVERED = ("delivered",)
CANCELED = ("canceled", "unavailable")


def _among(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def customer_order_status(d: Dialect) -> str:
    """Inputs: order_events, customers. One row per person: their orders' current statuses
    (each order's latest event; ties broken by event id, so every run picks the same one)."""
    closed = _among("status", DELIVERED + CANCELED)
    return f"""
        WITH ev AS (
            SELECT c.customer_token, c.customer_state, e.order_id, e.status, e.occurred_at,
                   row_number() OVER (PARTITION BY e.order_id
                                      ORDER BY e.occurred_at DESC, e.event_id DESC) AS nth,
                   count(*) OVER (PARTITION BY e.order_id) AS order_events
            FROM order_events e JOIN customers c ON c.customer_id = e.customer_id
        ),
        latest AS (
            SELECT *, row_number() OVER (PARTITION BY customer_token
                                         ORDER BY occurred_at DESC, order_id DESC) AS nth_order
            FROM ev WHERE nth = 1
        )
        SELECT customer_token,
               max(occurred_at) AS event_timestamp,
               max(CASE WHEN nth_order = 1 THEN customer_state END) AS customer_state,
               max(CASE WHEN nth_order = 1 THEN status END) AS last_order_status,
               CAST(count(*) AS BIGINT) AS orders,
               CAST(sum(CASE WHEN {closed} THEN 0 ELSE 1 END) AS BIGINT) AS orders_open,
               CAST(sum(CASE WHEN {_among("status", DELIVERED)} THEN 1 ELSE 0 END) AS BIGINT)
                   AS orders_delivered,
               CAST(sum(CASE WHEN {_among("status", CANCELED)} THEN 1 ELSE 0 END) AS BIGINT)
                   AS orders_canceled,
               CAST(sum(order_events) AS BIGINT) AS events
        FROM latest GROUP BY customer_token
    """


#: The column each input's change feed is read for: both name customers by their order id.
ORDER_STATUS_CHANGE_COLUMNS = {"order_events": "customer_id", "customers": "customer_id"}

#: The people whose rows a run recomputes: everyone a changed event or customer row names.
CHANGED_PEOPLE = """
    SELECT DISTINCT customer_token FROM customers
    WHERE customer_id IN (SELECT customer_id FROM changed_order_events
                          UNION ALL SELECT customer_id FROM changed_customers)
"""

#: Those people's customer rows, then those rows' events: the inputs of their recomputation.
CUSTOMERS_OF = "SELECT * FROM customers WHERE customer_token IN (SELECT customer_token FROM people)"
EVENTS_OF = "SELECT * FROM order_events WHERE customer_id IN (SELECT customer_id FROM customers)"
