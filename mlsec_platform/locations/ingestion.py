"""The ``ingestion`` code location (see :mod:`mlsec_platform.locations`)."""

import dagster as dg

from mlsec_platform.locations import location_definitions


@dg.definitions
def defs() -> dg.Definitions:
    return location_definitions("ingestion")
