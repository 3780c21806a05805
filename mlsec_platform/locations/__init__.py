"""The platform's Dagster code locations: one per workload identity, each its own process.

``workspace.yaml`` serves each as a code location of its own, so the daemon and the webserver
run each in a separate code server holding only its identity's resources:

    ingestion   connector   connectors: landing uploads, event batches and APIs -> Raw
    curation    pipeline    Raw -> Silver -> Gold -> warehouse and feature groups
    lifecycle   lifecycle   Raw batches past retention -> Cold and back

An asset of one location depends on another's by asset key only (Silver on Raw, say), which
Dagster follows across locations; no location can bind a resource of another's identity,
because it has none. :mod:`mlsec_platform.definitions` merges the three for in-process use
(tests, benchmarks, `dagster definitions validate` of the whole graph).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import dagster as dg

from mlsec_platform.defs.resources import wire_resources
from mlsec_platform.settings import get_settings


@dataclass(frozen=True)
class Location:
    """A code location: the identity it runs as and the ``defs/`` modules it serves, each
    declaring what it holds in its ``defs()``."""

    name: str
    identity: str
    modules: tuple[str, ...]


LOCATIONS = {
    location.name: location
    for location in (
        Location(
            "ingestion", "connector", ("raw.files", "raw.events", "raw.checks", "apis.assets")
        ),
        Location(
            "curation",
            "pipeline",
            (
                "reference.assets",
                "silver.assets",
                "gold.assets",
                "warehouse.assets",
                "warehouse.checks",
                "features.assets",
                "features.order_status",
                "automation",
                "lineage.sensors",
            ),
        ),
        Location("lifecycle", "lifecycle", ("lifecycle.jobs",)),
    )
}


#: Every step of a run in the run's own process. Dagster's default starts a new Python per
#: step, and each imports the platform again (about 5 s here: Dagster, pandas, pyarrow, DuckDB,
#: pandera), which a sensor's one-step Raw batch paid twice and an event's way down to the
#: online store once per table; a process of its own also cannot use the tables an earlier
#: step of the run committed (``resources/committed.py``). The two cores are used inside the
#: steps instead (DuckDB, Delta writes, the warehouse's parallel loads).
RUN_EXECUTOR = dg.in_process_executor


def location_definitions(name: str) -> dg.Definitions:
    """The definitions of location ``name``: its domains' assets, checks, jobs and sensors,
    and the resources of its identity alone (they find the running stack when a run starts)."""
    location = LOCATIONS[name]
    return dg.Definitions.merge(
        *(_module_definitions(module) for module in location.modules),
        dg.Definitions(
            resources=wire_resources(get_settings(), None, [location.identity]),
            executor=RUN_EXECUTOR,
        ),
    )


def _module_definitions(module: str) -> dg.Definitions:
    """What ``defs/<module>.py`` declares in its ``defs()``."""
    return importlib.import_module(f"mlsec_platform.defs.{module}").defs()
