"""Rotating the tokenization key re-tokenizes the whole graph; joins hold; the old version retires."""

import hvac
import psycopg2
import pytest

from mlsec_platform.ops.operator import child_token
from mlsec_platform.ops.rotation import rotate_tokenization_key
from mlsec_platform.privacy.reveal import REVEAL_POLICY, RevealDenied, reveal
from mlsec_platform_tests.defs.curated.helpers import read
from mlsec_platform_tests.helpers import audit_events, audit_head, operator_vault


def _emails(curated, n=3):
    generated = curated.dataset.tables["olist_customers"].slice(0, n)
    silver = read(curated, "silver", "customers", ["customer_id", "email_token"])
    tokens = dict(zip(*(silver.column(i).to_pylist() for i in range(2)), strict=True))
    ids = generated.column("customer_id").to_pylist()
    return generated.column("customer_email").to_pylist(), [tokens[i] for i in ids]


def test_rotation_keeps_every_join_and_retires_the_old_version(
    curated, settings, endpoints, superuser_dsn
):
    emails, old_tokens = _emails(curated)
    head = audit_head(superuser_dsn)

    report = rotate_tokenization_key(settings, curated.instance, echo=lambda _: None)

    assert report.to_version == report.from_version + 1
    assert report.tables_checked and not any(report.tables_checked.values())
    same_emails, new_tokens = _emails(curated)
    assert same_emails == emails
    assert all(t.startswith(f"vault:v{report.to_version}:") for t in new_tokens)
    assert set(new_tokens).isdisjoint(old_tokens)

    people = set(read(curated, "gold", "dim_customer", ["customer_token"]).column(0).to_pylist())
    silver = read(curated, "silver", "customers", ["customer_token"]).column(0).to_pylist()
    assert set(silver) == people
    assert (
        set(read(curated, "gold", "fact_order_item", ["customer_token"]).column(0).to_pylist())
        <= people
    )
    assert (
        set(read(curated, "features", "customer_rfm", ["customer_token"]).column(0).to_pylist())
        <= people
    )
    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT customer_token FROM features.customer_rfm_online")
        online = {r[0] for r in cur.fetchall()}
        cur.execute("SELECT customer_token FROM gold.fact_order_item")
        warehouse_fact = {r[0] for r in cur.fetchall()}
    conn.close()
    assert online <= people and warehouse_fact <= people and online

    operator = operator_vault(settings, endpoints)
    revealer = hvac.Client(url=operator.url, token=child_token(operator, REVEAL_POLICY))
    kwargs = {"domain": "customers", "subject": "t", "reason": "rotation test", "emit": print}
    assert reveal(revealer, new_tokens, **kwargs) == emails
    with pytest.raises(RevealDenied):
        reveal(revealer, old_tokens, **kwargs)

    for event in (
        "tokenization.key_rotated",
        "tokenization.retokenized",
        "tokenization.key_retired",
    ):
        assert len(audit_events(superuser_dsn, event, head)) == 1, event
