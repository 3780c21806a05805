"""`mlsec quarantine resubmit` sends a kept upload through the running gateway again, over
mTLS with a client certificate of its own and a token bound to it. On the ops package's demo
stack (before the tutorial stops it)."""

from __future__ import annotations

import uuid

from mlsec_platform.gateway.server import BackgroundGateway
from mlsec_platform.ops.quarantine import resubmit_quarantined
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.helpers import https_client, session_client, upload_token


def test_a_quarantined_upload_is_resubmitted_over_mtls(endpoints, settings) -> None:
    sellers = (
        "seller_id,seller_zip_code_prefix,seller_city,seller_state\n"
        f"{uuid.uuid4().hex},01310,sao paulo,SP\n"
    )
    # Refused for its token (no upload scope): kept whole, being under the kept head's size.
    token = upload_token(settings, endpoints, "publish:*", subject="no-uploads")
    said: list[str] = []
    with (
        BackgroundGateway(settings, PortAllocator().take()) as gateway,
        https_client(gateway.url, session_client(settings).tls) as http,
    ):
        refused = http.put(
            "/v1/files/olist_sellers",
            content=sellers,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
        )
        assert refused.status_code == 403, refused.text
        qid = refused.json()["quarantine_id"]
        assert resubmit_quarantined(settings, qid, gateway.url, said.append)
    status, _, answer = said[0].partition(" ")
    assert status == "201" and '"rows":1' in answer.replace(" ", "")
