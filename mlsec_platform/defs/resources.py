import dagster as dg

from mlsec_platform.resources import build_resources


@dg.definitions
def resources() -> dg.Definitions:
    """Vault-backed resources and IO managers for the running stack."""
    return dg.Definitions(resources=build_resources())
