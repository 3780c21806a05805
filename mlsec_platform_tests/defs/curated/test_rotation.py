"""Rotating the token vault's keys rewraps what they wrap: tokens stay the same in every table
and run, reveals still work, and the old key versions open nothing any more."""

import dagster as dg
import hvac
import pyarrow as pa
from deltalake import DeltaTable
from hvac.exceptions import InvalidRequest

from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.ops.operator import child_token
from mlsec_platform.ops.rotation import rotate_token_keys
from mlsec_platform.privacy.reveal import REVEAL_POLICY, reveal
from mlsec_platform.privacy.tokens import INDEX_KEY, INDEX_KEY_PATH, WRAP_KEY
from mlsec_platform.settings import Zone
from mlsec_platform.storage.incremental import FULL_REBUILD_TAG
from mlsec_platform_tests.defs.curated.conftest import run_curated
from mlsec_platform_tests.defs.curated.helpers import read, version
from mlsec_platform_tests.helpers import audit_events, audit_head, operator_vault, vault_reader


def _emails(curated, n=3):
    generated = curated.dataset.tables["olist_customers"].slice(0, n)
    silver = read(curated, "silver", "customers", ["customer_id", "email_token"])
    tokens = dict(zip(*(silver.column(i).to_pylist() for i in range(2)), strict=True))
    ids = generated.column("customer_id").to_pylist()
    return generated.column("customer_email").to_pylist(), [tokens[i] for i in ids]


def _wrapped_keys(curated) -> list[str]:
    lake = curated.resources["lake_pipeline"]
    keys = DeltaTable(
        lake.table_uri(Zone.TOKENS, "customers/keys"), storage_options=lake.storage_options()
    )
    return keys.to_pyarrow_table(columns=["wrapped"]).column(0).to_pylist()


def _opens(client: hvac.Client, key: str, ciphertext: str) -> bool:
    try:
        client.secrets.transit.decrypt_data(key, ciphertext)
    except InvalidRequest:
        return False
    return True


def test_rotation_keeps_every_token_and_retires_the_old_versions(
    curated, settings, endpoints, superuser_dsn
):
    emails, tokens = _emails(curated)
    tables = {
        (zone, name): version(curated, zone, name)
        for zone, name in [("silver", "customers"), ("gold", "dim_customer")]
    }
    old_wrapped = _wrapped_keys(curated)
    root = operator_vault(settings, endpoints)
    old_index_key = root.secrets.kv.v2.read_secret_version(INDEX_KEY_PATH, mount_point="mlsec")
    head = audit_head(superuser_dsn)

    report = rotate_token_keys(settings, echo=lambda _: None)

    for key in (WRAP_KEY, INDEX_KEY):
        before, after = report.versions[key]
        assert after == before + 1
        assert root.secrets.transit.read_key(key)["data"]["min_decryption_version"] == after
    assert report.rewrapped["customers"] == len(old_wrapped) > 0
    new_wrapped = _wrapped_keys(curated)
    latest = report.versions[WRAP_KEY][1]
    assert all(w.startswith(f"vault:v{latest}:") for w in new_wrapped)
    # No curated table was rewritten: the tokens in them are still the valid ones.
    assert {k: version(curated, *k) for k in tables} == tables

    # The old wrapped keys and index key open nothing any more, even for OpenBao's root.
    assert not _opens(root, WRAP_KEY, old_wrapped[0])
    assert not _opens(root, INDEX_KEY, old_index_key["data"]["data"]["wrapped"])
    assert _opens(root, WRAP_KEY, new_wrapped[0])

    # Reveal goes on with the rewrapped keys; the same values keep their tokens in a new run.
    revealer = vault_client(root.url, child_token(root, REVEAL_POLICY))
    kwargs = {"domain": "customers", "subject": "t", "reason": "rotation test", "emit": print}
    assert reveal(revealer, vault_reader(settings, endpoints), tokens, **kwargs) == emails
    vault = curated.resources["token_vault"].for_batch()
    assert vault.lookup("customers", pa.array(emails)).to_pylist() == tokens
    result = run_curated(  # a full rebuild: every customer tokenized again after the rotation
        curated.resources,
        curated.instance,
        asset_selection=[dg.AssetKey(["silver", "customers"])],
        tags={FULL_REBUILD_TAG: "true"},
    )
    assert result.success
    assert _emails(curated)[1] == tokens

    for event in ("tokens.key_rotated", "tokens.keys_rewrapped", "tokens.key_retired"):
        assert audit_events(superuser_dsn, event, head), event
    assert len(audit_events(superuser_dsn, "tokens.key_rotated", head)) == 2
