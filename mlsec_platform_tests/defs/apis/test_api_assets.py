"""API connector assets: recorded responses through the real clients into Raw."""

import dagster as dg
import pytest
from deltalake import DeltaTable

from mlsec_platform.defs.apis.assets import (
    BCB_SOURCE,
    OPENWEATHER_SOURCE,
    ApiClientsResource,
    bcb_sgs_433,
    openweather_current,
)
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.settings import Zone
from mlsec_platform.sources.apis import bcb, openweather
from mlsec_platform_tests.helpers import error_chain, operator_vault
from mlsec_platform_tests.sources.replay import Replay, load, recording


class ReplayedApis(ApiClientsResource):
    """The real clients, with the network replaced by recorded responses."""

    def bcb(self):
        body = load("bcb_sgs_433_2023.json")["response"]["body"]
        replay = Replay(
            recording(bcb.series_path(bcb.SERIES_IPCA), body=body, query={"formato": "json"})
        )
        return bcb.make_client(transport=replay.transport(), rate_limit=None)

    def openweather(self):
        replay = Replay(load("openweather_sao_paulo.json"), load("openweather_rio_de_janeiro.json"))
        return openweather.make_client(transport=replay.transport(), rate_limit=None)


@pytest.fixture(scope="module")
def resources(settings, supervisor):
    return {**build_resources(settings), "api_clients": ReplayedApis()}


def _raw(resources, source):
    lake = resources["lake_connector"]
    return DeltaTable(
        lake.table_uri(Zone.RAW, source), storage_options=lake.storage_options()
    ).to_pyarrow_table()


def test_ipca_is_loaded_incrementally_without_duplicates(resources):
    first = dg.materialize([bcb_sgs_433], resources=resources)
    assert first.success
    raw = _raw(resources, BCB_SOURCE)
    assert raw.num_rows == 12
    assert set(raw.column("_connector").to_pylist()) == {"bcb_sgs"}
    assert sorted(raw.column("reference_date").to_pylist())[0] == "2023-01-01"
    again = dg.materialize([bcb_sgs_433], resources=resources)  # nothing after 2023-12 recorded
    assert again.success
    assert _raw(resources, BCB_SOURCE).num_rows == 12


def test_openweather_without_a_key_fails_clearly(resources):
    run_config = {"ops": {"raw__openweather_current": {"config": {"cities": ["São Paulo,BR"]}}}}
    result = dg.materialize(
        [openweather_current], resources=resources, run_config=run_config, raise_on_error=False
    )
    assert not result.success
    messages = [
        e.message for e in error_chain(result.get_step_failure_events()[0].step_failure_data.error)
    ]
    assert any(
        "no OpenWeather API key in Vault at mlsec/connectors/openweather" in m for m in messages
    )


def test_openweather_with_a_key_from_vault(resources, settings, endpoints):
    vault = operator_vault(settings, endpoints)
    vault.secrets.kv.v2.create_or_update_secret(
        "connectors/openweather", secret={"api_key": "recorded-responses-only"}, mount_point="mlsec"
    )
    try:
        run_config = {
            "ops": {
                "raw__openweather_current": {
                    "config": {"cities": ["São Paulo,BR", "Rio de Janeiro,BR"]}
                }
            }
        }
        result = dg.materialize([openweather_current], resources=resources, run_config=run_config)
        assert result.success
        raw = _raw(resources, OPENWEATHER_SOURCE)
        assert raw.num_rows == 2
        assert set(raw.column("city").to_pylist()) == {"São Paulo", "Rio de Janeiro"}
        assert "recorded-responses-only" not in str(raw.to_pylist())
    finally:
        vault.secrets.kv.v2.delete_metadata_and_all_versions(
            "connectors/openweather", mount_point="mlsec"
        )
