"""/catalog/datasets and /catalog/schema over real HTTP."""

from __future__ import annotations

from mlsec_platform_tests.broker_api.conftest import DIM, FACT, bearer


def test_catalog_lists_what_the_caller_may_read(http, mint) -> None:
    analyst = http.get("/catalog/datasets", headers=bearer(mint("analyst"))).json()
    ids = {d["id"] for d in analyst}
    assert FACT in ids and "silver/customers" not in ids
    schema = http.get(
        "/catalog/schema", params={"dataset": DIM}, headers=bearer(mint("analyst"))
    ).json()
    tags = {c["name"]: c for c in schema["columns"]}
    assert tags["customer_token"]["tokenized"] and tags["customer_token"]["pii"]
    hidden = http.get(
        "/catalog/schema", params={"dataset": "silver/customers"}, headers=bearer(mint("analyst"))
    )
    assert hidden.status_code == 403
