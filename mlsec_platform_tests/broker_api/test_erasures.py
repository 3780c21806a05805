"""The broker's view of erasure cuts, read with its own keys from the real lake: fresh within
its TTL, and closed when the lake will not say."""

from __future__ import annotations

import dataclasses
import time
import uuid

import pytest

from broker_api.erasures import ErasureCuts, ErasureCutUnknown, VersionErased
from mlsec_platform.catalog.datasets import CATALOG
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.resources.identity import identity_resources
from mlsec_platform.storage.erasure.delta import write_cut


@pytest.fixture
def probe():
    """A dataset of its own (never one other tests read), shaped like a catalog entry."""
    spec = CATALOG["silver/customers"]
    return dataclasses.replace(spec, name=f"cut_probe_{uuid.uuid4().hex[:8]}")


def test_a_cut_is_seen_within_the_ttl_and_refuses_older_versions(supervisor, settings, probe):
    broker = identity_resources(settings, "broker", settings.endpoints()).lake
    pipeline = build_resources(settings)["lake_pipeline"]
    # Two views, so no step depends on how long the lake takes: one remembers for a minute,
    # one for half a second.
    remembering, cuts = (ErasureCuts(broker, ttl_seconds=ttl) for ttl in (60.0, 0.5))
    assert remembering.check(probe, 0) == 0 and cuts.check(probe, 0) == 0  # never erased
    write_cut(pipeline, probe.zone, probe.name, 5, "e1")
    assert remembering.cut(probe) == 0  # still the remembered answer, within its TTL
    time.sleep(0.6)
    assert cuts.cut(probe) == 5  # past its TTL: read again
    with pytest.raises(VersionErased, match="version 4 is older than an erasure") as gone:
        cuts.check(probe, 4)
    assert gone.value.http_status == 410
    assert cuts.check(probe, 5) == 5


def test_a_lake_that_will_not_say_refuses_everything(supervisor, settings, probe):
    # The connector's keys cannot read Silver: the answer is unknown, and nothing is served.
    connector = identity_resources(settings, "connector", settings.endpoints()).lake
    with pytest.raises(ErasureCutUnknown) as unknown:
        ErasureCuts(connector).check(probe, 3)
    assert unknown.value.http_status == 503
