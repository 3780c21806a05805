"""The real gateway process (`mlsec gateway`) under load: its memory stays bounded whatever
the size of the uploads and however many bodies stall, an over-cap upload is refused before
its body is read, a stalled body is refused after the idle timeout, and a refused upload
leaves nothing in landing (no object, no open multipart upload).

Memory is the resident set of the gateway's own process (psutil), sampled every 20 ms while
the load runs, minus its resident set when idle after a first upload (imports, pools warm).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import psutil
import pytest

from mlsec_platform.settings import Zone
from mlsec_platform_tests.gateway.process import running_gateway
from mlsec_platform_tests.helpers import s3_admin, upload_token

#: The gateway's size cap in these tests: the largest upload it takes.
CAP = 48 * 1024 * 1024
#: How long a body may pause before the gateway refuses it (408).
IDLE_TIMEOUT = 2.0
#: What the gateway may hold above idle under 4 concurrent maximum-size uploads and 100
#: stalled connections. It does not grow with the cap: a body is spooled to a temporary
#: file, checked in 1 MiB blocks and put in landing in 5 MiB parts (two sent at a time), so
#: each upload in flight holds a few tens of MiB. Measured here (2026-12): 174 MiB at a
#: 48 MiB cap, 181 MiB at a 96 MiB cap; the gateway before streaming: 730 MiB at a 48 MiB cap.
MEMORY_BOUND = 256 * 1024 * 1024

SELLERS_HEADER = b"seller_id,seller_zip_code_prefix,seller_city,seller_state\n"


def _sellers(size: int, *, formula: bool = False, ragged_tail: bool = False) -> bytes:
    """A valid sellers CSV of about ``size`` bytes (at most ``size``)."""
    row = b"s%07d,01001,Sao Paulo,SP\n"
    count = (size - len(SELLERS_HEADER) - 64) // len(row % 0)
    body = SELLERS_HEADER + b"".join(row % i for i in range(count))
    if formula:
        body += b's-formula,01001,=HYPERLINK("x"),SP\n'
    if ragged_tail:
        body += b"s-ragged,01001\n"
    return body


@pytest.fixture(scope="module")
def gateway_process(supervisor, settings, client_tls):
    """`mlsec gateway` in its own process with a 48 MiB cap and a 2 s idle timeout."""
    env = {
        "MLSEC_GATEWAY_MAX_FILE_BYTES": str(CAP),
        "MLSEC_GATEWAY_BODY_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
    }
    with running_gateway(env, client_tls) as running:
        yield running


@pytest.fixture(scope="module")
def token(settings, endpoints) -> str:
    return upload_token(settings, endpoints, "upload:*", "publish:*", subject="streamer")


@contextmanager
def _peak_rss(pid: int):
    """Samples the resident set of ``pid`` while the block runs; yields a list that holds the
    peak (bytes) once the block is done."""
    process, peak, done = psutil.Process(pid), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


@pytest.fixture(scope="module")
def tls(client_tls) -> ssl.SSLContext:
    return client_tls.ssl_context()


def _raw_request(tls: ssl.SSLContext, port: int, head: str, body: bytes = b"") -> socket.socket:
    """A request written by hand over TLS (the session's client certificate)."""
    sock = tls.wrap_socket(
        socket.create_connection(("127.0.0.1", port)), server_hostname="localhost"
    )
    sock.sendall(head.encode() + body)
    return sock


def _status_of(sock: socket.socket, timeout: float) -> int | None:
    """The status of the answer on ``sock`` within ``timeout`` s, or None if none came."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return None
    finally:
        sock.close()
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def _put_head(source: str, length: int, token: str | None) -> str:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"PUT /v1/files/{source} HTTP/1.1\r\nHost: gateway\r\n{auth}"
        f"Content-Type: text/csv\r\nContent-Length: {length}\r\n\r\n"
    )


def _landing(supervisor, settings, prefix: str = "incoming/olist_sellers/") -> set[str]:
    s3 = s3_admin(supervisor, settings)
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.bucket(Zone.LANDING), Prefix=prefix
    )
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _open_multipart_uploads(supervisor, settings) -> list[str]:
    listing = s3_admin(supervisor, settings).list_multipart_uploads(
        Bucket=settings.bucket(Zone.LANDING)
    )
    return [u["Key"] for u in listing.get("Uploads", [])]


def _clear_landing(supervisor, settings, keys: set[str]) -> None:
    """The connectors of other tests must not meet these large batches."""
    s3 = s3_admin(supervisor, settings)
    for key in keys:
        s3.delete_object(Bucket=settings.bucket(Zone.LANDING), Key=key)


def test_an_over_cap_upload_is_refused_before_its_body_is_read(gateway_process, token, tls):
    _, _, port = gateway_process
    # Headers only: a gateway that waits for the body before refusing never answers.
    sock = _raw_request(tls, port, _put_head("olist_sellers", CAP + 1, token))
    assert _status_of(sock, timeout=IDLE_TIMEOUT / 2) == 413


def test_a_stalled_body_is_refused_after_the_idle_timeout(gateway_process, token, tls):
    _, url, port = gateway_process
    stalled = [
        _raw_request(tls, port, _put_head("olist_sellers", 10_000, token), SELLERS_HEADER[:10])
        for _ in range(4)  # as many as the gateway's upload slots
    ]
    time.sleep(0.2)
    # The slots come free once the stalled bodies time out: a good upload then goes through.
    good = httpx.put(
        f"{url}/v1/files/olist_sellers",
        content=_sellers(4096),
        headers={"Authorization": f"Bearer {token}"},
        timeout=IDLE_TIMEOUT * 5,
        verify=tls,
    )
    assert good.status_code == 201, good.text
    assert [_status_of(sock, timeout=IDLE_TIMEOUT * 3) for sock in stalled] == [408] * 4


def test_memory_is_bounded_under_maximum_uploads_and_stalled_connections(
    gateway_process, token, supervisor, settings, tls
):
    proc, url, port = gateway_process
    headers = {"Authorization": f"Bearer {token}"}
    warm = httpx.put(
        f"{url}/v1/files/olist_sellers",
        content=_sellers(1 << 20),
        headers=headers,
        timeout=60,
        verify=tls,
    )
    assert warm.status_code == 201, warm.text
    before = _landing(supervisor, settings)
    time.sleep(1.0)
    idle = psutil.Process(proc.pid).memory_info().rss

    bodies = [
        _sellers(CAP),
        _sellers(CAP, formula=True),  # rewritten (neutralized) on its way to landing
        _sellers(CAP),
        _sellers(CAP, ragged_tail=True),  # refused at its last row: nothing may land
    ]
    assert all(len(body) <= CAP for body in bodies)

    def put(body: bytes) -> httpx.Response:
        return httpx.put(
            f"{url}/v1/files/olist_sellers", content=body, headers=headers, timeout=300, verify=tls
        )

    with _peak_rss(proc.pid) as uploads_peak, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(put, bodies))
    assert [a.status_code for a in answers] == [201, 201, 201, 422], [a.text for a in answers]
    assert answers[1].json()["neutralized_cells"] == 1
    assert "malformed CSV" in answers[3].json()["reason"]
    landed = _landing(supervisor, settings) - before
    try:
        assert landed == {a.json()["landing_key"] for a in answers[:3]}
        assert _open_multipart_uploads(supervisor, settings) == []
    finally:
        _clear_landing(supervisor, settings, landed)

    with _peak_rss(proc.pid) as stalled_peak:
        # Anonymous bodies that declare 1 MiB and stall after a few bytes.
        stalled = [
            _raw_request(tls, port, _put_head("olist_sellers", 1 << 20, None), b"x" * 100)
            for _ in range(100)
        ]
        deadline = time.monotonic() + IDLE_TIMEOUT * 5
        statuses = [
            _status_of(sock, timeout=max(0.01, deadline - time.monotonic())) for sock in stalled
        ]

    grown = {"uploads": uploads_peak[0] - idle, "stalled": stalled_peak[0] - idle}
    print(
        f"gateway RSS idle {idle / 2**20:.0f} MiB, above idle: "
        + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in grown.items())
    )
    assert max(grown.values()) < MEMORY_BOUND, grown
    assert set(statuses) <= {401, 408}, statuses  # each answered, none held open
