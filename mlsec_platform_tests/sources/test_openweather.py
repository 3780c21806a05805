"""OpenWeather current-weather client over recorded answers, and the key's hygiene."""

from __future__ import annotations

import copy
import logging
import traceback

import pytest

from mlsec_platform.sources.apis import openweather
from mlsec_platform.sources.apis.errors import (
    ApiError,
    ApiRejected,
    ApiSchemaError,
    ApiUnavailable,
    MissingApiKey,
)
from mlsec_platform.sources.apis.limits import RetryPolicy
from mlsec_platform_tests.sources.replay import FakeTime, Replay, failure, load, recording

KEY = "KEY-SHOULD-NEVER-APPEAR-1234"
SAO_PAULO = ("São Paulo", "BR")
RIO = ("Rio de Janeiro", "BR")
UNKNOWN = ("Cidade Que Não Existe", "BR")


def client_for(replay: Replay, fake: FakeTime | None = None, **kwargs):
    fake = fake or FakeTime()
    return openweather.make_client(
        transport=replay.transport(), sleep=fake.sleep, clock=fake.clock, **kwargs
    )


def sao_paulo_with(body: dict) -> dict:
    rec = load("openweather_sao_paulo.json")
    rec["response"]["body"] = body
    return rec


def sao_paulo_body() -> dict:
    return copy.deepcopy(load("openweather_sao_paulo.json")["response"]["body"])


def test_connector_identity_schema_and_cities():
    assert openweather.CONNECTOR == ("openweather_current", "1.0.0")
    assert openweather.SCHEMA.names == [
        "city",
        "country",
        "city_id",
        "observed_at",
        "lat",
        "lon",
        "temp_c",
        "feels_like_c",
        "humidity_pct",
        "pressure_hpa",
        "wind_speed_ms",
        "weather_main",
        "weather_description",
    ]
    assert all(str(f.type) == "string" for f in openweather.SCHEMA)
    assert 8 <= len(openweather.DEFAULT_CITIES) <= 12
    assert all(country == "BR" for _, country in openweather.DEFAULT_CITIES)
    assert SAO_PAULO in openweather.DEFAULT_CITIES


def test_sao_paulo_recording_parses_through_the_real_client():
    replay = Replay(load("openweather_sao_paulo.json"))
    table = openweather.fetch_current(client_for(replay), KEY, [SAO_PAULO])

    assert table.schema == openweather.SCHEMA
    assert table.to_pylist() == [
        {
            "city": "São Paulo",
            "country": "BR",
            "city_id": "3448439",
            "observed_at": "2023-11-14T22:13:20Z",
            "lat": "-23.5475",
            "lon": "-46.6361",
            "temp_c": "22.4",
            "feels_like_c": "22.6",
            "humidity_pct": "73",
            "pressure_hpa": "1018",
            "wind_speed_ms": "3.6",
            "weather_main": "Clouds",
            "weather_description": "nublado",
        }
    ]
    (request,) = replay.requests
    assert request.url.scheme == "https"
    assert request.url.host == "api.openweathermap.org"
    assert request.url.path == "/data/2.5/weather"
    assert replay.params() == {
        "q": "São Paulo,BR",
        "appid": KEY,
        "units": "metric",
        "lang": "pt_br",
    }
    assert "openweather_current/1.0.0" in request.headers["User-Agent"]


def test_several_cities_keep_the_input_order():
    replay = Replay(load("openweather_rio_de_janeiro.json"), load("openweather_sao_paulo.json"))
    table = openweather.fetch_current(client_for(replay), KEY, [RIO, SAO_PAULO])
    assert table.column("city").to_pylist() == ["Rio de Janeiro", "São Paulo"]
    assert table.column("city_id").to_pylist() == ["3451190", "3448439"]
    assert table.column("temp_c").to_pylist() == ["29.85", "22.4"]
    assert table.column("weather_description").to_pylist() == ["céu limpo", "nublado"]


