"""The numpy draws the generator's tables share: seeded streams, row groups, time, distance.

Each concern draws from its own stream, :func:`stream_rng`, so a change in one table's draws
leaves the other tables as they were.
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa

from mlsec_platform.sample_data import pt_br
from mlsec_platform.sample_data.vocab import (
    BLACK_FRIDAY,
    DAY,
    FIRST_PURCHASE_DAY,
    HOUR,
    HOURLY_ORDERS,
    LAST_PURCHASE_DAY,
    MONTHLY_ORDERS,
    WEEKDAY_FACTORS,
)


def stream_rng(seed: int, stream: str) -> np.random.Generator:
    """The random generator of one concern (``"orders"``, ``"items"``, ...) for ``seed``."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def group_positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For groups of ``counts`` rows: group index and 0-based position per row, group starts."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    group = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(int(counts.sum())) - starts[group]
    return group, position, starts


def distance(city_a: np.ndarray, city_b: np.ndarray) -> np.ndarray:
    """Approximate distance in degrees between two cities (scaled longitude)."""
    dlat = pt_br.CITY_LAT[city_a] - pt_br.CITY_LAT[city_b]
    mean_lat = np.radians((pt_br.CITY_LAT[city_a] + pt_br.CITY_LAT[city_b]) / 2)
    dlng = (pt_br.CITY_LNG[city_a] - pt_br.CITY_LNG[city_b]) * np.cos(mean_lat)
    return np.hypot(dlat, dlng)


def pretty_cents(rng: np.random.Generator, reais: np.ndarray) -> np.ndarray:
    """Prices as shops write them: many end in ,90 or ,99."""
    n = len(reais)
    ending = np.array([90, 99, 0, -1])[rng.choice(4, size=n, p=[0.30, 0.25, 0.15, 0.30])]
    ending = np.where(ending < 0, rng.integers(0, 100, n), ending)
    return np.maximum(np.floor(reais).astype(np.int64) * 100 + ending, 85)


def purchase_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Purchase moments following Olist's monthly volume, weekday and hour-of-day profile."""
    days = np.arange(FIRST_PURCHASE_DAY, LAST_PURCHASE_DAY + 1)
    year, month, _ = MONTHLY_ORDERS[0]
    index = (days.astype("datetime64[M]") - np.datetime64(f"{year}-{month:02d}", "M")).astype(int)
    volume = np.array([c for _, _, c in MONTHLY_ORDERS], dtype=float)  # consecutive months
    weights = volume[index] / np.bincount(index)[index]
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    weights *= WEEKDAY_FACTORS[weekday]
    weights[days == BLACK_FRIDAY] *= 4.0
    day = days[rng.choice(len(days), size=n, p=weights / weights.sum())]
    hour = rng.choice(24, size=n, p=HOURLY_ORDERS / HOURLY_ORDERS.sum())
    second_of_hour = rng.integers(0, HOUR, n)
    return day.astype("datetime64[s]").astype(np.int64) + hour * HOUR + second_of_hour


def day_floor(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> the midnight (UTC) that starts their day."""
    return seconds - seconds % DAY


def lognormal_seconds(rng: np.random.Generator, n: int, median: float, sigma: float) -> np.ndarray:
    """``n`` whole-second durations, lognormal around ``median`` seconds."""
    return np.round(rng.lognormal(np.log(median), sigma, n)).astype(np.int64)


def sentiment_pick(
    rng: np.random.Generator, vocabularies: tuple[tuple[str, ...], ...], group: np.ndarray
) -> pa.Array:
    """One random entry per row from the vocabulary of the row's group."""
    flat = pa.array([text for vocabulary in vocabularies for text in vocabulary])
    sizes = np.array([len(v) for v in vocabularies])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    index = offsets[group] + (rng.random(len(group)) * sizes[group]).astype(np.int64)
    return flat.take(pa.array(index))
