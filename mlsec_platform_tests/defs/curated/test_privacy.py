"""No direct identifier in clear anywhere curated; tokens are the vault's and stable; reveal is gated."""

import io

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.catalog.governance import TOKEN_PATTERN
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.ops.operator import child_token
from mlsec_platform.privacy.reveal import REVEAL_POLICY, RevealDenied, reveal
from mlsec_platform.privacy.scrubbing import CPF, EMAIL
from mlsec_platform.settings import Zone
from mlsec_platform.storage.incremental import FULL_REBUILD_TAG
from mlsec_platform_tests.defs.curated.conftest import run_curated
from mlsec_platform_tests.defs.curated.helpers import read, version
from mlsec_platform_tests.helpers import (
    audit_events,
    audit_head,
    operator_vault,
    vault_as,
    vault_reader,
)

IDENTIFIER_COLUMNS = (
    "customer_name",
    "customer_cpf",
    "customer_email",
    "customer_phone",
    "customer_street_address",
)


@pytest.fixture(scope="module")
def ground_truth(curated) -> pa.Array:
    """Every clear identifier the generator produced that is in Raw (this and other data sets)."""
    generated = curated.dataset.tables["olist_customers"]
    raw = read(curated, "raw", "olist_customers", list(IDENTIFIER_COLUMNS))
    values = [t.column(c) for t in (generated, raw) for c in IDENTIFIER_COLUMNS]
    truth = pc.unique(pa.chunked_array([c.combine_chunks() for c in values]).combine_chunks())
    assert len(truth) > 400_000  # 100k orders: ~5 identifiers per person
    return truth.drop_null()


def test_no_identifier_in_clear_in_any_curated_table(curated, ground_truth):
    scanned = 0
    for spec in CATALOG.values():
        table = read(curated, spec.zone, spec.name)
        for field in table.schema:
            if not pa.types.is_string(field.type):
                continue
            column = table.column(field.name)
            leaked = pc.sum(pc.is_in(column, value_set=ground_truth)).as_py() or 0
            assert leaked == 0, f"{spec.id}.{field.name} holds {leaked} clear identifiers"
            for pattern in (EMAIL, CPF, r"\+55 \(\d{2}\) \d{4,5}-\d{4}"):
                found = pc.sum(pc.match_substring_regex(column, pattern)).as_py() or 0
                assert found == 0, f"{spec.id}.{field.name}: {found} values contain {pattern}"
            scanned += 1
    assert scanned > 60


def test_no_identifier_in_clear_in_the_warehouse(curated, ground_truth, superuser_dsn):
    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE truth (v text)")
        cur.copy_expert(
            "COPY truth FROM STDIN",
            io.StringIO(
                "\n".join(v.replace("\\", "\\\\") for v in ground_truth.to_pylist()) + "\n"
            ),
        )
        cur.execute(
            """SELECT table_schema, table_name, column_name FROM information_schema.columns
               WHERE table_schema IN ('gold', 'features') AND data_type = 'text'"""
        )
        columns = cur.fetchall()
        assert len(columns) > 20
        for schema, table, column in columns:
            cur.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" t JOIN truth ON truth.v = t."{column}"'
            )
            assert cur.fetchone()[0] == 0, f"{schema}.{table}.{column}"
    conn.close()


def _customers_with_email(curated, n=50):
    generated = curated.dataset.tables["olist_customers"].slice(0, n)
    silver = read(curated, "silver", "customers", ["customer_id", "email_token", "customer_token"])
    tokens = dict(
        zip(
            silver.column("customer_id").to_pylist(),
            silver.column("email_token").to_pylist(),
            strict=True,
        )
    )
    ids = generated.column("customer_id").to_pylist()
    return generated.column("customer_email").to_pylist(), [tokens[i] for i in ids]


def test_tokens_are_the_vaults_one_per_value(curated, settings, endpoints):
    emails, tokens = _customers_with_email(curated)
    assert all(TOKEN_PATTERN.fullmatch(t) for t in tokens)
    vault = curated.resources["token_vault"].for_batch()
    assert vault.lookup("customers", emails).to_pylist() == tokens
    # Each value has one token and each token one value: the index and the tokens are unique.
    lake = curated.resources["lake_pipeline"]
    entries = DeltaTable(
        lake.table_uri(Zone.TOKENS, "customers/entries"), storage_options=lake.storage_options()
    ).to_pyarrow_table(columns=["index", "token"])
    assert entries.num_rows > 400_000
    for column in ("index", "token"):
        assert len(pc.unique(entries.column(column))) == entries.num_rows
    # And what the revealer reads of them are the generated values.
    operator = operator_vault(settings, endpoints)
    revealer = vault_client(operator.url, child_token(operator, REVEAL_POLICY))
    values = reveal(
        revealer,
        vault_reader(settings, endpoints),
        tokens,
        domain="customers",
        subject="t",
        reason="token test",
        emit=lambda *_: None,
    )
    assert values == emails


