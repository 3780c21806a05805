"""Pinned snapshots on DuckDB: the time cap interrupts a query, and the engine keeps serving."""

import pyarrow as pa
import pytest

from broker_api.compiler import CompiledQuery
from broker_api.snapshots import RELATION, QueryTimeout, SnapshotCache, SnapshotEngine


@pytest.fixture
def engine():
    engine = SnapshotEngine(SnapshotCache(lambda spec: "", dict))
    yield engine
    engine.close()


def test_a_query_past_its_time_cap_is_interrupted(engine) -> None:
    table = pa.table({"n": pa.array(range(20_000), pa.int64())})
    slow = CompiledQuery(
        f"SELECT count(*) AS c FROM {RELATION} a, {RELATION} b, {RELATION} c WHERE a.n + b.n "
        "+ c.n = ?",
        (-1,),
        ("c",),
    )
    with pytest.raises(QueryTimeout, match="0.2 s cap"):
        engine.run(slow, table, timeout_seconds=0.2)
    quick = CompiledQuery(f"SELECT max(n) AS m FROM {RELATION} WHERE n < ?", (10,), ("m",))
    assert engine.run(quick, table, timeout_seconds=5).column("m").to_pylist() == [9]
