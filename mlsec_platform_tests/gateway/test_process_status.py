"""`mlsec status` lists a real `mlsec gateway` process beside the servers (up, URL, pid) while
it serves, and down once it stopped; the process writes one JSON line per request on standard
error, without its token or the body it was sent."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mlsec_platform.cli import main
from mlsec_platform_tests.gateway.process import running_gateway
from mlsec_platform_tests.helpers import https_client, upload_token


def test_status_lists_a_running_gateway(settings, endpoints, client_tls, tmp_path) -> None:
    stderr = tmp_path / "gateway.err"
    token = upload_token(settings, endpoints, "upload:olist_sellers")
    with running_gateway({}, client_tls, stderr=stderr) as (proc, url, port):
        result = CliRunner().invoke(main, ["status"])
        with https_client(url, client_tls) as client:
            answer = client.put(
                "/v1/files/olist_sellers",
                content=b"not,the,header\n",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
            )
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.output.splitlines() if line}
    assert lines["gateway"][1:] == ["up", url, f"pid={proc.pid}"]
    # The others are listed too, up or down as the session has them (a broker may run).
    assert all(lines[name][1] in ("up", "down") for name in ("ui", "broker", "metrics"))
    assert result.output.count("healthy") == 4
    after = CliRunner().invoke(main, ["status"])  # stopped: its record went with it
    assert [line for line in after.output.splitlines() if line.startswith("gateway")] == [
        "gateway    down"
    ]
    assert answer.status_code == 422
    logged = [json.loads(line) for line in stderr.read_text().splitlines() if line.startswith("{")]
    mine = [x for x in logged if x["request_id"] == answer.headers["x-request-id"]]
    assert len(mine) == 1 and mine[0]["status"] == 422 and mine[0]["subject"] == "uploader-1"
    assert token not in stderr.read_text() and "not,the,header" not in stderr.read_text()
