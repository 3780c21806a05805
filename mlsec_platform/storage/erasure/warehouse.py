"""The warehouse without one data subject: the Gold tables loaded from Delta and the online
feature stores, in one transaction, then vacuumed so the deleted rows leave the table files.

Which tables: every curated dataset that can hold a person (``ErasureScope.curated``), where
the warehouse has it (``<zone>.<name>``; a feature group's online table). Rows go by the same
key rule as in Delta; free text quoting the subject is redacted. Each table's load record
(``<schema>.loads``) then names the Delta version the table now equals: the one the erasure
cut in Delta.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

from mlsec_platform.privacy.erasure.scope import REDACTED, ErasureScope, SubjectRecords
from mlsec_platform.storage.warehouse import LOADS_TABLE


@dataclass(frozen=True)
class WarehouseErasure:
    place: str
    rows_removed: int
    texts_redacted: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.rows_removed or self.texts_redacted)

    def receipt_entry(self) -> dict:
        return {
            "place": self.place,
            "kind": "postgres",
            "rows_removed": self.rows_removed,
            "texts_redacted": self.texts_redacted,
        }


def warehouse_tables(scope: ErasureScope) -> dict[tuple[str, str], str]:
    """(schema, table) -> the curated dataset it is loaded from."""
    tables = {}
    for dataset_id in scope.curated:
        spec = scope.dataset(dataset_id)
        tables[(spec.zone.value, spec.name)] = dataset_id
        if spec.feature_group is not None:
            group = spec.feature_group
            tables[(group.online_schema, group.online_name)] = dataset_id
    return tables


def _existing(cur, schema: str, table: str) -> list[str] | None:
    cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s",
        (schema, table),
    )
    return [r[0] for r in cur.fetchall()] or None


def erase_from_warehouse(
    conn: PgConnection,
    scope: ErasureScope,
    records: SubjectRecords,
    versions: Mapping[str, int],
    erasure_id: str,
) -> list[WarehouseErasure]:
    """Delete and redact in the connection's transaction; record ``versions`` (dataset -> the
    Delta version the table now equals) in the load records. Returns what each table lost."""
    done = []
    needles = records.text_needles()
    with conn.cursor() as cur:
        for (schema, name), dataset_id in sorted(warehouse_tables(scope).items()):
            columns = _existing(cur, schema, name)
            if columns is None:
                continue
            rule = scope.rule(columns)
            target = sql.Identifier(schema, name)
            removed = _delete(cur, target, rule.match, records.keys)
            redacted = sum(_redact(cur, target, c, needles) for c in rule.free_text)
            if dataset_id in versions and (removed or redacted):
                _record_version(cur, schema, name, versions[dataset_id], erasure_id)
            done.append(WarehouseErasure(f"warehouse/{schema}.{name}", removed, redacted))
    return done


def vacuum_changed(conn: PgConnection, erased: list[WarehouseErasure]) -> None:
    """VACUUM each table that lost rows: they leave its pages now, not at some later autovacuum
    (``conn`` in autocommit: VACUUM runs outside a transaction)."""
    with conn.cursor() as cur:
        for entry in erased:
            if entry.changed:
                schema, name = entry.place.removeprefix("warehouse/").split(".", 1)
                cur.execute(sql.SQL("VACUUM {}").format(sql.Identifier(schema, name)))


def _delete(cur, target: sql.Identifier, match: tuple[str, ...], keys) -> int:
    parts = [(c, sorted(keys[c])) for c in match if keys.get(c)]
    if not parts:
        return 0
    condition = sql.SQL(" OR ").join(
        sql.SQL("{} = ANY(%s)").format(sql.Identifier(c)) for c, _ in parts
    )
    cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(target, condition), [v for _, v in parts])
    return cur.rowcount


def _redact(cur, target: sql.Identifier, column: str, needles: list[str]) -> int:
    if not needles:
        return 0
    expression: sql.Composable = sql.Identifier(column)
    for _ in needles:
        expression = sql.SQL("replace({}, %s, %s)").format(expression)
    quoting = sql.SQL(" OR ").join(
        sql.SQL("strpos({}, %s) > 0").format(sql.Identifier(column)) for _ in needles
    )
    params = [p for n in needles for p in (n, REDACTED)] + list(needles)
    cur.execute(
        sql.SQL("UPDATE {} SET {} = {} WHERE {}").format(
            target, sql.Identifier(column), expression, quoting
        ),
        params,
    )
    return cur.rowcount


def _record_version(cur, schema: str, name: str, version: int, erasure_id: str) -> None:
    cur.execute(
        sql.SQL(
            "UPDATE {} SET delta_version = %s, run_id = %s, rows = (SELECT count(*) FROM {}), "
            "loaded_at = now() WHERE table_name = %s"
        ).format(sql.Identifier(schema, LOADS_TABLE), sql.Identifier(schema, name)),
        (version, f"erasure:{erasure_id}", name),
    )
