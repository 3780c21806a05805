"""File ingestion rows per second, upload -> Raw, against a bare Delta write of the same table.

Real path, measured twice: the connector's run alone (landing sensor and a Dagster run of the
raw asset: checksum check, parse, one Delta commit with lineage on S3 as `connector`, move to
processed, audit), and that run plus the HTTP upload to the gateway in its own process (token
check, sniffing, UTF-8, header contract, formula neutralization, landing put, audit).
Baseline: parse the same CSV and write it to a Delta table on the same S3 in one commit.

    .venv/bin/python bench/files_to_raw.py --orders 500000
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dagster as dg  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
from _stack import bench_client, benchmark_stack, gateway_process, gateway_token, report  # noqa: E402
from deltalake import write_deltalake  # noqa: E402

from mlsec_platform.catalog.sources import FILE_SOURCES  # noqa: E402
from mlsec_platform.defs.resources import build_resources  # noqa: E402
from mlsec_platform.gateway.client import GatewayClient  # noqa: E402
from mlsec_platform.ops.drain import drain_landing  # noqa: E402
from mlsec_platform.sample_data.olist import generate, write_csv  # noqa: E402
from mlsec_platform.stack.ports import PortAllocator  # noqa: E402

SOURCE = "olist_order_items"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with benchmark_stack() as settings, ExitStack() as stack:
        dataset = generate(seed=1, orders=args.orders)
        csv = write_csv(dataset, settings.root / "bench")[SOURCE].read_bytes()
        rows = dataset.tables[SOURCE].num_rows
        print(f"{SOURCE}: {rows:,} rows, {len(csv) / 1e6:.1f} MB of CSV")

        resources = build_resources(settings)
        lake = resources["lake_pipeline"]  # the baseline writes to silver, unchecked
        tls, certificate = stack.enter_context(bench_client(settings))
        token = gateway_token(settings, f"upload:{SOURCE}", certificate)
        instance = dg.DagsterInstance.ephemeral()
        real, connector, bare = [], [], []
        with (
            gateway_process(PortAllocator().take(), tls) as (url, _),
            GatewayClient(url, token, tls=tls) as client,
        ):
            for i in range(args.repeat):
                # Each round uploads a file with one changed row, so it is new content.
                body = csv if i == 0 else _variant(csv, i)
                started = time.perf_counter()
                client.upload_file(SOURCE, body)
                uploaded = time.perf_counter()
                [run] = drain_landing(instance, resources, echo=lambda _: None)
                real.append(time.perf_counter() - started)
                connector.append(time.perf_counter() - uploaded)
                print(f"  upload {uploaded - started:.2f}s, raw run {connector[-1]:.2f}s")
                assert run.metadata["rows"] == rows, run.metadata

                started = time.perf_counter()
                table = pacsv.read_csv(
                    io.BytesIO(csv),
                    convert_options=pacsv.ConvertOptions(
                        column_types=FILE_SOURCES[SOURCE].raw_schema()
                    ),
                )
                write_deltalake(
                    lake.table_uri("silver", f"bench_baseline_{i}"),
                    table,
                    mode="append",
                    storage_options=lake.storage_options(),
                )
                bare.append(time.perf_counter() - started)
                print(f"  round {i + 1}: real {real[-1]:.2f}s, baseline {bare[-1]:.2f}s")
        target = ">= 200,000 rows/s"
        title = f"{SOURCE}, {rows:,} rows, best of {args.repeat}"
        report(
            f"Landing -> Raw (the connector's run: sensor, checks, commit, move), {title}",
            rows / min(connector),
            rows / min(bare),
            "rows/s",
            target,
        )
        report(
            f"HTTPS upload -> Raw (gateway in its own process + the run above), {title}",
            rows / min(real),
            rows / min(bare),
            "rows/s",
            target,
        )


def _variant(csv: bytes, i: int) -> bytes:
    """The same table with the last row's freight changed: new content, same size."""
    head, last = csv.rstrip(b"\n").rsplit(b"\n", 1)
    fields = last.split(b",")
    fields[-1] = f'"{i}.00"'.encode()
    return head + b"\n" + b",".join(fields) + b"\n"


if __name__ == "__main__":
    main()
