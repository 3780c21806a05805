"""The TLS gate in front of a service: a client certificate of the platform CA or no service.

A bare ASGI app behind the real gate, its server certificate issued by the stack's OpenBao as
the `gateway` identity: clients with the session's certificate are served and their
certificate reaches the app in the scope; every other connection is refused during the
handshake, recorded, and never reaches the app.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from mlsec_platform.identities.tokens import certificate_thumbprint
from mlsec_platform.serving.certificates import issue_certificate
from mlsec_platform.serving.client import ClientTls
from mlsec_platform.serving.server import BackgroundServer
from mlsec_platform.serving.tls import ServerTls, TlsRefusals
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.helpers import (
    foreign_certificate,
    https_client,
    issue_test_client,
    vault_as,
)


class Served:
    """The gate's server: its URL, the app's requests and the recorded refusals."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[dict] = []
        self.refused: list[dict] = []
        self.tls: ServerTls | None = None

        async def app(scope, receive, send) -> None:  # answers the scope's tls extension
            if scope["type"] != "http":
                return
            self.requests.append(scope)
            body = json.dumps(scope["extensions"]["tls"]).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        self.app = app

    async def record(self, event: dict) -> str:
        self.refused.append(event)
        return "recorded"

    def wait_for_refusals(self, count: int) -> list[dict]:
        deadline = time.monotonic() + 5
        while sum(e["count"] for e in self.refused) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.refused


@contextlib.contextmanager
def gate(
    settings, endpoints, *, ttl_seconds: int = 600, burst: int = 50, window: float = 0.0
) -> Iterator[Served]:
    served = Served()
    vault = vault_as("gateway", settings, endpoints)
    served.tls = ServerTls(
        lambda: issue_certificate(
            vault.client(), "gateway-server", settings.tls_server_names, ttl_seconds=ttl_seconds
        ),
        settings.ca_bundle,
        TlsRefusals(served.record, burst=burst, rate=0.001, window=window),
    )
    with BackgroundServer(served.app, PortAllocator().take(), name="gate", tls=served.tls) as s:
        served.url = s.url
        yield served
    vault.revoke()


def _refused_by(url: str, tls: ClientTls | None) -> None:
    """The connection fails (during or right after the handshake) and nothing is answered."""
    with pytest.raises(httpx.TransportError):
        kwargs = {"verify": tls.ssl_context()} if tls else {}
        httpx.get(url, timeout=10, **kwargs)


def test_a_client_of_the_platform_ca_is_served_with_its_certificate(
    settings, endpoints, tmp_path
) -> None:
    client = issue_test_client(settings, tmp_path, subject="ana lima")
    with gate(settings, endpoints) as served, https_client(served.url, client.tls) as http:
        answers = [http.get("/").json() for _ in range(3)]
    assert answers[0]["client_cert_x5t_s256"] == certificate_thumbprint(client.pem)
    assert answers[0]["client_cert_subject"] == "CN=ana lima"
    assert answers[0]["tls_version"] in {"TLSv1.2", "TLSv1.3"}
    assert answers[1:] == answers[:1] * 2 and len(served.requests) == 3
    assert served.refused == []


def test_no_client_certificate_is_refused_recorded_and_never_served(
    settings, endpoints, client_tls
) -> None:
    with gate(settings, endpoints) as served:
        _refused_by(served.url, ClientTls(client_tls.ca_bundle))
        [event] = served.wait_for_refusals(1)
    assert served.requests == []
    assert event["status"] == 496 and event["reason"].startswith("no client certificate")
    assert event["client"] == "127.0.0.1" and event["stage"] == "tls"


def test_a_certificate_of_another_ca_is_refused(settings, endpoints, client_tls, tmp_path) -> None:
    foreign = foreign_certificate(tmp_path)  # the CA's name, not its key
    with gate(settings, endpoints) as served:
        _refused_by(served.url, ClientTls(client_tls.ca_bundle, foreign.certificate, foreign.key))
        [event] = served.wait_for_refusals(1)
    assert served.requests == []
    assert event["status"] == 495 and event["reason"].startswith("client certificate refused")


