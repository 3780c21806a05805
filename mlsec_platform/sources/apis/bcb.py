"""Banco Central do Brasil, SGS (Sistema Gerenciador de Séries Temporais) series client.

Endpoint (public, no key)::

    GET https://api.bcb.gov.br/dados/serie/bcdata.sgs.{series}/dados
        ?formato=json&dataInicial=dd/mm/aaaa&dataFinal=dd/mm/aaaa

The answer is a JSON list ``[{"data": "01/01/2024", "valor": "0.42"}, ...]``: dates as
``dd/mm/yyyy`` and values as decimal text with a dot. Series 433 is the IPCA (monthly % change,
one point per month dated the 1st).

Behaviour of the service this client accounts for:

* SGS refuses windows longer than 10 years for daily series (an HTTP 4xx error), so every request
  covers at most :data:`MAX_WINDOW_YEARS` years; longer ranges are split into consecutive
  windows. Monthly series such as 433 do not need it, but the rule is applied uniformly.
* A window without data may be answered with ``[]`` or with **HTTP 404** (whose body is an
  error document, JSON or HTML). On this endpoint 404 therefore means "no data in this
  window" and yields no rows. The price: a series number that does not exist also looks empty,
  so pick series numbers from the SGS catalogue.
* The service sometimes answers an HTML/XML error page; anything that is not the documented JSON
  shape raises :class:`ApiSchemaError` naming the first bad record.

Raw keeps values as received (text); :data:`SCHEMA` only normalises the date to ISO.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pyarrow as pa

from mlsec_platform.sources.apis.errors import ApiSchemaError
from mlsec_platform.sources.apis.http import ApiClient, response_json
from mlsec_platform.sources.apis.limits import RateLimit, RetryPolicy

log = logging.getLogger("mlsec.connectors")

BASE_URL = "https://api.bcb.gov.br"
CONNECTOR = ("bcb_sgs", "1.0.0")
SERIES_IPCA = 433

#: The first date loaded when nothing was loaded yet (the Real plan).
FIRST_DATE = date(1994, 7, 1)
#: The longest window one request may cover.
MAX_WINDOW_YEARS = 10
#: SGS publishes no quota; stay polite.
DEFAULT_RATE_LIMIT = RateLimit(calls=30, period=60.0)

SCHEMA = pa.schema(
    [
        pa.field("series_id", pa.string()),
        pa.field("reference_date", pa.string()),
        pa.field("value", pa.string()),
    ]
)

_RECORD_KEYS = frozenset({"data", "valor"})
_DATE = re.compile(r"\d{2}/\d{2}/\d{4}")
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")


def make_client(
    *,
    transport: httpx.BaseTransport | None = None,
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
    retry: RetryPolicy | None = None,
    **kwargs: Any,
) -> ApiClient:
    """An :class:`ApiClient` for SGS (keyword arguments go to :class:`ApiClient`)."""
    return ApiClient(
        BASE_URL, CONNECTOR, transport=transport, rate_limit=rate_limit, retry=retry, **kwargs
    )


def series_path(series: int) -> str:
    return f"/dados/serie/bcdata.sgs.{series}/dados"


def sgs_date(day: date) -> str:
    """A date the way SGS wants it: dd/mm/yyyy."""
    return day.strftime("%d/%m/%Y")


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def windows(start: date, end: date, years: int = MAX_WINDOW_YEARS) -> list[tuple[date, date]]:
    """Consecutive inclusive windows covering ``start..end``, none longer than ``years`` years.

    A window starting on D ends at the latest the day before D + ``years`` years.
    """
    if start > end:
        return []
    out = []
    cursor = start
    while cursor <= end:
        last = min(end, _add_years(cursor, years) - timedelta(days=1))
        out.append((cursor, last))
        cursor = last + timedelta(days=1)
    return out


def next_window(last_loaded: date | None, today: date) -> tuple[date, date] | None:
    """The window an incremental load asks for next, or None when there is nothing new.

    It starts the day after the last loaded reference date (or on :data:`FIRST_DATE` for the
    first load) and ends today.
    """
    start = FIRST_DATE if last_loaded is None else last_loaded + timedelta(days=1)
    if start > today:
        return None
    return start, today


def _bad(series: int, window: tuple[date, date], index: int, record: Any, why: str) -> str:
    shown = repr(record)
    if len(shown) > 120:
        shown = shown[:120] + "..."
    return (
        f"{CONNECTOR[0]}: series {series}, window {window[0].isoformat()}..{window[1].isoformat()}"
        f": record #{index} {shown} {why}"
    )


def _parse_record(
    series: int, window: tuple[date, date], index: int, record: Any
) -> tuple[date, str]:
    if not isinstance(record, dict):
        raise ApiSchemaError(_bad(series, window, index, record, "is not an object"))
    if set(record) != _RECORD_KEYS:
        missing = sorted(_RECORD_KEYS - set(record))
        extra = sorted(set(record) - _RECORD_KEYS)
        why = "has the wrong keys" + (f"; missing {missing}" if missing else "")
        why += f"; unexpected {extra}" if extra else ""
        raise ApiSchemaError(_bad(series, window, index, record, why))
    raw_date, raw_value = record["data"], record["valor"]
    day: date | None = None
    if isinstance(raw_date, str) and _DATE.fullmatch(raw_date):
        try:
            day = datetime.strptime(raw_date, "%d/%m/%Y").date()
        except ValueError:
            day = None
    if day is None:
        raise ApiSchemaError(_bad(series, window, index, record, "has no dd/mm/yyyy 'data'"))
    if not (isinstance(raw_value, str) and _DECIMAL.fullmatch(raw_value)):
        raise ApiSchemaError(
            _bad(series, window, index, record, "has a 'valor' that is not a decimal number")
        )
    return day, raw_value


def fetch_series(client: ApiClient, series: int, start: date, end: date) -> pa.Table:
    """Fetch ``series`` between ``start`` and ``end`` (inclusive) as a :data:`SCHEMA` table.

    Every record is validated (exactly the keys ``data`` and ``valor``, a dd/mm/yyyy date, a
    decimal value); the first bad one raises :class:`ApiSchemaError`. Records are de-duplicated
    by date (the same date with two different values is an error) and sorted by date. Records
    outside the requested window are dropped with a warning.
    """
    if isinstance(series, bool) or not isinstance(series, int) or series <= 0:
        raise ValueError(f"an SGS series is a positive integer, not {series!r}")
    if start > end:
        raise ValueError(f"start {start} is after end {end}")

    values: dict[date, str] = {}
    for window in windows(start, end):
        params = {
            "formato": "json",
            "dataInicial": sgs_date(window[0]),
            "dataFinal": sgs_date(window[1]),
        }
        response = client.get(series_path(series), params, allow_status={404})
        if response.status_code == 404:
            log.info(
                "%s series %s: no data between %s and %s (HTTP 404)",
                CONNECTOR[0],
                series,
                window[0],
                window[1],
            )
            continue
        what = f"{CONNECTOR[0]}: series {series}, window {window[0]}..{window[1]}"
        payload = response_json(response, what)
        if not isinstance(payload, list):
            raise ApiSchemaError(
                f"{what}: expected a JSON list of records, got {type(payload).__name__}",
                status=response.status_code,
            )
        for index, record in enumerate(payload):
            day, value = _parse_record(series, window, index, record)
            if not window[0] <= day <= window[1]:
                log.warning(
                    "%s: dropping record #%d dated %s, outside the window", what, index, day
                )
                continue
            if day in values and values[day] != value:
                raise ApiSchemaError(
                    _bad(
                        series, window, index, record, f"contradicts {values[day]!r} for that date"
                    )
                )
            values[day] = value

    days = sorted(values)
    return pa.table(
        {
            "series_id": [str(series)] * len(days),
            "reference_date": [d.isoformat() for d in days],
            "value": [values[d] for d in days],
        },
        schema=SCHEMA,
    )
