"""A column's privacy tags say one complete thing, or the entry fails when it is declared."""

import pyarrow as pa
import pytest

from mlsec_platform.catalog.governance import ColumnSpec, Generalisation, Mask, PiiKind

S = pa.string()


def _token(**kwargs) -> ColumnSpec:
    fields = {
        "pii": PiiKind.DIRECT,
        "mask": Mask.REDACT,
        "tokenized": True,
        "from_column": "member_cpf",
        "token_domain": "customers",
    } | kwargs
    return ColumnSpec("cpf_token", fields.pop("type", S), "Token of the CPF.", **fields)


def test_a_complete_token_column_shows_where_its_tokens_come_from():
    assert _token().tags() == {
        "pii": "direct_identifier",
        "sensitivity": "internal",
        "mask": "redact",
        "tokenized": "token-vault",
        "token_domain": "customers",
        "from": "member_cpf",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"from_column": None}, "needs from_column"),
        ({"token_domain": None}, "tokens need a token_domain"),
        ({"token_domain": "Customers!"}, "must be lowercase letters"),
        ({"type": pa.int64()}, "holds text, not int64"),
        ({"generalised": Generalisation.ZIP3}, "at most one of tokenized, generalised"),
        ({"tokenized": False}, "must be stored tokenized"),
    ],
)
def test_an_incomplete_token_column_fails_with_what_to_fix(change, message):
    with pytest.raises(ValueError, match=message):
        _token(**change)


def test_generalised_columns_name_a_known_generalisation_and_their_clear_column():
    quasi = {"pii": PiiKind.QUASI, "mask": Mask.REDACT}
    column = ColumnSpec(
        "email_domain",
        S,
        "Domain.",
        generalised="e-mail -> its domain",
        from_column="member_email",
        **quasi,
    )
    assert column.generalised is Generalisation.EMAIL_DOMAIN
    assert column.tags()["generalised"] == "e-mail -> its domain"
    with pytest.raises(ValueError, match="unknown generalisation 'first letter'.*ZIP3"):
        ColumnSpec("x", S, "x", generalised="first letter", from_column="y", **quasi)
    with pytest.raises(ValueError, match="needs from_column"):
        ColumnSpec("x", S, "x", generalised=Generalisation.ZIP3, **quasi)
    with pytest.raises(ValueError, match="is a quasi-identifier"):
        ColumnSpec("x", S, "x", generalised=Generalisation.ZIP3, from_column="zip")


def test_privacy_fields_belong_to_the_columns_they_describe():
    with pytest.raises(ValueError, match="from_column 'zip' is only for tokenized or generalised"):
        ColumnSpec("zip", S, "Zip.", from_column="zip")
    with pytest.raises(ValueError, match="token_domain 'customers' is only for tokenized or"):
        ColumnSpec("note", S, "Note.", token_domain="customers")
    with pytest.raises(ValueError, match="scrubbed column needs|tokens need a token_domain"):
        ColumnSpec("note", S, "Note.", scrubbed=True)
    scrubbed = ColumnSpec("note", S, "Note.", scrubbed=True, token_domain="customers")
    assert scrubbed.tags()["scrubbed"] == "identifiers -> tokens"
