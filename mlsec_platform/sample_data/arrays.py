"""The numpy draws the generator's tables share: seeded streams, row groups, time, distance.

Each concern draws from its own stream, ``_rng(seed, name)``, so a change in one table's draws
leaves the others as they were.
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa

from mlsec_platform.sample_data import pt_br
from mlsec_platform.sample_data.vocab import (
    _BLACK_FRIDAY,
    _HOURLY,
    _WEEKDAY,
    DAY,
    FIRST_PURCHASE_DAY,
    HOUR,
    LAST_PURCHASE_DAY,
    MONTHLY_ORDERS,
)


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _group_positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For groups of ``counts`` rows: group index and 0-based position per row, group starts."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    group = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(int(counts.sum())) - starts[group]
    return group, position, starts


def _distance(city_a: np.ndarray, city_b: np.ndarray) -> np.ndarray:
    """Approximate distance in degrees between two cities (scaled longitude)."""
    dlat = pt_br.CITY_LAT[city_a] - pt_br.CITY_LAT[city_b]
    mean_lat = np.radians((pt_br.CITY_LAT[city_a] + pt_br.CITY_LAT[city_b]) / 2)
    dlng = (pt_br.CITY_LNG[city_a] - pt_br.CITY_LNG[city_b]) * np.cos(mean_lat)
    return np.hypot(dlat, dlng)


def _pretty_cents(rng: np.random.Generator, reais: np.ndarray) -> np.ndarray:
    """Prices as shops write them: many end in ,90 or ,99."""
    n = len(reais)
    ending = np.array([90, 99, 0, -1])[rng.choice(4, size=n, p=[0.30, 0.25, 0.15, 0.30])]
    ending = np.where(ending < 0, rng.integers(0, 100, n), ending)
    return np.maximum(np.floor(reais).astype(np.int64) * 100 + ending, 85)


def _purchase_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Purchase moments following Olist's monthly volume, weekday and hour-of-day profile."""
    days = np.arange(FIRST_PURCHASE_DAY, LAST_PURCHASE_DAY + 1)
    year, month, _ = MONTHLY_ORDERS[0]
    index = (days.astype("datetime64[M]") - np.datetime64(f"{year}-{month:02d}", "M")).astype(int)
    volume = np.array([c for _, _, c in MONTHLY_ORDERS], dtype=float)  # consecutive months
    weights = volume[index] / np.bincount(index)[index]
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    weights *= _WEEKDAY[weekday]
    weights[days == _BLACK_FRIDAY] *= 4.0
    day = days[rng.choice(len(days), size=n, p=weights / weights.sum())]
    hour = rng.choice(24, size=n, p=_HOURLY / _HOURLY.sum())
    second_of_hour = rng.integers(0, HOUR, n)
    return day.astype("datetime64[s]").astype(np.int64) + hour * HOUR + second_of_hour


def _day_floor(seconds: np.ndarray) -> np.ndarray:
    return seconds - seconds % DAY


def _lognormal_seconds(rng: np.random.Generator, n: int, median: float, sigma: float) -> np.ndarray:
    return np.round(rng.lognormal(np.log(median), sigma, n)).astype(np.int64)


def _sentiment_pick(
    rng: np.random.Generator, vocabularies: tuple[tuple[str, ...], ...], group: np.ndarray
) -> pa.Array:
    """One random entry per row from the vocabulary of the row's group."""
    flat = pa.array([text for vocabulary in vocabularies for text in vocabulary])
    sizes = np.array([len(v) for v in vocabularies])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    index = offsets[group] + (rng.random(len(group)) * sizes[group]).astype(np.int64)
    return flat.take(pa.array(index))
