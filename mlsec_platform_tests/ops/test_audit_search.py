"""`mlsec audit search`: events found by subject, dataset, type, outcome and time; filters
are parameters (a quote in one finds nothing and breaks nothing); bad input is a usage error."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from mlsec_platform.cli import main
from mlsec_platform.ops.audit_search import SearchRefused, parse_time


@pytest.fixture
def events(audit_writer) -> str:
    """Three events of a subject no other test uses: two reads (one denied), one write."""
    subject = f"search-{uuid.uuid4().hex[:8]}"
    audit_writer.emit(
        "broker.request",
        {"subject": subject, "dataset": "gold/dim_customer", "outcome": "allowed", "status": 200},
    )
    audit_writer.emit(
        "broker.request",
        {"subject": subject, "dataset": "silver/customers", "outcome": "denied", "status": 403},
    )
    audit_writer.emit("asset.materialized", {"subject": subject, "asset_key": "gold/dim_customer"})
    return subject


def _search(*args: str) -> list[dict]:
    result = CliRunner().invoke(main, ["audit", "search", "--json", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]


def test_search_by_subject_finds_its_events_newest_first(events):
    found = _search("--subject", events)
    assert [e["event_type"] for e in found] == [
        "asset.materialized",
        "broker.request",
        "broker.request",
    ]
    assert [e["seq"] for e in found] == sorted((e["seq"] for e in found), reverse=True)


def test_filters_combine(events):
    denied = _search("--subject", events, "--outcome", "denied")
    assert [e["payload"]["dataset"] for e in denied] == ["silver/customers"]
    customers = _search("--subject", events, "--dataset", "gold/dim_customer")
    assert {e["event_type"] for e in customers} == {"broker.request", "asset.materialized"}
    reads = _search("--subject", events, "--type", "broker.request", "--limit", "1")
    assert len(reads) == 1 and reads[0]["payload"]["dataset"] == "silver/customers"
    assert _search("--subject", events, "--until", "1h") == []
    assert len(_search("--subject", events, "--since", "10m")) == 3


def test_a_filter_is_a_value_never_sql(events):
    assert _search("--subject", f"{events}' OR '1'='1") == []
    assert len(_search("--subject", events)) == 3


def test_the_table_form_says_how_many(events):
    result = CliRunner().invoke(main, ["audit", "search", "--subject", events])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "3 events"
    assert "silver/customers" in result.output and "denied" in result.output


@pytest.mark.parametrize("argument", [["--since", "yesterday"], ["--limit", "0"]])
def test_bad_filters_are_usage_errors(argument, settings):
    result = CliRunner().invoke(main, ["audit", "search", *argument])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_times_are_ages_or_iso():
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_time("90s", now) == now - timedelta(seconds=90)
    assert parse_time("7d", now) == now - timedelta(days=7)
    assert parse_time("2026-12-01T08:00", now) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with pytest.raises(SearchRefused):
        parse_time("soon", now)
