"""Pipeline metrics from the event log: each finished run counted once (job, status, duration),
rows and Delta versions of what it wrote, its gates' outcomes and the tokens it minted; runs
that end after a scrape are counted at the next one. (Real runs on a test instance.)"""

from __future__ import annotations

import dagster as dg
from prometheus_client import CollectorRegistry, generate_latest

from mlsec_platform.telemetry.pipeline_metrics import PipelineMetrics


@dg.asset(
    key=["silver", "customers"],
    check_specs=[dg.AssetCheckSpec("gate", asset=["silver", "customers"], blocking=True)],
)
def customers():
    yield dg.Output(
        1,
        metadata={
            "dagster/row_count": 40,
            "delta_version": 6,
            "transform_seconds": 1.5,
            "tokens/customers/minted": 12,
        },
    )
    yield dg.AssetCheckResult(check_name="gate", passed=False)


@dg.asset(key=["gold", "fine"])
def fine() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 3})


@dg.asset(key=["gold", "broken"])
def broken() -> None:
    raise RuntimeError("no")


def _sample(registry: CollectorRegistry, name: str, **labels) -> float | None:
    return registry.get_sample_value(name, labels)


def test_runs_rows_gates_and_tokens_are_counted_once(tmp_path) -> None:
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        collector = PipelineMetrics(instance)
        registry = CollectorRegistry()
        registry.register(collector)
        dg.materialize([customers], instance=instance, raise_on_error=False)
        text = generate_latest(registry).decode()
        job = "__ephemeral_asset_job__"
        # The blocking gate failed: the run failed, after the materialization.
        assert _sample(registry, "mlsec_pipeline_runs_total", job=job, status="success") is None
        assert _sample(registry, "mlsec_pipeline_runs_total", job=job, status="failure") == 1
        assert _sample(registry, "mlsec_pipeline_rows_total", asset="silver/customers") == 40
        assert _sample(registry, "mlsec_pipeline_delta_version", asset="silver/customers") == 6
        assert _sample(registry, "mlsec_pipeline_tokens_minted_total", domain="customers") == 12
        failed = {"asset": "silver/customers", "check": "gate", "outcome": "failed"}
        assert _sample(registry, "mlsec_pipeline_checks_total", **failed) == 1
        assert _sample(registry, "mlsec_pipeline_run_seconds_count", job=job) == 1
        assert "mlsec_pipeline_transform_seconds" in text

        dg.materialize([customers], instance=instance, raise_on_error=False)
        dg.materialize([broken], instance=instance, raise_on_error=False)
        dg.materialize([fine], instance=instance)
        # Every run once, the earlier one not again.
        assert _sample(registry, "mlsec_pipeline_runs_total", job=job, status="failure") == 3
        assert _sample(registry, "mlsec_pipeline_runs_total", job=job, status="success") == 1
        assert _sample(registry, "mlsec_pipeline_rows_total", asset="gold/fine") == 3
        assert _sample(registry, "mlsec_pipeline_rows_total", asset="silver/customers") == 80
        assert _sample(registry, "mlsec_pipeline_last_rows", asset="silver/customers") == 40
        assert _sample(registry, "mlsec_pipeline_run_seconds_count", job=job) == 4


def test_mlsec_metrics_serves_the_curated_run(curated, tmp_path) -> None:
    """`mlsec metrics`' app over the stack's instance after the session's curated run."""
    from fastapi.testclient import TestClient

    from mlsec_platform.ops.metrics import metrics_app
    from mlsec_platform.serving.scrape import MetricsScrapeCredential

    secret = "pipeline-scrape-credential-0123"
    (tmp_path / "scrape").write_text(secret)
    credential = MetricsScrapeCredential.from_file(tmp_path / "scrape")
    client = TestClient(metrics_app(curated.instance, credential))
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    text = client.get("/metrics", headers={"Authorization": f"Bearer {secret}"}).text
    customers = curated.instance.fetch_materializations(
        dg.AssetKey(["silver", "customers"]), limit=1
    ).records[0]
    count = customers.asset_materialization.metadata["dagster/row_count"].value
    assert 'mlsec_pipeline_runs_total{job="curated",status="success"}' in text
    assert f'mlsec_pipeline_last_rows{{asset="silver/customers"}} {float(count)}' in text
    assert 'mlsec_pipeline_checks_total{asset="silver/customers",check=' in text
    assert 'outcome="passed"' in text and 'mlsec_pipeline_tokens_minted_total{domain="' in text
    assert 'mlsec_pipeline_run_seconds_bucket{job="curated",le="+Inf"}' in text
