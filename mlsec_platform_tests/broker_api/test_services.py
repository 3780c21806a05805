"""The broker's services against the session's stack: the online store's reads."""

from __future__ import annotations


def test_online_reads_carry_their_row_scope_and_leave_none_behind(broker) -> None:
    online = broker.services.online
    sql = (
        "SELECT current_setting('mlsec.row_scope', true), current_setting("
        "'transaction_read_only'), count(*) FROM features.customer_rfm_online"
    )
    scope, read_only, sp_rows = online.fetch(sql, (), "SP")[0]
    everyone = online.fetch(sql, (), "*")[0][2]
    # The scope goes signed for this connection's backend (storage/row_scope.py).
    assert (scope.split(";")[0], read_only) == ("SP", "on") and 0 < sp_rows < everyone
    # The scope lived as long as its statement: the connection's next one has none, and the
    # warehouse's row-level security shows it nothing (fail closed).
    with online._connection().cursor() as cur:
        cur.execute(sql)
        left, _, rows = cur.fetchone()
    assert not left and rows == 0
