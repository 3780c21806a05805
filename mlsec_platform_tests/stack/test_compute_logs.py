"""Step logs go to the lake's `dagster` bucket through dagster-aws's S3ComputeLogManager as the
`orchestrator` identity: a real run's output is there and readable back through the manager
(what the UI does), no other identity can read it, and after `mlsec rotate s3-keys
orchestrator` the same manager goes on with the new key."""

from __future__ import annotations

import uuid

import dagster as dg
from dagster._core.storage.compute_log_manager import ComputeIOType

from mlsec_platform.ops.s3_keys import rotate_identity_keys
from mlsec_platform.settings import Zone
from mlsec_platform.stack.compute_logs import PREFIX
from mlsec_platform_tests.helpers import s3_as, s3_error_code

COMPUTE_LOGS = {
    "module": "mlsec_platform.stack.orchestrator",
    "class": "OrchestratorComputeLogs",
    "config": {},
}


def test_step_logs_are_in_the_dagster_bucket_as_the_orchestrator(
    supervisor, settings, endpoints, tmp_path
) -> None:
    marker = f"step-says-{uuid.uuid4().hex}"

    @dg.asset
    def talkative() -> None:
        print(marker)  # noqa: T201 - what the step log must hold

    with dg.instance_for_test(
        temp_dir=str(tmp_path), overrides={"compute_logs": COMPUTE_LOGS}
    ) as instance:
        manager = instance.compute_log_manager
        result = dg.materialize([talkative], instance=instance)
        assert result.success
        bucket = settings.bucket(Zone.DAGSTER)
        orchestrator = s3_as("orchestrator", settings, endpoints)
        listed = orchestrator.list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}/")
        keys = [o["Key"] for o in listed.get("Contents", []) if result.run_id in o["Key"]]
        out = [k for k in keys if k.endswith(".out")]
        assert out, keys
        body = orchestrator.get_object(Bucket=bucket, Key=out[0])["Body"].read().decode()
        assert marker in body
        # No data identity reaches it, and the orchestrator no data zone.
        for identity in ("pipeline", "broker", "auditor"):
            other = s3_as(identity, settings, endpoints)
            assert s3_error_code(lambda o=other: o.get_object(Bucket=bucket, Key=out[0])) == (
                "AccessDenied"
            )
        silver = settings.bucket(Zone.SILVER)
        assert s3_error_code(lambda: orchestrator.list_objects_v2(Bucket=silver)) == (
            "AccessDenied"
        )
        # The UI's path: the manager lists and reads the run's logs back, also after the
        # orchestrator's key was rotated under it.
        rotate_identity_keys(settings, ["orchestrator"], lambda _: None)
        log_key = manager.get_log_keys_for_log_key_prefix(
            [result.run_id, "compute_logs"],
            io_type=ComputeIOType.STDOUT,
        )
        assert log_key
        assert manager.cloud_storage_has_logs(log_key[0], ComputeIOType.STDOUT)
