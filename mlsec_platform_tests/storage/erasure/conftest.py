"""The eraser's lake, as `mlsec erase` gets it: its S3 keys read on the operator's `erase`
token (the eraser has no AppRole; no other token reads them)."""

from __future__ import annotations

import pytest

from mlsec_platform.ops.erase_steps import borrowed_lake
from mlsec_platform.ops.operator import operator_command


@pytest.fixture(scope="module")
def eraser(supervisor, settings):
    with operator_command(settings, "erase") as session:
        yield borrowed_lake(settings, session, "eraser")
