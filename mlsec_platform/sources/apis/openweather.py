"""OpenWeather "current weather data" (API 2.5) client.

Endpoint::

    GET https://api.openweathermap.org/data/2.5/weather
        ?q={city},{country}&appid={key}&units=metric&lang=pt_br

The key travels as the ``appid`` query parameter (the API takes it nowhere else), so it is a
secret inside every request URL: the shared HTTP layer redacts it from messages and logs. It is
read from Vault (KV v2, mount ``mlsec``, path ``connectors/openweather``, field ``api_key``) by
the asset; this module only receives it.

Answers this client interprets:

* 200 with the current weather document (``coord``, ``weather[0]``, ``main``, ``wind``, ``dt``,
  ``id``, ...): validated and flattened into one :data:`SCHEMA` row per city. Numbers are kept
  as the text received (parsed as decimals, not floats), ``observed_at`` is ``dt`` as ISO 8601
  UTC.
* 401 ``{"cod":401,"message":"Invalid API key. ..."}`` (also for a key not activated yet):
  :class:`ApiRejected`, no retry.
* 404 ``{"cod":"404","message":"city not found"}``: :class:`ApiRejected` naming the city.
* 429 (quota exceeded) and 5xx: retried by the HTTP layer, then :class:`ApiUnavailable`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pyarrow as pa

from mlsec_platform.sources.apis.errors import ApiRejected, ApiSchemaError, MissingApiKey
from mlsec_platform.sources.apis.http import ApiClient, response_json
from mlsec_platform.sources.apis.limits import RateLimit, RetryPolicy
from mlsec_platform.sources.apis.redaction import redact_text

BASE_URL = "https://api.openweathermap.org"
PATH = "/data/2.5/weather"
CONNECTOR = ("openweather_current", "1.0.0")

VAULT_MOUNT = "mlsec"
VAULT_PATH = "connectors/openweather"
VAULT_FIELD = "api_key"

#: The free plan allows 60 calls per minute.
DEFAULT_RATE_LIMIT = RateLimit(calls=60, period=60.0)

DEFAULT_CITIES: list[tuple[str, str]] = [
    ("São Paulo", "BR"),
    ("Rio de Janeiro", "BR"),
    ("Brasília", "BR"),
    ("Salvador", "BR"),
    ("Fortaleza", "BR"),
    ("Belo Horizonte", "BR"),
    ("Manaus", "BR"),
    ("Curitiba", "BR"),
    ("Recife", "BR"),
    ("Porto Alegre", "BR"),
]

SCHEMA = pa.schema(
    [
        pa.field(name, pa.string())
        for name in (
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
        )
    ]
)

_MISSING = object()


def make_client(
    *,
    transport: httpx.BaseTransport | None = None,
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
    retry: RetryPolicy | None = None,
    **kwargs: Any,
) -> ApiClient:
    """An :class:`ApiClient` for OpenWeather (keyword arguments go to :class:`ApiClient`)."""
    return ApiClient(
        BASE_URL, CONNECTOR, transport=transport, rate_limit=rate_limit, retry=retry, **kwargs
    )


class _Shape:
    """Typed access to one response document; failures name the city and the field."""

    def __init__(self, doc: Any, where: str) -> None:
        self.doc, self.where = doc, where

    def fail(self, field: str, why: str) -> ApiSchemaError:
        return ApiSchemaError(f"{self.where}: '{field}' {why}")

    def get(self, field: str) -> Any:
        node: Any = self.doc
        for part in field.split("."):
            if isinstance(node, list):
                index = int(part)
                node = node[index] if index < len(node) else _MISSING
            elif isinstance(node, dict):
                node = node.get(part, _MISSING)
            else:
                node = _MISSING
            if node is _MISSING:
                raise self.fail(field, "is missing")
        return node

    def number(self, field: str) -> str:
        value = self.get(field)
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise self.fail(field, f"is not a number ({type(value).__name__})")
        if isinstance(value, Decimal) and not value.is_finite():
            raise self.fail(field, "is not a finite number")
        return str(value)

    def integer(self, field: str) -> int:
        value = self.get(field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"is not an integer ({type(value).__name__})")
        return value

    def text(self, field: str) -> str:
        value = self.get(field)
        if not isinstance(value, str):
            raise self.fail(field, f"is not text ({type(value).__name__})")
        return value


def parse_current(doc: Any, city: str, country: str) -> dict[str, str | None]:
    """One :data:`SCHEMA` row from a current-weather document, or :class:`ApiSchemaError`."""
    shape = _Shape(doc, f"{CONNECTOR[0]}: response for '{city},{country}'")
    if not isinstance(doc, dict):
        raise ApiSchemaError(f"{shape.where}: expected a JSON object, got {type(doc).__name__}")
    cod = doc.get("cod", 200)
    if str(cod) != "200":
        raise shape.fail("cod", f"is {cod!r}, not 200")
    weather = shape.get("weather")
    if not isinstance(weather, list) or not weather:
        raise shape.fail("weather", "is not a non-empty list")
    observed = shape.integer("dt")
    try:
        observed_at = datetime.fromtimestamp(observed, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        raise shape.fail("dt", "is not a usable Unix time") from None
    wind = doc.get("wind")
    wind_speed = shape.number("wind.speed") if isinstance(wind, dict) and "speed" in wind else None
    return {
        "city": city,
        "country": country,
        "city_id": str(shape.integer("id")),
        "observed_at": observed_at,
        "lat": shape.number("coord.lat"),
        "lon": shape.number("coord.lon"),
        "temp_c": shape.number("main.temp"),
        "feels_like_c": shape.number("main.feels_like"),
        "humidity_pct": shape.number("main.humidity"),
        "pressure_hpa": shape.number("main.pressure"),
        "wind_speed_ms": wind_speed,
        "weather_main": shape.text("weather.0.main"),
        "weather_description": shape.text("weather.0.description"),
    }


def _api_message(response: httpx.Response) -> str:
    """The ``message`` of an OpenWeather error document, if there is one (no key in it)."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return doc["message"][:200]
    return ""


