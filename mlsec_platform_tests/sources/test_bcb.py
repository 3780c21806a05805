"""BCB SGS client over recorded answers replayed through the real client code."""

from __future__ import annotations

from datetime import date

import pytest

from mlsec_platform.sources.apis import bcb
from mlsec_platform.sources.apis.errors import ApiSchemaError, ApiUnavailable
from mlsec_platform.sources.apis.limits import RetryPolicy
from mlsec_platform_tests.sources.replay import FakeTime, Replay, load, recording

PATH = bcb.series_path(bcb.SERIES_IPCA)
IPCA_2023 = ["0.53", "0.84", "0.71", "0.61", "0.23", "-0.08", "0.12", "0.23", "0.26", "0.24"]
IPCA_2023 += ["0.28", "0.56"]


def client_for(replay: Replay, fake: FakeTime | None = None, **kwargs):
    fake = fake or FakeTime()
    return bcb.make_client(
        transport=replay.transport(), sleep=fake.sleep, clock=fake.clock, **kwargs
    )


def window_query(start: str, end: str) -> dict[str, str]:
    return {"formato": "json", "dataInicial": start, "dataFinal": end}


def body_2023(records: list) -> dict:
    return recording(PATH, body=records, query=window_query("01/01/2023", "31/12/2023"))


def fetch_2023(replay: Replay):
    return bcb.fetch_series(
        client_for(replay), bcb.SERIES_IPCA, date(2023, 1, 1), date(2023, 12, 31)
    )


def test_connector_identity_and_schema():
    assert bcb.CONNECTOR == ("bcb_sgs", "1.0.0")
    assert bcb.SERIES_IPCA == 433
    assert bcb.SCHEMA.names == ["series_id", "reference_date", "value"]
    assert all(str(f.type) == "string" for f in bcb.SCHEMA)


def test_ipca_2023_recording_parses_through_the_real_client():
    replay = Replay(load("bcb_sgs_433_2023.json"))
    table = fetch_2023(replay)

    assert table.schema == bcb.SCHEMA
    assert table.num_rows == 12
    assert table.column("series_id").to_pylist() == ["433"] * 12
    assert table.column("reference_date").to_pylist() == [f"2023-{m:02d}-01" for m in range(1, 13)]
    assert table.column("value").to_pylist() == IPCA_2023  # the text as received
    (request,) = replay.requests
    assert request.url.scheme == "https"
    assert request.url.host == "api.bcb.gov.br"
    assert request.url.path == "/dados/serie/bcdata.sgs.433/dados"
    assert replay.params() == window_query("01/01/2023", "31/12/2023")
    assert "bcb_sgs/1.0.0" in request.headers["User-Agent"]


def test_records_are_sorted_and_deduplicated_by_date():
    records = load("bcb_sgs_433_2023.json")["response"]["body"]
    shuffled = list(reversed(records)) + records[:3]
    table = fetch_2023(Replay(body_2023(shuffled)))
    assert table.num_rows == 12
    assert table.column("value").to_pylist() == IPCA_2023


def test_conflicting_values_for_one_date_are_a_schema_error():
    records = [{"data": "01/01/2023", "valor": "0.53"}, {"data": "01/01/2023", "valor": "0.99"}]
    with pytest.raises(ApiSchemaError, match="record #1"):
        fetch_2023(Replay(body_2023(records)))


def test_records_outside_the_window_are_dropped():
    records = [{"data": "01/12/2022", "valor": "0.62"}, {"data": "01/01/2023", "valor": "0.53"}]
    table = fetch_2023(Replay(body_2023(records)))
    assert table.column("reference_date").to_pylist() == ["2023-01-01"]


def test_empty_list_is_no_new_data():
    replay = Replay(load("bcb_sgs_433_empty.json"))
    table = bcb.fetch_series(
        client_for(replay), bcb.SERIES_IPCA, date(2023, 12, 2), date(2024, 1, 5)
    )
    assert table.num_rows == 0
    assert table.schema == bcb.SCHEMA


def test_404_is_no_data_for_the_window():
    replay = Replay(load("bcb_sgs_433_404.json"))
    table = bcb.fetch_series(
        client_for(replay), bcb.SERIES_IPCA, date(2023, 12, 2), date(2024, 1, 5)
    )
    assert table.num_rows == 0
    assert len(replay.requests) == 1  # 404 is an answer, not retried


# -- schema violations -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"data": "01/02/2023"}, "missing \\['valor'\\]"),
        ({"data": "01/02/2023", "valor": "0.84", "extra": 1}, "unexpected \\['extra'\\]"),
        ({"data": "01/02/2023", "valor": "n/d"}, "not a decimal"),
        ({"data": "01/02/2023", "valor": "0,84"}, "not a decimal"),
        ({"data": "01/02/2023", "valor": 0.84}, "not a decimal"),
        ({"data": "01/02/2023", "valor": ""}, "not a decimal"),
        ({"data": "2023-02-01", "valor": "0.84"}, "dd/mm/yyyy"),
        ({"data": "31/02/2023", "valor": "0.84"}, "dd/mm/yyyy"),
        ({"data": None, "valor": "0.84"}, "dd/mm/yyyy"),
        (["01/02/2023", "0.84"], "not an object"),
    ],
)
def test_bad_records_raise_schema_error_naming_the_first_bad_one(record, why):
    records = [{"data": "01/01/2023", "valor": "0.53"}, record, {"data": "x", "valor": "y"}]
    with pytest.raises(ApiSchemaError, match=why) as caught:
        fetch_2023(Replay(body_2023(records)))
    assert "record #1" in str(caught.value)
    assert "series 433" in str(caught.value)


