"""Looking for a data subject everywhere, with the stack's admin credentials, the way an
auditor checking an erasure would: every object of every zone bucket (Parquet decoded, other
objects as bytes in UTF-8 and as JSON escapes them), every Delta version any log still
describes, and every text column of every warehouse table."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable

import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from mlsec_platform.resources.s3_lake import S3Credentials, lake_storage_options
from mlsec_platform.settings import Endpoints, PlatformSettings, Zone
from mlsec_platform.stack.bootstrap import BootstrapCredentials
from mlsec_platform.stack.bootstrap.s3 import admin_clients


def _forms(needles: Iterable[str]) -> list[bytes]:
    return sorted({f for n in needles for f in (n.encode(), json.dumps(n)[1:-1].encode())})


def _texts(table: pa.Table) -> Iterable[str]:
    """Every string in ``table``, nested ones included (a checkpoint's stats are structs)."""
    for row in table.to_pylist():
        yield from _strings(row)


def _strings(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def hits_in(texts: Iterable[str], needles: list[str]) -> set[str]:
    return {n for text in texts for n in needles if n in text}


class Auditor:
    """The stack seen with its bootstrap (admin) credentials."""

    def __init__(self, settings: PlatformSettings, endpoints: Endpoints) -> None:
        creds = BootstrapCredentials.load(settings)
        self.settings, self.endpoints = settings, endpoints
        admin = creds.s3_admin
        # The product's own delta-rs options: the S3 server's TLS certificate is verified.
        self.options = lake_storage_options(
            endpoints.s3_endpoint,
            settings.s3_region,
            S3Credentials(admin["access_key"], admin["secret_key"]),
        )
        self.s3, _ = admin_clients(
            endpoints.s3_endpoint, admin, settings.s3_region, settings.server_ca("s3")
        )
        self.dsn = {**creds.postgres_dsn(endpoints), "dbname": settings.warehouse_db}

    def objects(self, zone: Zone) -> Iterable[str]:
        bucket = self.settings.bucket(zone)
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def in_objects(self, needles: list[str]) -> dict[str, set[str]]:
        """Object (``<zone>/<key>``) -> the needles it holds."""
        forms = _forms(needles)
        found = {}
        for zone in Zone:
            for key in self.objects(zone):
                body = self.s3.get_object(Bucket=self.settings.bucket(zone), Key=key)["Body"]
                data = body.read()
                if data[:4] == b"PAR1":
                    held = hits_in(_texts(pq.read_table(io.BytesIO(data))), needles)
                else:
                    held = {f.decode() for f in forms if f in data}
                if held:
                    found[f"{zone.value}/{key}"] = held
        return found

    def tables(self) -> Iterable[tuple[Zone, str]]:
        """Every Delta table (a folder with a ``_delta_log``) in every zone."""
        for zone in Zone:
            names = {
                key.split("/_delta_log/")[0] for key in self.objects(zone) if "/_delta_log/" in key
            }
            yield from ((zone, name) for name in sorted(names))

    def in_versions(self, needles: list[str]) -> tuple[dict[str, set[str]], int]:
        """(``<zone>/<table>@v<n>`` -> needles held, number of versions read) over every
        version a log still describes."""
        found, read = {}, 0
        for zone, name in self.tables():
            uri = f"s3://{self.settings.bucket(zone)}/{name}"
            latest = DeltaTable(uri, storage_options=self.options).version()
            for version in range(latest + 1):
                try:
                    table = DeltaTable(uri, storage_options=self.options, version=version)
                    data = table.to_pyarrow_table()
                except (TableNotFoundError, DeltaError, OSError):
                    continue  # cut off by an erasure (or never readable): nothing to read
                read += 1
                strings = [
                    c
                    for c in data.column_names
                    if pa.types.is_string(data.schema.field(c).type)
                    or pa.types.is_string_view(data.schema.field(c).type)
                ]
                held = hits_in(_texts(data.select(strings)), needles)
                if held:
                    found[f"{zone.value}/{name}@v{version}"] = held
        return found, read

    def in_warehouse(self, needles: list[str]) -> dict[str, set[str]]:
        """``<schema>.<table>`` -> needles held, over every text column of every table."""
        found = {}
        with psycopg2.connect(**self.dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT table_schema, table_name, array_agg(column_name::text) "
                "FROM information_schema.columns WHERE data_type IN ('text', 'jsonb', "
                "'character varying') AND table_schema NOT IN ('pg_catalog', "
                "'information_schema') GROUP BY 1, 2"
            )
            for schema, table, columns in cur.fetchall():
                select = ", ".join(f'"{c}"::text' for c in columns)
                cur.execute(f'SELECT {select} FROM "{schema}"."{table}"')  # noqa: S608 - catalog names
                held = hits_in((v for row in cur.fetchall() for v in row if v), needles)
                if held:
                    found[f"{schema}.{table}"] = held
        conn.close()
        return found


def shown(needles: dict[str, set[str]], names: dict[str, str]) -> dict[str, list[str]]:
    """Hits with each needle replaced by what it is (``email``), for assertion messages that
    print no personal data."""
    return {place: sorted(names.get(n, "?") for n in held) for place, held in needles.items()}