def test_no_cities_gives_an_empty_table():
    table = openweather.fetch_current(client_for(Replay()), KEY, [])
    assert table.num_rows == 0 and table.schema == openweather.SCHEMA


def test_the_rate_limit_spaces_a_long_city_list():
    fake = FakeTime(start=0.0)
    replay = Replay(load("openweather_sao_paulo.json"))
    client = client_for(replay, fake)  # default: 60 calls per minute
    openweather.fetch_current(client, KEY, [SAO_PAULO] * 5)
    assert fake.sleeps == pytest.approx([1.0] * 4)


# -- key handling ------------------------------------------------------------------------------
@pytest.mark.parametrize("key", [None, "", "   "])
def test_missing_key_is_explained_before_any_request(key):
    replay = Replay(load("openweather_sao_paulo.json"))
    with pytest.raises(MissingApiKey, match="no OpenWeather API key in Vault at") as caught:
        openweather.fetch_current(client_for(replay), key, [SAO_PAULO])
    assert "mlsec/connectors/openweather" in str(caught.value)
    assert "kv put" in str(caught.value)
    assert replay.requests == []


def test_invalid_key_is_rejected_without_retry():
    fake = FakeTime()
    replay = Replay(load("openweather_401.json"))
    with pytest.raises(ApiRejected, match="HTTP 401: Invalid API key") as caught:
        openweather.fetch_current(client_for(replay, fake), KEY, [SAO_PAULO])
    assert caught.value.status == 401
    assert len(replay.requests) == 1
    assert fake.sleeps == []


def test_unknown_city_is_rejected_naming_the_city():
    replay = Replay(load("openweather_404.json"))
    with pytest.raises(ApiRejected, match="Cidade Que Não Existe,BR") as caught:
        openweather.fetch_current(client_for(replay), KEY, [UNKNOWN])
    assert caught.value.status == 404
    assert "city not found" in str(caught.value)
    assert len(replay.requests) == 1


def test_429_is_retried_then_unavailable():
    fake = FakeTime()
    replay = Replay(load("openweather_429.json"))
    client = client_for(replay, fake, retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ApiUnavailable, match="HTTP 429"):
        openweather.fetch_current(client, KEY, [SAO_PAULO])
    assert len(replay.requests) == 3


def test_429_with_retry_after_then_success():
    fake = FakeTime()
    throttled = load("openweather_429.json")
    throttled["response"]["headers"]["Retry-After"] = "20"
    replay = Replay(throttled, load("openweather_sao_paulo.json"))
    table = openweather.fetch_current(client_for(replay, fake, rate_limit=None), KEY, [SAO_PAULO])
    assert table.num_rows == 1
    assert fake.sleeps == [20.0]


# -- schema violations -------------------------------------------------------------------------
def _without(path: str) -> dict:
    body = sao_paulo_body()
    node = body
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    del node[last]
    return body


def _with(path: str, value) -> dict:
    body = sao_paulo_body()
    node = body
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_without("main.temp"), "main.temp"),
        (_without("main"), "main.temp"),
        (_without("coord"), "coord.lat"),
        (_without("dt"), "dt"),
        (_without("id"), "id"),
        (_with("main.temp", "22.4"), "main.temp"),
        (_with("main.humidity", True), "main.humidity"),
        (_with("coord.lat", None), "coord.lat"),
        (_with("dt", "yesterday"), "dt"),
        (_with("weather", []), "weather"),
        (_with("weather", "Clouds"), "weather"),
        (_with("weather.0.description", 3), "weather.0.description"),
        (_with("wind.speed", "fast"), "wind.speed"),
        (_with("cod", "500"), "cod"),
    ],
)
def test_shape_violations_raise_schema_error(body, field):
    replay = Replay(sao_paulo_with(body))
    with pytest.raises(ApiSchemaError) as caught:
        openweather.fetch_current(client_for(replay), KEY, [SAO_PAULO])
    message = str(caught.value)
    assert f"'{field}'" in message
    assert "São Paulo,BR" in message


