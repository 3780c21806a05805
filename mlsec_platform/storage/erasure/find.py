"""Finding a data subject in Raw and Cold: their person key, their identifiers, their links.

The value named (``customer_cpf=...``) is looked up in the subject's own Raw table (and its
Cold copy): the rows it matches give the person's key. Every row of that person gives their
identifier values and linked keys (``customer_id``); every table holding a linked key then
gives the next ones (an order's ``order_id``), until nothing new turns up. Rows are matched by
keys only, never by a value two people may share. The identifiers quoted in the subject's own
free text are collected too: the token vault holds tokens of them.
"""

from __future__ import annotations

import pyarrow.compute as pc
from deltalake import DeltaTable

from mlsec_platform.errors import InvalidInput
from mlsec_platform.privacy.erasure.scope import ErasureScope, SubjectRecords
from mlsec_platform.privacy.erasure.subject import Subject
from mlsec_platform.privacy.scrubbing import IDENTIFIERS
from mlsec_platform.resources.s3_lake import S3LakeResource
from mlsec_platform.settings import Zone
from mlsec_platform.storage.erasure.delta import plain_strings, row_mask
from mlsec_platform.storage.raw_writer import open_table

#: Where the subject's records are looked for: Raw and its archive.
ZONES = (Zone.RAW, Zone.COLD)


class AmbiguousSubject(InvalidInput):
    """The value names more than one person (a shared name or phone): erasing all of them on
    one request is refused; name the person by a value only they have."""


def _tables(lake: S3LakeResource, scope: ErasureScope) -> dict[tuple[Zone, str], DeltaTable]:
    options = lake.storage_options()
    found = {}
    for zone in ZONES:
        for name in scope.raw_tables:
            table = open_table(lake.table_uri(zone, name), options)
            if table is not None:
                found[(zone, name)] = table
    return found


def find_subject(lake: S3LakeResource, scope: ErasureScope, subject: Subject) -> SubjectRecords:
    """Everything Raw and Cold say about ``subject`` (read with ``lake``'s keys)."""
    tables = _tables(lake, scope)
    kind, key = subject.kind.name, scope.person_key
    persons: set[str] = set()
    for zone in ZONES:
        table = tables.get((zone, scope.person_source))
        if table is not None:
            read = plain_strings(table.to_pyarrow_dataset().to_table(columns=sorted({kind, key})))
            hits = read.filter(pc.fill_null(pc.equal(read.column(kind), subject.value), False))
            persons.update(v for v in hits.column(key).to_pylist() if v)
    if len(persons) > 1:
        only_theirs = sorted({key, *scope.subject.dataset.key})
        raise AmbiguousSubject(
            f"that {kind} belongs to {len(persons)} people; name one of them by a value only "
            f"they have ({' or '.join(only_theirs)})"
        )
    records = SubjectRecords()
    records.add_keys(key, persons)
    _follow_links(tables, scope, records)
    _quoted_identifiers(tables, scope, records)
    return records


def _follow_links(
    tables: dict[tuple[Zone, str], DeltaTable], scope: ErasureScope, records: SubjectRecords
) -> None:
    """Add every linked key and identifier value reachable from the person's key."""
    links = {scope.person_key, *scope.linked}
    changed = True
    while changed:
        changed = False
        for (_, name), table in tables.items():
            rule = scope.rule(scope.raw_tables[name])
            if not any(records.keys.get(c) for c in rule.match):
                continue
            wanted = set(rule.match)
            if name == scope.person_source:
                wanted |= set(scope.identifiers)
            # Read and matched in memory: pushed-down filters fail on files holding string views.
            read = plain_strings(table.to_pyarrow_dataset().to_table(columns=sorted(wanted)))
            found = read.filter(row_mask(read, rule, records.keys))
            for column in rule.match:
                if column in links:
                    changed |= records.add_keys(column, found.column(column).to_pylist())
            if name == scope.person_source:
                for column in scope.identifiers:
                    values = {v for v in found.column(column).to_pylist() if v}
                    records.identifiers.setdefault(column, set()).update(values)


def _quoted_identifiers(
    tables: dict[tuple[Zone, str], DeltaTable], scope: ErasureScope, records: SubjectRecords
) -> None:
    """Identifiers the subject wrote into their own free text (Silver holds their tokens)."""
    for (_, name), table in tables.items():
        rule = scope.rule(scope.raw_tables[name])
        if not rule.free_text or not any(records.keys.get(c) for c in rule.match):
            continue
        read = plain_strings(
            table.to_pyarrow_dataset().to_table(columns=sorted({*rule.match, *rule.free_text}))
        )
        found = read.filter(row_mask(read, rule, records.keys))
        for column in rule.free_text:
            for text in found.column(column).to_pylist():
                records.quoted.update(IDENTIFIERS.findall(text or ""))
