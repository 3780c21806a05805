"""The curated zones' tests share the session's curated data set.

Its fixture ``curated`` lives in ``mlsec_platform_tests/curated_data.py`` (loaded for the whole
session by the root ``conftest.py``), so other packages, the broker's, read the same data; the
names below stay importable from here.
"""

from mlsec_platform_tests.curated_data import (  # noqa: F401 - re-exported for the tests
    ORDERS,
    SEED,
    Curated,
    run_curated,
    seed_raw,
)
