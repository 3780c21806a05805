"""Silver de-identifies a batch from its catalog entry alone: tokens, generalisation, scrubbing."""

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from mlsec_platform.catalog.columns import PEOPLE, token
from mlsec_platform.catalog.datasets import SILVER, dataset
from mlsec_platform.catalog.governance import ColumnSpec, DatasetSpec, Purpose
from mlsec_platform.privacy.deidentify import PrivacyPlan, PrivacyPlanError
from mlsec_platform.settings import Zone
from mlsec_platform_tests.helpers import local_token_vault


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    """The token vault's code on a local folder (keys of its own): tokens as Silver makes them."""
    return local_token_vault(tmp_path_factory.mktemp("tokens"))


CUSTOMERS = {
    "customer_id": ["c1", "c2", "c3"],
    "customer_unique_id": ["p1", "p2", "p1"],
    "customer_zip_code_prefix": ["01310", "2", None],
    "customer_city": ["sao paulo", "rio de janeiro", "sao paulo"],
    "customer_state": ["SP", "RJ", "SP"],
    "customer_name": ["Ana Souza", "Bruno Lima", "Ana Souza"],
    "customer_cpf": ["123.456.789-09", "987.654.321-00", "123.456.789-09"],
    "customer_email": ["Ana@Example.COM.br", "bruno", None],
    "customer_phone": ["+55 (11) 91234-5678", "2345-6789", None],
    "customer_street_address": ["Rua A, 1", "Rua B, 2", "Rua A, 1"],
    "_raw_batch_id": ["b1", "b1", "b2"],
}


def _token(vault, value: str) -> str:
    (token,) = vault.lookup("customers", [value]).to_pylist()
    assert token is not None, f"{value!r} has no token"
    return token


def test_customers_are_tokenized_and_generalised_as_tagged(vault):
    spec = dataset("silver/customers")
    out = PrivacyPlan.of(spec).apply(pa.table(CUSTOMERS), vault)
    assert spec.conform(out).column_names == spec.column_names  # no clear column left
    rows = out.to_pylist()
    assert [r["customer_token"] for r in rows] == [
        _token(vault, "p1"),
        _token(vault, "p2"),
        _token(vault, "p1"),
    ]
    assert rows[0]["cpf_token"] == rows[2]["cpf_token"] == _token(vault, "123.456.789-09")
    assert [r["email_token"] for r in rows] == [
        _token(vault, "Ana@Example.COM.br"),
        _token(vault, "bruno"),
        None,
    ]
    assert [r["customer_zip3"] for r in rows] == ["013", "2", None]
    assert [r["email_domain"] for r in rows] == ["example.com.br", None, None]
    assert [r["phone_area_code"] for r in rows] == ["11", None, None]
    assert [r["customer_state"] for r in rows] == ["SP", "RJ", "SP"]  # quasi, kept as is


def test_free_text_is_scrubbed_with_the_columns_domain(vault):
    spec = dataset("silver/order_reviews")
    plan = PrivacyPlan.of(spec)
    assert [c.name for c in plan.scrubbed] == ["review_comment_title", "review_comment_message"]
    text = pa.array(["ligue (11) 91234-5678 ou ana@example.com", None, "ok"])
    title = pa.array(["cpf 123.456.789-09", None, "(11) 91234-5678"])
    table = pa.table({"review_comment_title": title, "review_comment_message": text})
    entries = f"{vault.root}/customers/entries"
    before = DeltaTable(entries).version() if DeltaTable.is_deltatable(entries) else -1
    out = plan.apply(table, vault)
    assert DeltaTable(entries).version() == before + 1  # both columns' values: one mint
    assert out.column("review_comment_title").to_pylist() == [
        f"cpf {_token(vault, '123.456.789-09')}",
        None,
        _token(vault, "(11) 91234-5678"),
    ]
    out = out.column("review_comment_message").to_pylist()
    assert out == [
        f"ligue {_token(vault, '(11) 91234-5678')} ou {_token(vault, 'ana@example.com')}",
        None,
        "ok",
    ]


def test_every_silver_entry_has_a_plan_and_only_those_with_tokens_need_the_key():
    needs_key = {spec.id for spec in SILVER.values() if PrivacyPlan.of(spec).needs_tokenizer}
    assert needs_key == {"silver/customers", "silver/order_reviews"}
    with pytest.raises(PrivacyPlanError, match="tokens need the token vault"):
        PrivacyPlan.of(dataset("silver/customers")).apply(pa.table(CUSTOMERS), None)


def test_a_transform_that_tokenizes_itself_or_drops_a_clear_column_is_refused(vault):
    plan = PrivacyPlan.of(dataset("silver/customers"))
    with pytest.raises(PrivacyPlanError, match=r"lacks \['customer_cpf'\]"):
        plan.apply(pa.table(CUSTOMERS).drop_columns(["customer_cpf"]), vault)
    tokenized_by_hand = pa.table(CUSTOMERS).append_column("cpf_token", pa.array(["x"] * 3))
    with pytest.raises(PrivacyPlanError, match=r"outputs \['cpf_token'\] itself"):
        plan.apply(tokenized_by_hand, vault)


def test_an_entry_keeping_an_identifier_clear_beside_its_token_is_refused():
    spec = DatasetSpec(
        Zone.SILVER,
        "leaky",
        "customers",
        "A clear CPF next to its token.",
        (
            ColumnSpec("member_cpf", pa.string(), "CPF, clear."),
            token("cpf_token", "CPF", from_column="member_cpf", domain=PEOPLE),
        ),
        key=("cpf_token",),
        purposes=frozenset({Purpose.FRAUD}),
    )
    with pytest.raises(PrivacyPlanError, match="'member_cpf' is also a column of the dataset"):
        PrivacyPlan.of(spec)


def test_generalising_alone_keeps_identifiers_clear_for_the_ungoverned_baseline():
    out = PrivacyPlan.of(dataset("silver/customers")).generalise(pa.table(CUSTOMERS))
    assert out.column("customer_cpf").to_pylist() == CUSTOMERS["customer_cpf"]
    assert out.column("customer_zip3").to_pylist() == ["013", "2", None]
