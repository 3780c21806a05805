"""The pipeline's way into the token vault, as a Dagster resource."""

import dagster as dg

from mlsec_platform.privacy.tokens import (
    INDEX_KEY,
    WRAP_KEY,
    DataKey,
    IndexKey,
    fetch_index_key,
    new_data_key,
)
from mlsec_platform.resources.postgres import PostgresWarehouseResource
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.storage.token_index import clear_index_cache
from mlsec_platform.storage.token_lock import advisory_lock
from mlsec_platform.storage.token_vault import TokenVault


class TokenVaultResource(dg.ConfigurableResource):
    """Gives each batch (one asset's materialization) a :class:`TokenVault` of its own: the index
    key unwrapped for that batch only, a fresh data key per mint, the domain's mint lock held in
    Postgres with the pipeline's warehouse login. Each unwrap and data key is a secret read in
    the audit log (the path and key id, never the key), each mint an audit event."""

    lake: dg.ResourceDependency[S3LakeResource]
    warehouse: dg.ResourceDependency[PostgresWarehouseResource]

    def for_batch(self, run_id: str | None = None) -> TokenVault:
        vault, audit = self.lake.vault, self.lake.audit

        def index_key() -> IndexKey:
            key = fetch_index_key(vault)
            audit.secret_read(f"transit/decrypt/{INDEX_KEY}", purpose="token index")
            return key

        def data_key() -> DataKey:
            key = new_data_key(vault)
            audit.secret_read(
                f"transit/datakey/plaintext/{WRAP_KEY}", purpose="token mint", key_id=key.key_id
            )
            return key

        return TokenVault.on_lake(
            self.lake,
            index_key=index_key,
            data_keys=data_key,
            lock=lambda domain: advisory_lock(self.warehouse.connection, domain),
            emit=lambda event, payload: audit.emit(event, payload, run_id=run_id),
            run_id=run_id,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        clear_index_cache()