def test_an_expired_certificate_is_refused(settings, endpoints, tmp_path) -> None:
    client = issue_test_client(settings, tmp_path, subject="short", ttl_seconds=1)
    time.sleep(2.5)
    with gate(settings, endpoints) as served:
        _refused_by(served.url, client.tls)
        [event] = served.wait_for_refusals(1)
    assert served.requests == []
    assert event["status"] == 495 and "expired" in event["reason"]


def test_plain_http_is_refused_and_recorded(settings, endpoints) -> None:
    with gate(settings, endpoints) as served:
        _refused_by(served.url.replace("https:", "http:"), None)
        [event] = served.wait_for_refusals(1)
    assert served.requests == []
    assert event["status"] == 497 and event["reason"] == "plain HTTP sent to a TLS port: use https"


def test_a_flood_of_refusals_is_folded_and_cut_off(settings, endpoints, client_tls) -> None:
    """Identical refusals from one address within the window are one event with their count;
    past its burst an address is cut off before the handshake (and that is recorded too)."""
    bare = ClientTls(client_tls.ca_bundle)
    with gate(settings, endpoints, burst=3, window=1.0) as served:
        for _ in range(6):
            _refused_by(served.url, bare)
        events = served.wait_for_refusals(6)
        with https_client(served.url, client_tls) as http, pytest.raises(httpx.TransportError):
            http.get("/")  # the good client behind the same address waits too
    assert served.requests == []
    counts = {e["status"]: e["count"] for e in events}
    assert counts == {496: 3, 429: 3} and len(events) == 2
    assert served.tls.refusals.counts == {496: 3, 429: 4}


def _server_serial(url: str, tls: ClientTls) -> int:
    host, port = url.removeprefix("https://").split(":")
    context = tls.ssl_context()
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as conn,
    ):
        return x509.load_der_x509_certificate(conn.getpeercert(binary_form=True)).serial_number


def test_renewal_swaps_the_certificate_for_new_handshakes(settings, endpoints, client_tls):
    with gate(settings, endpoints, ttl_seconds=6) as served:
        first = _server_serial(served.url, client_tls)
        with https_client(served.url, client_tls) as kept:
            kept.get("/")
            deadline = time.monotonic() + 15
            while served.tls.renewals == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            renewed = _server_serial(served.url, client_tls)
            assert kept.get("/").status_code == 200  # an open connection keeps its session
    assert served.tls.renewals >= 1
    assert renewed != first and renewed == served.tls.certificate.serial_number
    assert served.refused == []


def test_the_service_certificate_names_its_identity_and_verifies(settings, endpoints, client_tls):
    with gate(settings, endpoints) as served:
        host, port = served.url.removeprefix("https://").split(":")
        context = ssl.create_default_context(cafile=str(client_tls.ca_bundle))
        context.load_cert_chain(str(client_tls.certificate), str(client_tls.key))
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as conn,
        ):
            cert = x509.load_der_x509_certificate(conn.getpeercert(binary_form=True))
    ou = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value
    assert ou == "gateway"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)


def test_without_its_certificate_a_service_does_not_start_at_all(tmp_path) -> None:
    """Fail closed: no certificate (OpenBao refuses, no CA yet) means no listener, never a
    plain-text one."""
    import hvac

    from mlsec_platform.serving.tls import TlsUnavailable

    def refused():
        raise hvac.exceptions.Forbidden("permission denied")

    async def record(event):
        return "recorded"

    tls = ServerTls(refused, tmp_path / "ca.pem", TlsRefusals(record, burst=1, rate=1, window=0))
    port = PortAllocator().take()
    with (
        pytest.raises(TlsUnavailable, match="set up by `mlsec bootstrap`"),
        BackgroundServer(Served().app, port, name="gate", tls=tls),
    ):
        pass
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


@pytest.mark.parametrize("subject", ["ana lima", "lima, ana", 'x+y="z"', "#7", " ana", "a\\b;<>"])
def test_the_subject_in_the_scope_is_written_as_rfc_4514_writes_it(subject) -> None:
    """The gate reads the subject OpenSSL parsed (no second parse per handshake), written as
    the cryptography package writes a Name."""
    from mlsec_platform.serving.certificates import _escaped

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    assert f"CN={_escaped(subject)}" == name.rfc4514_string()
