"""The whole asset graph in one process: the three code locations merged.

``workspace.yaml`` serves each location apart, one process per identity; this merge is for
in-process use that spans them (tests, benchmarks, the graph snapshot). `dagster dev` from the
repository root serves workspace.yaml (no `[tool.dg]` block sends it to one merged location).
"""

import dagster as dg

from mlsec_platform.locations import LOCATIONS, location_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(*(location_definitions(name) for name in LOCATIONS))