def test_tokens_join_across_tables_and_are_stable_across_runs(curated):
    silver = read(curated, "silver", "customers", ["customer_id", "customer_token"])
    dim = read(curated, "gold", "dim_customer", ["customer_token"])
    fact = read(curated, "gold", "fact_order_item", ["customer_token"])
    rfm = read(curated, "features", "customer_rfm", ["customer_token"])
    people = set(dim.column(0).to_pylist())
    assert set(silver.column("customer_token").to_pylist()) == people
    assert set(fact.column(0).to_pylist()) <= people
    assert set(rfm.column(0).to_pylist()) <= people
    before = version(curated, "silver", "customers")
    # A full rebuild: every customer tokenized again (an incremental run would take none).
    result = run_curated(
        curated.resources,
        curated.instance,
        asset_selection=[dg_key("silver", "customers")],
        tags={FULL_REBUILD_TAG: "true"},
    )
    assert result.success
    assert version(curated, "silver", "customers") == before + 1
    again = read(curated, "silver", "customers", ["customer_id", "customer_token"])
    key = [("customer_id", "ascending")]
    assert again.sort_by(key).equals(silver.sort_by(key))


def dg_key(*path):
    import dagster as dg

    return dg.AssetKey(list(path))


def test_review_contacts_are_replaced_by_the_customers_tokens(curated):
    reviews = read(curated, "silver", "order_reviews", ["review_comment_message"]).column(0)
    with_tokens = pc.sum(pc.match_substring_regex(reviews, TOKEN_PATTERN.pattern)).as_py()
    assert with_tokens > 100  # the generator leaks contacts into some comments
    emails = set(read(curated, "silver", "customers", ["email_token"]).column(0).to_pylist())
    found = (
        pc.extract_regex(pc.drop_null(reviews).combine_chunks(), f"(?P<t>{TOKEN_PATTERN.pattern})")
        .field("t")
        .to_pylist()
    )
    assert any(t in emails for t in found if t)


def test_reveal_needs_the_reveal_policy_and_is_audited(curated, settings, endpoints, superuser_dsn):
    emails, tokens = _customers_with_email(curated, 5)
    events = []
    operator = operator_vault(settings, endpoints)
    revealer = vault_client(operator.url, child_token(operator, REVEAL_POLICY))
    reader = vault_reader(settings, endpoints)
    values = reveal(
        revealer,
        reader,
        tokens,
        domain="customers",
        subject="analyst-1",
        reason="customer support ticket 42",
        emit=lambda t, p: events.append((t, p)),
    )
    assert values == emails
    assert events[0][0] == "pii.revealed" and events[0][1]["severity"] == "high"
    assert not any(e in str(events) for e in emails)  # fingerprints only, never values

    with pytest.raises(RevealDenied, match="reason"):
        reveal(revealer, reader, tokens, domain="customers", subject="x", reason=" ", emit=print)
    for identity in ("pipeline", "broker"):
        client = vault_as(identity, settings, endpoints).client()
        denied = []
        with pytest.raises(RevealDenied):
            reveal(
                client,
                reader,
                tokens,
                domain="customers",
                subject=identity,
                reason="probe",
                emit=lambda t, p, d=denied: d.append(t),
            )
        assert denied == ["pii.reveal_denied"]


def test_reveal_from_the_cli_writes_a_high_severity_audit_event(curated, superuser_dsn):
    from click.testing import CliRunner

    from mlsec_platform.cli import main

    emails, tokens = _customers_with_email(curated, 2)
    head = audit_head(superuser_dsn)
    result = CliRunner().invoke(main, ["reveal", *tokens, "--reason", "DSAR request 7"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == emails
    (event,) = audit_events(superuser_dsn, "pii.revealed", since_seq=head)
    assert event["reason"] == "DSAR request 7" and event["count"] == 2
    refused = CliRunner().invoke(main, ["reveal", tokens[0]])
    assert refused.exit_code != 0 and "--reason" in refused.output
    unknown = CliRunner().invoke(main, ["reveal", tokens[0], "tok_" + "A" * 22, "--reason", "x"])
    assert unknown.exit_code == 1 and "1 of 2 tokens are not in the customers" in unknown.output
    assert emails[0] not in unknown.output
