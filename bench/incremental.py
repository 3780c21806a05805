"""An incremental `curated` run after one new Raw batch, against a full rebuild of the same data.

Raw is seeded with ``--orders`` generated orders and curated once (a full build). Then a new
batch arrives (``--batch-orders`` orders of another generated data set: new customers, orders,
items, reviews, events), and the `curated` job runs as it does by default (incremental: Silver,
``gold/fact_order_item`` and the feature groups replace the changed keys' rows, and the
warehouse fact table and online stores take those keys). Baseline, in the same run on the
same Raw: the job with the full-rebuild tag (every table from all of Raw).

``--engine spark`` starts Sail and runs every run on the Spark engine (Silver incremental there
too; Gold and features rebuild whole on it, so the warehouse loads them whole). Besides each
run's time, the sums of its Silver steps' times and of its steps below Silver (Gold, features,
warehouse) are printed: the parts an incremental run changes.

    .venv/bin/python bench/incremental.py --orders 100000 [--batch-orders 1000] [--engine spark]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dagster as dg  # noqa: E402
from _stack import benchmark_stack  # noqa: E402
from pipeline import curated_job, seed_raw  # noqa: E402

from mlsec_platform.defs.resources import build_resources  # noqa: E402
from mlsec_platform.sample_data.olist import generate  # noqa: E402
from mlsec_platform.stack.supervisor import Supervisor  # noqa: E402
from mlsec_platform.storage.incremental import FULL_REBUILD_TAG  # noqa: E402
from mlsec_platform_tests.curated_data import seed_raw as seed_batch  # noqa: E402


def timed_run(
    instance: dg.DagsterInstance, tags: dict[str, str]
) -> tuple[float, dict, float, dict[str, float]]:
    """Seconds of one `curated` run, its materializations' write modes, the seconds of its
    Silver steps together and of each of its Gold, feature and warehouse steps."""
    started = time.perf_counter()
    result = curated_job().execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    seconds = time.perf_counter() - started
    if not result.success:
        raise SystemExit(
            f"curated failed: {[e.message for e in result.all_events if e.is_failure]}"
        )
    modes = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        mode = mat.metadata.get("write_mode")
        modes[mat.asset_key.to_user_string()] = mode.value if mode else None
    steps = instance.get_run_step_stats(result.run_id)
    silver = sum(s.end_time - s.start_time for s in steps if s.step_key.startswith("silver__"))
    below = {
        s.step_key: s.end_time - s.start_time for s in steps if s.step_key.startswith(BELOW_SILVER)
    }
    return seconds, modes, silver, below


def print_steps(silver: float, below: dict[str, float]) -> None:
    """The run's Silver and below-Silver step sums, and its slowest steps below Silver."""
    slowest = ", ".join(
        f"{k} {v:.1f}s" for k, v in sorted(below.items(), key=lambda kv: -kv[1])[:5]
    )
    print(f"  Silver steps: {silver:.1f}s, below: {sum(below.values()):.1f}s ({slowest})")


#: Step keys of the Gold, feature and warehouse steps (the warehouse loads share one step).
BELOW_SILVER = ("gold__", "features__", "warehouse_loads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--batch-orders", type=int, default=1_000)
    parser.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb")
    args = parser.parse_args()

    with benchmark_stack() as settings:
        if args.engine == "spark":
            Supervisor(settings).ensure_sail()
        os.environ["MLSEC_ENGINE"] = args.engine
        resources = build_resources(settings)
        seed_raw(resources, args.orders)
        instance = dg.DagsterInstance.ephemeral()
        first, _, silver, below = timed_run(instance, {})
        print(f"[{args.engine}] first (full) build of {args.orders:,} orders: {first:.1f}s")
        print_steps(silver, below)
        seed_batch(resources, generate(seed=97, orders=args.batch_orders), "bench-batch")
        incremental, modes, silver_incremental, below_incremental = timed_run(instance, {})
        replaced = sorted(k for k, m in modes.items() if m == "replace")
        print(f"incremental run after {args.batch_orders:,} new orders: {incremental:.1f}s")
        print_steps(silver_incremental, below_incremental)
        print(f"  tables that replaced only changed keys: {', '.join(replaced)}")
        full, _, silver_full, below_full = timed_run(instance, {FULL_REBUILD_TAG: "true"})
        print(f"full rebuild of the same Raw (baseline): {full:.1f}s")
        print_steps(silver_full, below_full)
        print(f"ratio incremental / full: {incremental / full:.2f}")
        print(f"ratio incremental / full, Silver steps: {silver_incremental / silver_full:.2f}")
        below_ratio = sum(below_incremental.values()) / sum(below_full.values())
        print(f"ratio incremental / full, steps below Silver: {below_ratio:.2f}")


if __name__ == "__main__":
    main()
