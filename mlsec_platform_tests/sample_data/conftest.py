"""The generated data sets the sample-data tests share: each is generated once."""

from __future__ import annotations

import pytest

from mlsec_platform.sample_data import olist as og

ORDERS = 2_000
SEED = 42


@pytest.fixture(scope="package")
def dataset() -> og.OlistDataset:
    return og.generate(seed=SEED, orders=ORDERS)


@pytest.fixture(scope="package")
def big() -> og.OlistDataset:
    return og.generate(seed=7, orders=100_000)
