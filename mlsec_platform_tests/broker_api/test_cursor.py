"""A cursor resumes its query at another page size (a client fetches only the rows it still
wants), and still only its query."""

from __future__ import annotations

import pytest

from broker_api.cursor import CursorSigner, InvalidCursor, Page
from broker_api.models import QueryRequest


def test_a_cursor_resumes_its_query_with_another_page_size() -> None:
    signer = CursorSigner(b"k" * 32)
    request = QueryRequest(dataset="gold/fact_order_item", columns=["order_id"], limit=100)
    cursor = signer.issue(request, "alice", Page(version=7, offset=100))
    last_page = request.model_copy(update={"limit": 5})
    assert signer.open(cursor, last_page, "alice") == Page(version=7, offset=100)
    for changed in ({"columns": ["price"]}, {"dataset": "gold/dim_customer"}):
        with pytest.raises(InvalidCursor, match="different query"):
            signer.open(cursor, request.model_copy(update=changed), "alice")
