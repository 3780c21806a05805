"""Deterministic generator of Olist-shaped Brazilian e-commerce data with pt_BR personal data.

The platform's demo source and the benchmarks' workload: nine tables shaped exactly like the
file-source contracts in :mod:`mlsec_platform.catalog.sources` (every value as text, ``None``
for a missing value) plus the ``order_status`` event stream derived from them.

Determinism
    Every random decision comes from a ``numpy.random.Generator`` seeded with ``(seed, stream)``
    where ``stream`` is a fixed name per concern ("orders", "items", "payments", ...). The same
    ``seed`` and ``orders`` therefore give identical tables (and byte-identical CSV files) on
    every run with the same numpy version; another seed gives other data. Ids are 32-hex
    strings drawn from those generators; event ids are UUIDv5 over ``(seed, order_id,
    event_type)``, so re-publishing a data set reproduces its event ids.

What is realistic (roughly the public Olist data, 2016-09 .. 2018-10)
    * monthly order volume follows Olist's growth (a trickle in late 2016, the Black Friday
      peak in November 2017), with Olist's hour-of-day and weekday profile;
    * ~96.5 % delivered; the other statuses have consistent lifecycle timestamps (a delivered
      order has purchase < approved < carrier < customer delivery; canceled orders have no
      delivery dates; boleto payments take a day or two to approve);
    * ~97 % of people buy once (``customer_unique_id`` repeats, ``customer_id`` is per order);
    * customers and sellers by state as in Olist (SP ~42 % of customers, ~60 % of sellers);
    * 1 item for ~90 % of orders, lognormal prices (median ~75 BRL), freight and delivery time
      growing with the seller-to-customer distance and the product weight;
    * Olist's 71 Portuguese categories with their English translations (typos included);
    * payment mix (credit card with installments, boleto, vouchers, debit card) whose values sum
      to the order's price plus freight to the cent; review scores and Portuguese comments that
      depend on late or failed deliveries; some comments carry the customer's phone or e-mail,
      as free text does in real life.

Everything is vectorized with numpy/pyarrow: 100k orders take about a second.

Where things are
    This module is the entry point (the data set, :func:`generate`, the CSV files). The
    tables are built in :mod:`.builder` (reviews in :mod:`.reviews`) from the reference data
    in :mod:`.vocab` and :mod:`.pt_br`, with the draws of :mod:`.arrays` and the text formats
    of :mod:`.columns`; the event stream is :mod:`.events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.sample_data.builder import TableBuilder
from mlsec_platform.sources import validation


@dataclass(frozen=True)
class OlistDataset:
    """A generated data set: one pyarrow table per file source, shaped by its contract."""

    seed: int
    orders: int
    tables: dict[str, pa.Table]


def generate(seed: int = 42, orders: int = 100_000) -> OlistDataset:
    """Generate ``orders`` orders (and everything around them) from ``seed``.

    Every table's schema equals ``FILE_SOURCES[name].raw_schema()``: all columns are text,
    ``None`` marks a missing value. The same arguments always give the same tables.
    """
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError("seed must be a non-negative integer")
    if not isinstance(orders, int | np.integer) or isinstance(orders, bool) or orders < 1:
        raise ValueError("orders must be a positive integer")
    return OlistDataset(int(seed), int(orders), TableBuilder(int(seed), int(orders)).build())


def write_csv(dataset: OlistDataset, folder: Path) -> dict[str, Path]:
    """Write one UTF-8 CSV per table, ``<source>.csv``, and return their paths by source.

    The header line is exactly the contract's column names; values are RFC 4180 quoted
    (text is always quoted, embedded quotes doubled) and a missing value is an empty field.
    The files are byte-identical for the same data set.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    paths: dict[str, Path] = {}
    for name, table in dataset.tables.items():
        path = folder / f"{name}.csv"
        with path.open("wb") as handle:
            handle.write((",".join(table.column_names) + "\n").encode("utf-8"))
            pacsv.write_csv(table, handle, write_options=options)
        paths[name] = path
    return paths


def read_csv(path: Path, source: str) -> pa.Table:
    """Read a CSV written by :func:`write_csv` back into the contract's all-text schema.

    Parsed as the gateway parses an upload (:func:`mlsec_platform.sources.validation.read_csv`:
    an unquoted empty field is missing, a quoted one is empty text), then put in the contract's
    column order.
    """
    contract = FILE_SOURCES[source]
    schema = contract.raw_schema()
    return validation.read_csv(Path(path).read_bytes(), contract).select(schema.names).cast(schema)
