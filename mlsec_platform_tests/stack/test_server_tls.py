"""The embedded servers speak TLS only, and their clients trust nothing but the servers' CAs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import ssl
import struct
import threading
import time
from contextlib import closing

import botocore.exceptions
import nats
import psycopg2
import psycopg2.errors
import pyarrow as pa
import pytest
import requests
from cryptography import x509
from deltalake import write_deltalake

from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.resources.s3_lake import S3Credentials, lake_storage_options
from mlsec_platform.settings import PlatformSettings, Zone
from mlsec_platform.sources import event_stream
from mlsec_platform.stack.server_tls import (
    LISTENER_DAYS,
    ServerCertificate,
    bootstrap_ca_file,
    bootstrap_ca_key_file,
    ensure_bootstrap_ca,
    issue_listener_certificate,
    write_server_trust,
)
from mlsec_platform.stack.servers.base import ServerError
from mlsec_platform.stack.servers.postgres import PostgresServer
from mlsec_platform.stack.supervisor import Supervisor
from mlsec_platform_tests.helpers import s3_admin

# -- without servers -------------------------------------------------------------------------


def _settings(tmp_path, **overrides) -> PlatformSettings:
    return PlatformSettings(state_dir=tmp_path / "state", **overrides)


def test_the_bootstrap_ca_is_made_once_and_its_key_stays_private(tmp_path):
    settings = _settings(tmp_path)
    _, first = ensure_bootstrap_ca(settings)
    _, again = ensure_bootstrap_ca(settings)
    assert first.serial_number == again.serial_number
    assert bootstrap_ca_key_file(settings).stat().st_mode & 0o777 == 0o600
    assert first.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0


def test_a_certificate_is_due_when_missing_or_past_two_thirds_of_its_life(tmp_path):
    settings = _settings(tmp_path)
    target = ServerCertificate(tmp_path / "tls")
    assert target.due()
    issue_listener_certificate(settings, target)
    now = dt.datetime.now(dt.UTC)
    assert not target.due(now)
    assert not target.due(now + dt.timedelta(days=LISTENER_DAYS * 2 / 3 - 1))
    assert target.due(now + dt.timedelta(days=LISTENER_DAYS * 2 / 3 + 1))
    assert target.key.stat().st_mode & 0o777 == 0o600
    target.key.unlink()
    assert target.due(now)


def test_the_servers_bundle_is_not_the_client_certificate_bundle(tmp_path):
    """Clients of the servers trust the bootstrap CA; the broker and the gateway must never
    accept a client certificate from it, so it stays out of ``ca_bundle``."""
    settings = _settings(tmp_path)
    platform_ca = _settings(tmp_path / "other")
    ensure_bootstrap_ca(settings)
    _, stand_in = ensure_bootstrap_ca(platform_ca)  # any CA certificate will do here
    assert settings.ca_bundle is not None
    settings.ca_bundle.parent.mkdir(parents=True, exist_ok=True)
    settings.ca_bundle.write_text(bootstrap_ca_file(platform_ca).read_text())
    bundle = write_server_trust(settings).read_text()
    assert bootstrap_ca_file(settings).read_text().strip() in bundle
    assert bootstrap_ca_file(platform_ca).read_text().strip() in bundle
    assert bootstrap_ca_file(settings).read_text().strip() not in settings.ca_bundle.read_text()


def test_postgres_clients_verify_the_server_on_the_stack_profile(tmp_path):
    stack = _settings(tmp_path, profile="stack", server_ca_files={"postgres": tmp_path / "pg.pem"})
    assert stack.postgres_tls() == {
        "sslmode": "verify-full",
        "sslrootcert": str(tmp_path / "pg.pem"),
    }
    assert stack.server_ca("s3") == stack.server_ca_bundle != stack.server_ca("postgres")
    plaintext = _settings(tmp_path, profile="stack", postgres_sslmode="disable")
    assert plaintext.postgres_tls() == {"sslmode": "disable"}


def test_postgres_clients_always_verify_the_embedded_server(tmp_path):
    """The embedded server admits TLS clients only, so `local` verifies whatever it is told."""
    local = _settings(tmp_path, postgres_sslmode="disable")
    assert local.postgres_tls() == {
        "sslmode": "verify-full",
        "sslrootcert": str(local.server_ca_bundle),
    }


# -- against the embedded stack -------------------------------------------------------------


@pytest.mark.parametrize("server, port", [("openbao", "api"), ("seaweedfs", "s3")])
def test_a_plaintext_http_request_is_refused(supervisor, server, port):
    answer = requests.get(f"http://127.0.0.1:{supervisor.servers[server].ports[port]}/", timeout=5)
    assert answer.status_code == 400
    assert "HTTP request to an HTTPS server" in answer.text


def test_nats_refuses_a_plaintext_client(supervisor):
    with socket.create_connection(("127.0.0.1", supervisor.nats.ports["client"]), timeout=5) as s:
        info = json.loads(s.recv(65536).decode().removeprefix("INFO ").strip())
        assert info["tls_required"] is True
        s.sendall(b'CONNECT {"verbose":false,"user":"gateway","pass":"x"}\r\nPING\r\n')
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert b"PONG" not in reply  # the server closed the connection without answering


#: A v3 StartupMessage for user "postgres" (what a client sends first without TLS).
_STARTUP = b"\x00\x03\x00\x00user\x00postgres\x00database\x00postgres\x00\x00"
#: The SSLRequest code (1234 5679) a client sends first to ask for TLS.
_SSL_REQUEST = struct.pack("!II", 8, 80877103)


def test_postgres_refuses_a_plaintext_client(supervisor):
    plain = {**supervisor.postgres.superuser_dsn(), "sslmode": "disable"}
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(connect_timeout=5, **plain)
    # A raw StartupMessage: an ErrorResponse, never an authentication request.
    port = supervisor.postgres.ports["tcp"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack("!I", 4 + len(_STARTUP)) + _STARTUP)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply[:1] == b"E", reply[:1]
    assert b"no encryption" in reply


def test_postgres_clients_verify_the_server(supervisor, settings):
    dsn = supervisor.postgres.superuser_dsn()
    assert dsn["sslmode"] == "verify-full"
    assert dsn["sslrootcert"] == str(settings.server_ca("postgres"))
    with closing(psycopg2.connect(**dsn)) as conn, conn.cursor() as cur:
        cur.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ssl_on, version = cur.fetchone()
    assert ssl_on is True
    assert version in {"TLSv1.2", "TLSv1.3"}


def test_a_postgres_query_can_be_cancelled(supervisor):
    """libpq sends a cancel on a new connection; `hostssl` does not stand in its way."""
    with closing(psycopg2.connect(**supervisor.postgres.superuser_dsn())) as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg2.errors.QueryCanceled), conn.cursor() as cur:
            cur.execute("SELECT pg_sleep(30)")
        timer.join()
    assert time.monotonic() - started < 10


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> str:
    """A CA the servers' certificates do not come from."""
    settings = _settings(tmp_path_factory.mktemp("other-ca"))
    ensure_bootstrap_ca(settings)
    return str(bootstrap_ca_file(settings))


