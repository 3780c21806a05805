"""The real broker's request lines hold no secret and no value: after a revealed page of
e-mail addresses, a filter on a CPF and a refused token, the log has one JSON line per request
and none of the token, the clear e-mails, the CPF or the tokens served."""

from __future__ import annotations

import io
import json
import logging

from mlsec_platform.telemetry.request_log import LOGGER
from mlsec_platform_tests.broker_api.conftest import bearer
from mlsec_platform_tests.broker_api.test_reveal import BODY, REASON


def test_request_lines_hold_no_token_and_no_personal_data(http, mint, curated) -> None:
    customers = curated.dataset.tables["olist_customers"].slice(0, 1).to_pylist()[0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    token = mint("officer")
    try:
        revealed = http.post(
            "/query",
            headers=bearer(token),
            json={**BODY, "reveal": {"columns": ["email_token"], "reason": REASON}},
        )
        filtered = http.post(
            "/query",
            headers=bearer(token),
            json={
                "dataset": "silver/customers",
                "columns": ["customer_id", "cpf_token"],
                "filters": [
                    {"column": "customer_id", "op": "eq", "value": customers["customer_id"]}
                ],
                "limit": 1,
            },
        )
        refused = http.post("/query", headers=bearer(token + "x"), json=BODY)
    finally:
        logger.removeHandler(handler)
    assert (revealed.status_code, filtered.status_code, refused.status_code) == (200, 200, 401)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    ids = [r.headers["x-request-id"] for r in (revealed, filtered, refused)]
    assert [line["request_id"] for line in lines] == ids
    assert [line["decision"] for line in lines] == ["allowed", "allowed", "denied"]
    assert lines[0]["subject"].startswith("officer") and lines[0]["dataset"] == "silver/customers"
    assert lines[0]["rows"] == len(revealed.json()["rows"]) and lines[0]["latency_ms"] > 0
    text = stream.getvalue()
    served = [
        *(r["email_token"] for r in revealed.json()["rows"]),  # clear e-mails (revealed)
        *(r["cpf_token"] for r in filtered.json()["rows"]),
    ]
    secrets = [token, token.split(".")[2], REASON, customers["customer_id"]]
    personal = [customers[k] for k in ("customer_cpf", "customer_email", "customer_name")]
    for value in [*served, *secrets, *personal]:
        assert value and value not in text, value