def test_a_body_that_is_not_a_list_is_a_schema_error():
    with pytest.raises(ApiSchemaError, match="expected a JSON list"):
        fetch_2023(Replay(body_2023({"data": "01/01/2023", "valor": "0.53"})))


def test_an_html_page_instead_of_json_is_a_schema_error():
    rec = load("bcb_sgs_html_error.json")
    with pytest.raises(ApiSchemaError, match="not JSON"):
        fetch_2023(Replay(rec))


def test_503_then_data_is_retried():
    fake = FakeTime()
    replay = Replay(load("bcb_sgs_503.json"), load("bcb_sgs_433_2023.json"))
    # The 503 recording matches any window; the data one only 2023. Order: 503 first.
    client = client_for(replay, fake)
    table = bcb.fetch_series(client, bcb.SERIES_IPCA, date(2023, 1, 1), date(2023, 12, 31))
    assert table.num_rows == 12
    assert len(replay.requests) == 2
    assert len(fake.sleeps) >= 1


def test_sgs_down_raises_api_unavailable():
    fake = FakeTime()
    replay = Replay(load("bcb_sgs_503.json"))
    client = client_for(replay, fake, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ApiUnavailable, match="after 3 attempt"):
        bcb.fetch_series(client, bcb.SERIES_IPCA, date(2023, 1, 1), date(2023, 12, 31))


def test_bad_arguments_are_refused():
    client = client_for(Replay())
    with pytest.raises(ValueError):
        bcb.fetch_series(client, 0, date(2023, 1, 1), date(2023, 1, 2))
    with pytest.raises(ValueError):
        bcb.fetch_series(client, 433, date(2023, 1, 2), date(2023, 1, 1))


# -- windows -----------------------------------------------------------------------------------
def test_windows_are_at_most_ten_years_and_contiguous():
    start, end = date(1994, 7, 1), date(2024, 1, 5)
    windows = bcb.windows(start, end)
    assert windows == [
        (date(1994, 7, 1), date(2004, 6, 30)),
        (date(2004, 7, 1), date(2014, 6, 30)),
        (date(2014, 7, 1), date(2024, 1, 5)),
    ]
    for (_, a_end), (b_start, _) in zip(windows, windows[1:], strict=False):
        assert (b_start - a_end).days == 1


def test_windows_edge_cases():
    assert bcb.windows(date(2024, 1, 1), date(2023, 1, 1)) == []
    assert bcb.windows(date(2024, 1, 1), date(2024, 1, 1)) == [(date(2024, 1, 1),) * 2]
    # exactly ten years fits in one window
    assert bcb.windows(date(2010, 1, 1), date(2019, 12, 31)) == [
        (date(2010, 1, 1), date(2019, 12, 31))
    ]
    # a leap day start
    assert bcb.windows(date(2012, 2, 29), date(2023, 1, 1))[0] == (
        date(2012, 2, 29),
        date(2022, 2, 27),
    )


def test_long_ranges_are_fetched_in_ten_year_chunks():
    replay = Replay(
        recording(
            PATH,
            query=window_query("01/07/1994", "30/06/2004"),
            body=[{"data": "01/07/1994", "valor": "6.84"}, {"data": "01/06/2004", "valor": "0.71"}],
        ),
        recording(
            PATH,
            query=window_query("01/07/2004", "30/06/2014"),
            body=[{"data": "01/07/2004", "valor": "0.91"}],
        ),
        load("bcb_sgs_433_404.json") | {"request": {"url_path": PATH, "query": {}}},
    )
    # The last window (2014-07-01..2024-01-05) is answered 404 here: no data, not an error.
    table = bcb.fetch_series(client_for(replay), 433, date(1994, 7, 1), date(2024, 1, 5))
    assert [dict(r.url.params) for r in replay.requests] == [
        window_query("01/07/1994", "30/06/2004"),
        window_query("01/07/2004", "30/06/2014"),
        window_query("01/07/2014", "05/01/2024"),
    ]
    assert table.column("reference_date").to_pylist() == ["1994-07-01", "2004-06-01", "2004-07-01"]
    assert table.column("value").to_pylist() == ["6.84", "0.71", "0.91"]


# -- incremental windows -----------------------------------------------------------------------
def test_first_load_starts_with_the_real_plan():
    assert bcb.next_window(None, date(2024, 1, 5)) == (date(1994, 7, 1), date(2024, 1, 5))


def test_next_window_starts_the_day_after_the_last_loaded_date():
    assert bcb.next_window(date(2023, 12, 1), date(2024, 1, 5)) == (
        date(2023, 12, 2),
        date(2024, 1, 5),
    )


def test_nothing_new_when_up_to_date():
    assert bcb.next_window(date(2024, 1, 5), date(2024, 1, 5)) is None
    assert bcb.next_window(date(2024, 1, 6), date(2024, 1, 5)) is None
    assert bcb.next_window(date(2024, 1, 4), date(2024, 1, 5)) == (date(2024, 1, 5),) * 2


def test_incremental_load_from_last_loaded_with_no_new_data():
    window = bcb.next_window(date(2023, 12, 1), date(2024, 1, 5))
    assert window is not None
    replay = Replay(load("bcb_sgs_433_empty.json"))
    table = bcb.fetch_series(client_for(replay), bcb.SERIES_IPCA, *window)
    assert table.num_rows == 0
    assert replay.params() == window_query("02/12/2023", "05/01/2024")