def test_openbao_clients_with_another_ca_fail_verification(supervisor, settings, other_ca):
    trusting = settings.model_copy(update={"server_ca_files": {"vault": other_ca}})
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        vault_client(supervisor.openbao.addr, settings=trusting).sys.read_health_status()
    assert vault_client(supervisor.openbao.addr).sys.is_initialized()


def test_s3_clients_with_another_ca_fail_verification(supervisor, settings, other_ca):
    with pytest.raises(botocore.exceptions.SSLError):
        s3_admin(supervisor, settings, ca_file=other_ca).list_buckets()
    admin = supervisor.seaweedfs.admin_credentials()
    options = lake_storage_options(
        supervisor.seaweedfs.endpoint,
        settings.s3_region,
        S3Credentials(admin["access_key"], admin["secret_key"]),
    )
    assert options["certificate_path"] == str(settings.server_ca("s3"))
    table = pa.table({"v": [1]})
    uri = f"s3://{settings.bucket(Zone.QUARANTINE)}/tls-probe"
    with pytest.raises(OSError, match="UnknownIssuer"):
        write_deltalake(uri, table, storage_options={**options, "certificate_path": other_ca})
    write_deltalake(uri, table, storage_options=options, mode="overwrite")


def test_postgres_clients_with_another_ca_fail_verification(supervisor, other_ca):
    dsn = {**supervisor.postgres.superuser_dsn(), "sslrootcert": other_ca}
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        psycopg2.connect(connect_timeout=5, **dsn)