def test_missing_wind_is_a_null_speed():
    replay = Replay(sao_paulo_with(_without("wind")))
    table = openweather.fetch_current(client_for(replay), KEY, [SAO_PAULO])
    assert table.column("wind_speed_ms").to_pylist() == [None]


def test_non_object_and_non_json_bodies_are_schema_errors():
    for body in (["not", "an", "object"], "<html>oops</html>"):
        replay = Replay(sao_paulo_with(body))
        with pytest.raises(ApiSchemaError):
            openweather.fetch_current(client_for(replay), KEY, [SAO_PAULO])


# -- secret hygiene ----------------------------------------------------------------------------
PATH = openweather.PATH
ECHOING_400 = recording(
    PATH,
    status=400,
    query={"appid": "***"},
    # an API that echoes the request back, key included, in its error body
    body={"cod": "400", "message": f"bad request for /data/2.5/weather?appid={KEY}&q=x"},
)
ECHOING_401 = recording(
    PATH, status=401, query={"appid": "***"}, body={"cod": 401, "message": f"Invalid key {KEY}"}
)
HYGIENE_CASES = {
    "invalid key (401)": ([load("openweather_401.json")], SAO_PAULO),
    "401 echoing the key": ([ECHOING_401], SAO_PAULO),
    "unknown city (404)": ([load("openweather_404.json")], UNKNOWN),
    "400 echoing the key": ([ECHOING_400], SAO_PAULO),
    "quota exceeded (429)": ([load("openweather_429.json")], SAO_PAULO),
    "connect error naming the URL": ([failure(PATH, "ConnectError")], SAO_PAULO),
    "timeout naming the URL": ([failure(PATH, "ReadTimeout")], SAO_PAULO),
    "proxy error naming the URL": ([failure(PATH, "ProxyError")], SAO_PAULO),
    "schema violation": ([sao_paulo_with(_without("main"))], SAO_PAULO),
    "not JSON": ([sao_paulo_with("<html>error</html>")], SAO_PAULO),
}


def _everything_said_about(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), *map(str, exc.args), str(getattr(exc, "url", ""))]
    parts += [str(exc.__cause__), repr(exc.__cause__), str(exc.__context__), repr(exc.__context__)]
    parts.append("".join(traceback.format_exception(exc)))
    return "\n".join(parts)


@pytest.mark.parametrize(("recordings", "city"), HYGIENE_CASES.values(), ids=HYGIENE_CASES.keys())
def test_the_key_never_appears_in_errors_or_logs(recordings, city, caplog):
    caplog.set_level(logging.DEBUG)
    replay = Replay(*recordings)
    client = client_for(replay, retry=RetryPolicy(max_attempts=2))

    with pytest.raises(ApiError) as caught:
        openweather.fetch_current(client, KEY, [city])

    exc = caught.value
    assert exc.__cause__ is None
    assert exc.__context__ is None or KEY not in _everything_said_about(exc.__context__)
    assert KEY not in _everything_said_about(exc)
    assert KEY not in repr(client)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = "\n".join(formatter.format(r) for r in caplog.records)
    assert KEY not in logged
    assert KEY not in caplog.text
    assert "appid=***" in logged  # the requests were logged, redacted
    # ... and yet the key was really sent
    assert replay.requests
    assert all(r.url.params["appid"] == KEY for r in replay.requests)


def test_the_key_is_not_logged_on_success_either(caplog):
    caplog.set_level(logging.DEBUG)
    replay = Replay(load("openweather_sao_paulo.json"))
    openweather.fetch_current(client_for(replay), KEY, [SAO_PAULO])
    assert KEY not in caplog.text
    assert any(r.name == "httpx" for r in caplog.records)  # httpx did log its request line
    assert replay.params()["appid"] == KEY