def fetch_current(
    client: ApiClient, api_key: str | None, cities: list[tuple[str, str]]
) -> pa.Table:
    """Current weather for each ``(city, country)`` as a :data:`SCHEMA` table, in input order.

    Raises :class:`MissingApiKey` when there is no key, :class:`ApiRejected` for a refused key
    (401) or a city OpenWeather does not know (404), :class:`ApiSchemaError` for a response of
    the wrong shape and :class:`ApiUnavailable` when retries are exhausted.
    """
    key = (api_key or "").strip()
    if not key:
        raise MissingApiKey(
            f"no OpenWeather API key in Vault at {VAULT_MOUNT}/{VAULT_PATH}: put one there "
            f"with `bao kv put -mount={VAULT_MOUNT} {VAULT_PATH} {VAULT_FIELD}=<your key>` "
            "(a new key can take a couple of hours to be activated by OpenWeather)"
        )
    rows = []
    for city, country in cities:
        params = {"q": f"{city},{country}", "appid": key, "units": "metric", "lang": "pt_br"}
        response = client.get(PATH, params, allow_status={401, 404})
        if response.status_code == 404:
            message = redact_text(_api_message(response), [key]) or "not found"
            raise ApiRejected(
                f"{CONNECTOR[0]}: OpenWeather does not know the city '{city},{country}' "
                f"(HTTP 404: {message}); fix the city list",
                status=404,
            )
        if response.status_code == 401:
            message = redact_text(_api_message(response), [key]) or "unauthorized"
            raise ApiRejected(
                f"{CONNECTOR[0]}: OpenWeather refused the API key from Vault at "
                f"{VAULT_MOUNT}/{VAULT_PATH} (HTTP 401: {message}); a new key can take a "
                "couple of hours to be activated, otherwise replace it",
                status=401,
            )
        doc = response_json(
            response, f"{CONNECTOR[0]}: response for '{city},{country}'", parse_float=Decimal
        )
        rows.append(parse_current(doc, city, country))
    return pa.Table.from_pylist(rows, schema=SCHEMA)
