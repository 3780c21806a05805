"""Naming a data subject: kinds come from the catalog, bad input is a typed 4xx refusal."""

from __future__ import annotations

import dataclasses

import pytest

from mlsec_platform.catalog.columns import PEOPLE, token
from mlsec_platform.catalog.datasets import CUSTOMERS
from mlsec_platform.catalog.governance import DataSubject
from mlsec_platform.privacy.erasure.subject import (
    MAX_VALUE_LENGTH,
    InvalidSubject,
    parse_subject,
    subject_kinds,
)


def test_kinds_are_the_subject_datasets_identifiers_as_named_in_raw():
    kinds = subject_kinds()
    tokenized = {c.from_column for c in CUSTOMERS.dataset.columns if c.tokenized}
    assert set(kinds) == tokenized | {"customer_id"}
    assert {"customer_cpf", "customer_email", "customer_id"} <= set(kinds)
    assert kinds["customer_cpf"].column.name == "cpf_token"
    assert kinds["customer_cpf"].tokenized and not kinds["customer_id"].tokenized


def test_a_new_tokenized_column_is_a_new_kind():
    spec = CUSTOMERS.dataset
    extra = token("passport_token", "passport", from_column="customer_passport", domain=PEOPLE)
    wider = dataclasses.replace(spec, columns=(*spec.columns, extra))
    kinds = subject_kinds(DataSubject(wider, CUSTOMERS.person))
    assert kinds["customer_passport"].column is extra


def test_a_subject_parses_and_never_shows_its_value():
    subject = parse_subject("customer_email= ana@example.com ")
    assert subject.kind.name == "customer_email"
    assert subject.value == "ana@example.com"
    assert "ana" not in repr(subject) and "ana" not in str(subject)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("customer_cpf", "<kind>=<value>"),
        ("=123", "<kind>=<value>"),
        ("passport=X1", "unknown subject kind 'passport'"),
        ("customer_cpf=", "is empty"),
        ("customer_cpf=   ", "is empty"),
        ("customer_cpf=1\x002", "control characters"),
        (f"customer_name={'a' * (MAX_VALUE_LENGTH + 1)}", "longer than"),
    ],
)
def test_bad_subjects_are_refused_with_a_reason(text, says):
    with pytest.raises(InvalidSubject, match=says) as refused:
        parse_subject(text)
    assert refused.value.http_status == 400
    assert "customer_cpf, customer_email" in str(refused.value) or says in str(refused.value)


def test_an_unknown_kind_is_not_echoed_when_it_could_be_a_value():
    with pytest.raises(InvalidSubject) as refused:
        parse_subject("ana@example.com=x")
    assert "ana@example.com" not in str(refused.value)


def test_the_person_column_must_be_tokenized():
    with pytest.raises(ValueError, match="tokenized"):
        DataSubject(CUSTOMERS.dataset, CUSTOMERS.dataset.column("customer_state"))
