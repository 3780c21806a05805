"""Disclosure budgets, on two replicas: what answers return is counted (distinct data subjects
by their stored key, masked or not, across routes and pages; rows), once, in both; an answer
that would cross a cap is refused naming the budget and audited; one without rows costs
nothing; headers and /explain show what is left."""

from __future__ import annotations

from urllib.parse import quote

from mlsec_platform_tests.broker_api.conftest import (
    GUARDED,
    ROWS_CAP,
    SUBJECTS_CAP,
    bearer,
    ok,
    query,
)
from mlsec_platform_tests.helpers import audit_events, audit_head


def _left(response) -> tuple[int, int]:
    h = response.headers
    assert h["X-Disclosure-Budget"] == "probe-customers", dict(h)
    return int(h["X-Disclosure-Subjects-Remaining"]), int(h["X-Disclosure-Rows-Remaining"])


def _explained(client, token, **body) -> dict:
    body.setdefault("dataset", "gold/dim_customer")
    body.setdefault("columns", ["customer_token", "orders"])
    return ok(client.post("/explain", json=body, headers=bearer(token)))["budget"]


def test_subjects_are_counted_once_across_pages_routes_and_replicas(
    replicas,
    mint,
    superuser_dsn,
) -> None:
    here, there = replicas
    reader = mint("analyst", **{**GUARDED, "project": "budget-0", "clearance": "restricted"})
    first = query(here, reader, limit=3)
    tokens = [r["customer_token"] for r in ok(first)["rows"]]
    assert _left(first) == (SUBJECTS_CAP - 3, ROWS_CAP - 3)
    # The same people again, on the other replica: rows count, subjects do not.
    again = query(there, reader, limit=3)
    assert _left(again) == (SUBJECTS_CAP - 3, ROWS_CAP - 6)
    # The next page (by its cursor) brings three new people: the budget's subjects are spent.
    page2 = query(there, reader, limit=3, cursor=ok(first)["next_cursor"])
    assert _left(page2) == (0, ROWS_CAP - 9)
    # A feature vector of someone already disclosed costs no subject (another route).
    vector = here.get(
        f"/feature/vector?group=customer_rfm&entity={quote(tokens[0], safe='')}",
        headers=bearer(reader),
    )
    assert len(ok(vector)["vectors"]) == 1 and _left(vector)[0] == 0
    # A seventh person is refused on either replica, naming the budget; nothing is counted.
    before = audit_head(superuser_dsn)
    for client in (here, there):
        refused = query(client, reader, limit=1, cursor=ok(page2)["next_cursor"])
        assert refused.status_code == 429, refused.text
        assert "disclosure budget 'probe-customers'" in refused.json()["reason"]
        assert int(refused.headers["Retry-After"]) >= 1
    events = [
        e
        for e in audit_events(superuser_dsn, "broker.request", before)
        if e.get("subject") and e["status"] == 429
    ]
    assert len(events) == 2 and all(e["budget"] == "probe-customers" for e in events), events
    state = _explained(here, reader)
    assert state["subjects"] == {"cap": SUBJECTS_CAP, "used": SUBJECTS_CAP, "remaining": 0}
    assert state["rows"]["used"] == 10 and state["resets_in_seconds"] > 0


def test_masked_keys_count_as_the_people_they_stand_for(replicas, mint) -> None:
    here, there = replicas
    clear = mint("analyst", **{**GUARDED, "project": "budget-1", "clearance": "restricted"})
    masked = mint("analyst", **{**GUARDED, "project": "budget-1", "clearance": "internal"})
    seen = ok(query(here, clear, limit=4))
    shown = query(there, masked, limit=4)  # the same four people, their tokens masked
    assert [r["customer_token"] for r in ok(shown)["rows"]] != [
        r["customer_token"] for r in seen["rows"]
    ]
    assert ok(shown)["columns"][0]["mask"] is not None
    assert _left(shown) == (SUBJECTS_CAP - 4, ROWS_CAP - 8)
    # Masked answers of new people count them too.
    assert _left(query(here, masked, limit=1, cursor=ok(shown)["next_cursor"]))[0] == 1


def test_rows_count_whether_or_not_the_subject_column_is_asked_for(replicas, mint) -> None:
    here, _ = replicas
    reader = mint("analyst", **{**GUARDED, "project": "budget-2"})
    answer = query(here, reader, dataset="gold/fact_order_item", columns=["order_id"], limit=5)
    assert "customer_token" not in ok(answer)["rows"][0]
    subjects_left, rows_left = _left(answer)
    assert rows_left == ROWS_CAP - 5 and 1 <= SUBJECTS_CAP - subjects_left <= 5


def test_an_answer_without_rows_costs_nothing(replicas, mint) -> None:
    here, there = replicas
    # Restricted: entity lookups filter on the person's token, which must be clear to them.
    reader = mint("analyst", **{**GUARDED, "project": "budget-3", "clearance": "restricted"})
    nobody = [{"column": "orders", "op": "gt", "value": 10**9}]
    for client in (here, there):
        empty = query(client, reader, filters=nobody)
        assert ok(empty)["row_count"] == 0 and "X-Disclosure-Budget" not in empty.headers
    state = _explained(there, reader)
    assert state["subjects"]["used"] == 0 and state["rows"]["used"] == 0
    # A lookup of entities the store does not have returns nothing either.
    missing = here.get("/feature/vector?group=customer_rfm&entity=nobody", headers=bearer(reader))
    assert ok(missing)["missing"] == ["nobody"]
    assert _explained(here, reader)["rows"]["used"] == 0


def test_unbudgeted_callers_carry_no_budget(replicas, mint) -> None:
    here, _ = replicas
    reader = mint("analyst", **{**GUARDED, "project": "watch-7"})
    answer = query(here, reader, limit=2)
    assert ok(answer)["row_count"] == 2 and "X-Disclosure-Budget" not in answer.headers
    assert _explained(here, reader) is None
