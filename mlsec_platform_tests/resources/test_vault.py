"""VaultResource: AppRole login, renewal, leases, and failing closed."""

import time

import dagster as dg
import pytest
from deltalake import DeltaTable

from mlsec_platform.defs.reference.assets import br_states
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform.resources.vault import VaultAccessDenied, VaultResource, VaultUnavailable
from mlsec_platform.settings import Zone
from mlsec_platform_tests.helpers import error_chain, s3_admin, vault_as


def test_token_is_renewed_before_it_expires(settings, endpoints):
    vault = vault_as("pipeline", settings, endpoints)
    client = vault.client()
    token = client.token
    vault._token_expires_at = time.monotonic() + 5  # inside the 60 s renewal margin
    assert vault.client().token == token  # renewed, not replaced
    assert vault._token_expires_at - time.monotonic() > settings.token_ttl - 60
    vault.revoke()


def test_dynamic_login_is_reissued_before_its_lease_ends(settings, endpoints):
    login = LeasedLogin(
        vault_as("broker", settings, endpoints), "warehouse-reader", margin_seconds=4
    )
    first = login.current()
    assert login.current() is first  # plenty of time left: reused
    time.sleep(first.duration - 4 + 0.5)
    second = login.current()
    assert second.data["username"] != first.data["username"]
    login.revoke()


def test_missing_approle_credentials_say_how_to_fix(settings, endpoints, tmp_path):
    vault = VaultResource(
        addr=endpoints.vault_addr, identity="pipeline", credentials_dir=str(tmp_path)
    )
    with pytest.raises(VaultAccessDenied, match="run `mlsec bootstrap`"):
        vault.read_kv("s3/pipeline")


def test_revoked_secret_id_is_refused(settings, endpoints, tmp_path):
    folder = tmp_path / "pipeline"
    folder.mkdir()
    (folder / "role_id").write_text((settings.identities_dir / "pipeline" / "role_id").read_text())
    (folder / "secret_id").write_text("00000000-0000-0000-0000-000000000000")
    vault = VaultResource(
        addr=endpoints.vault_addr, identity="pipeline", credentials_dir=str(tmp_path)
    )
    with pytest.raises(VaultAccessDenied, match="AppRole login as 'pipeline' refused"):
        vault.read_kv("s3/pipeline")


def _silver_objects(supervisor, settings) -> list[str]:
    listing = s3_admin(supervisor, settings).list_objects_v2(
        Bucket=settings.bucket(Zone.SILVER), Prefix="br_states/"
    )
    return sorted(o["Key"] for o in listing.get("Contents", []))


def test_materializing_without_openbao_fails_closed(supervisor, settings):
    resources = build_resources(settings)
    assert dg.materialize([br_states], resources=resources).success
    before = _silver_objects(supervisor, settings)
    supervisor.stop("openbao")
    try:
        result = dg.materialize(
            [br_states], resources=build_resources(settings), raise_on_error=False
        )
        assert not result.success
        error = result.get_step_failure_events()[0].step_failure_data.error
        [cause] = [e for e in error_chain(error) if e.cls_name == "VaultUnavailable"]
        assert "unreachable" in cause.message and "mlsec status" in cause.message
        assert _silver_objects(supervisor, settings) == before  # nothing written
    finally:
        supervisor.start("openbao")
    assert dg.materialize([br_states], resources=build_resources(settings)).success


def test_vault_unavailable_is_a_typed_error(settings):
    vault = VaultResource(
        addr="http://127.0.0.1:9", identity="pipeline", credentials_dir=str(settings.identities_dir)
    )
    with pytest.raises(VaultUnavailable):
        vault.read_kv("s3/pipeline")


def test_delta_table_reads_back_after_restart(supervisor, settings, endpoints):
    lake = build_resources(settings)["lake_pipeline"]
    table = DeltaTable(
        lake.table_uri(Zone.SILVER, "br_states"), storage_options=lake.storage_options()
    )
    assert table.to_pyarrow_table().num_rows == 27