def test_nats_clients_with_another_ca_fail_verification(supervisor, other_ca):
    credentials = json.loads((supervisor.settings.secrets_dir / "nats-platform.json").read_text())

    async def connect(context: ssl.SSLContext) -> None:
        nc = await asyncio.wait_for(
            nats.connect(
                supervisor.nats.url,
                user=credentials["user"],
                password=credentials["password"],
                tls=context,
                allow_reconnect=False,
                max_reconnect_attempts=0,
            ),
            timeout=10,
        )
        await nc.close()

    with pytest.raises(ssl.SSLCertVerificationError):
        asyncio.run(connect(ssl.create_default_context(cafile=other_ca)))
    asyncio.run(connect(event_stream.tls_context()))


def _served_serial(port: int, settings: PlatformSettings, postgres: bool = False) -> int:
    """The serial of the certificate the TLS port at ``port`` presents (verified); a
    Postgres port is asked for TLS first, as libpq does."""
    context = ssl.create_default_context(cafile=str(settings.server_ca_bundle))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        if postgres:
            raw.sendall(_SSL_REQUEST)
            assert raw.recv(1) == b"S"
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def _file_serial(target: ServerCertificate) -> int:
    return x509.load_pem_x509_certificate(target.certificate.read_bytes()).serial_number


def test_a_due_certificate_is_renewed_by_up_and_served(supervisor, settings):
    """Each server's certificate, once due (here: gone), is issued anew by `up`, and the
    running server serves the new one (OpenBao, PostgreSQL and NATS reload it, SeaweedFS
    restarts)."""
    ports = {
        "openbao": supervisor.openbao.ports["api"],
        "seaweedfs": supervisor.seaweedfs.ports["s3"],
        "postgres": supervisor.postgres.ports["tcp"],
        "nats": supervisor.nats.ports["monitor"],  # same TLS settings as the client port
    }

    def served(name: str) -> int:
        return _served_serial(ports[name], settings, postgres=name == "postgres")

    before = {name: served(name) for name in ports}
    for name in ports:
        supervisor.servers[name].tls.certificate.unlink()
    Supervisor(settings).up()
    for name in ports:
        target = supervisor.servers[name].tls
        assert target.key.stat().st_mode & 0o777 == 0o600
        issued = _file_serial(target)
        assert issued != before[name], name
        # A reload (SIGHUP) is taken up a moment after `up` sent it.
        deadline = time.monotonic() + 10
        while served(name) != issued and time.monotonic() < deadline:
            time.sleep(0.2)
        assert served(name) == issued, name
    assert all(s.healthy for s in supervisor.status())


def test_a_cluster_of_another_postgres_major_is_refused_with_what_to_do(tmp_path):
    """The server's wheel changed major version (18 -> 17, for TLS): an older state folder
    gets a clear refusal before anything is started, never a half-started server."""
    settings = _settings(tmp_path)
    server = PostgresServer(settings, {"tcp": 1})
    server.pgdata.mkdir(parents=True)
    (server.pgdata / "PG_VERSION").write_text("18\n")
    with pytest.raises(ServerError, match="PostgreSQL 18 cluster; the bundled server is"):
        server.prepare()
    assert not (server.pgdata / "pg_hba.conf").exists()
