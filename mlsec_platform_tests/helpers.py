"""Clients acting as one identity, with credentials fetched the way workloads fetch them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import ClientError

from mlsec_platform.resources.leased_login import LeasedLogin
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.serving.client import ClientTls
from mlsec_platform.settings import Endpoints, PlatformSettings

BOTO = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1})


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` set in this process's environment for the block, then as they were."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class OwnStack:
    env: dict[str, str]
    settings: PlatformSettings
    supervisor: object


@contextmanager
def stack_of_its_own(tmp_path_factory, name: str) -> Iterator[OwnStack]:
    """A stack with its own state folder and servers, up and bootstrapped, and stopped after
    the block. The block runs with this process's settings as they were: wrap what talks to
    the stack in ``environment(stack.env)`` (a session fixture must not move other tests)."""
    from mlsec_platform.settings import get_settings
    from mlsec_platform.stack.bootstrap import bootstrap
    from mlsec_platform.stack.supervisor import Supervisor
    from mlsec_platform_tests.conftest import TEST_ENV

    env = {**TEST_ENV, "MLSEC_STATE_DIR": str(tmp_path_factory.mktemp(name))}
    with environment(env):
        settings = get_settings()
        supervisor = Supervisor(settings, progress=print)
    try:
        with environment(env):
            bootstrap(settings, supervisor.up(), progress=print)
        yield OwnStack(env, settings, supervisor)
    finally:
        with environment(env):
            supervisor.down()


def table_differences(a, b) -> list[str]:
    """Per differing column of two Arrow tables, its first differing row (a readable failure
    instead of False)."""
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return [f"schema/rows differ:\n{a.schema}\n{a.num_rows} vs\n{b.schema}\n{b.num_rows}"]
    out = []
    for name in a.column_names:
        x, y = a.column(name).to_pylist(), b.column(name).to_pylist()
        diff = [i for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q]
        if diff:
            out.append(
                f"{name}: {len(diff)} rows, e.g. row {diff[0]}: {x[diff[0]]!r} != {y[diff[0]]!r}"
            )
    return out


def vault_as(identity: str, settings: PlatformSettings, endpoints: Endpoints) -> VaultResource:
    return VaultResource(
        addr=endpoints.vault_addr, identity=identity, credentials_dir=str(settings.identities_dir)
    )


def s3_keys_of(identity: str, settings: PlatformSettings, endpoints: Endpoints) -> dict:
    """`identity`'s S3 keys as OpenBao hands them out: to a workload through its own AppRole,
    to an identity without one (the eraser) only through its operator command's token."""
    from mlsec_platform.identities.catalog import S3_IDENTITIES
    from mlsec_platform.identities.operators import OperatorLogin
    from mlsec_platform.resources.borrowed import BorrowedVault

    command = next(i.keys_read_by for i in S3_IDENTITIES if i.name == identity)
    if command is None:
        vault = vault_as(identity, settings, endpoints)
        keys = vault.read_kv(f"s3/{identity}")
        vault.revoke()
        return keys
    with OperatorLogin.login(settings, endpoints) as login:
        return BorrowedVault.on(login.command_client(command), identity).read_kv(f"s3/{identity}")


def s3_as(identity: str, settings: PlatformSettings, endpoints: Endpoints):
    """An S3 client with the keys `identity` reads from OpenBao (``s3_keys_of``)."""
    keys = s3_keys_of(identity, settings, endpoints)
    return boto3.client(
        "s3",
        endpoint_url=endpoints.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=keys["access_key_id"],
        aws_secret_access_key=keys["secret_access_key"],
        config=BOTO,
        verify=str(settings.server_ca("s3")),
    )


def s3_admin(supervisor, settings: PlatformSettings, *, ca_file: str | None = None):
    """The S3 admin's boto3 client, trusting ``ca_file`` (default: the servers' bundle)."""
    admin = supervisor.seaweedfs.admin_credentials()
    return boto3.client(
        "s3",
        endpoint_url=supervisor.seaweedfs.endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=admin["access_key"],
        aws_secret_access_key=admin["secret_key"],
        config=BOTO,
        verify=ca_file or str(settings.server_ca("s3")),
    )


def pg_login(identity: str, role: str, settings: PlatformSettings, endpoints: Endpoints):
    """(connection, login) for a dynamic Postgres user of `role`, issued to `identity`."""
    login = LeasedLogin(vault_as(identity, settings, endpoints), role, margin_seconds=0)
    conn = login.connect(endpoints.postgres_host, endpoints.postgres_port, settings.warehouse_db)
    return conn, login


def row_scope_signer(settings: PlatformSettings, endpoints: Endpoints):
    """Signs row scopes as the broker does, with the key it reads from OpenBao."""
    import base64

    from mlsec_platform.identities.catalog import BROKER_KEYS, ROW_SCOPE_SIGNING_KEY
    from mlsec_platform.storage.row_scope import RowScopeSigner

    vault = vault_as("broker", settings, endpoints)
    key = vault.read_kv(BROKER_KEYS)[ROW_SCOPE_SIGNING_KEY]
    vault.revoke()
    return RowScopeSigner(base64.b64decode(key))


def grant_row_scope(cur, signer, scope: str, backend: tuple[int, int] | None = None) -> None:
    """Set ``scope`` on the session as the broker would, signed for ``backend`` (default: the
    session's own backend)."""
    from mlsec_platform.storage.row_scope import ROW_SCOPE_SETTING, SESSION_SQL

    if backend is None:
        cur.execute(SESSION_SQL)
        backend = cur.fetchone()
    cur.execute(
        "SELECT set_config(%s, %s, false)", (ROW_SCOPE_SETTING, signer.sign(scope, *backend))
    )


def s3_error_code(call) -> str | None:
    """None when the call succeeded, else the S3 error code (e.g. AccessDenied)."""
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"]
    return None


def error_chain(error):
    """A Dagster SerializableErrorInfo and its causes, outermost first."""
    while error is not None:
        yield error
        error = error.cause or error.context


def operator_vault(settings: PlatformSettings, endpoints: Endpoints):
    from mlsec_platform.stack.bootstrap import BootstrapCredentials

    return BootstrapCredentials.load(settings).vault(endpoints)


@dataclass(frozen=True)
class TestClientCert:
    """A client certificate of the platform CA the tests present, as `mlsec cert issue`
    writes it: ``tls`` for clients, ``pem`` to bind tokens to."""

    __test__ = False  # not a test class
    tls: ClientTls
    pem: str


_session_clients: dict[Path, TestClientCert] = {}


def foreign_certificate(folder: Path, subject: str = "ana") -> ClientTls:
    """A client certificate signed by a CA key of our own making under the platform CA's name
    (``folder``: its PEM files; the CA bundle is left unset)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlsec-platform CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{subject}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{subject}-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ClientTls(folder / "no-ca.pem", folder / f"{subject}.pem", folder / f"{subject}-key.pem")


def issue_test_client(
    settings: PlatformSettings, folder: Path, subject: str = "tests", ttl_seconds: int = 7200
) -> TestClientCert:
    """A client certificate for ``subject``, issued by the operator as `mlsec cert issue`
    does, written to ``folder``."""
    from mlsec_platform.ops.certs import issue_client_certificate, write_client_files

    issued = issue_client_certificate(settings, subject, ttl_seconds)
    files = write_client_files(folder, subject, issued)
    return TestClientCert(
        ClientTls(files.ca_bundle, files.certificate, files.key), issued.certificate
    )


def session_client(settings: PlatformSettings) -> TestClientCert:
    """The certificate the tests of a session present by default (issued once per stack)."""
    if settings.root not in _session_clients:
        _session_clients[settings.root] = issue_test_client(settings, settings.root / "test-client")
    return _session_clients[settings.root]


#: The thumbprint of the client certificate the requests of in-process app tests present.
PRESENTED = "presented-certificate-x5t"


def through_the_gate(app, presented: str | None = PRESENTED):
    """``app`` as the TLS gate serves it, for tests that run an app in process: each request's
    scope names the connection's client certificate as the gate puts it there (``None``: a
    request that came through no gate). ``serving/test_tls.py`` tests the gate itself."""

    async def gated(scope, receive, send):
        if scope["type"] == "http" and presented is not None:
            scope.setdefault("extensions", {})["tls"] = {"client_cert_x5t_s256": presented}
        await app(scope, receive, send)

    return gated


#: Clients the TLS gate refuses, and the status each refusal is audited with.
REFUSED_CLIENTS = {"no certificate": 496, "another CA": 495, "plain HTTP": 497}


def refused_client(kind: str, url: str, tls: ClientTls, folder: Path) -> tuple[str, object]:
    """The URL and ``verify`` argument of a client of ``kind`` (a key of REFUSED_CLIENTS),
    that trusts the platform CA as ``tls`` does (``folder``: for a foreign certificate)."""
    if kind == "plain HTTP":
        return url.replace("https:", "http:"), True
    if kind == "no certificate":
        return url, ClientTls(tls.ca_bundle).ssl_context()
    foreign = foreign_certificate(folder)
    return url, ClientTls(tls.ca_bundle, foreign.certificate, foreign.key).ssl_context()


def requests_tls(tls: ClientTls) -> dict:
    """``tls`` as the keyword arguments of a ``requests`` call (schemathesis sends with it)."""
    return {"verify": str(tls.ca_bundle), "cert": (str(tls.certificate), str(tls.key))}


def https_client(
    url: str, tls: ClientTls, local_address: str | None = None, **kwargs
) -> httpx.Client:
    """An HTTPS client of a platform service presenting ``tls``'s certificate (from
    ``local_address``: loopback has a whole /8, one address per caller as distinct hosts)."""
    kwargs.setdefault("timeout", 60)
    context = tls.ssl_context()
    if local_address is not None:
        kwargs["transport"] = httpx.HTTPTransport(local_address=local_address, verify=context)
    return httpx.Client(base_url=url, verify=context, **kwargs)


def upload_token(
    settings, endpoints, *scopes: str, subject: str = "uploader-1", certificate=None, **kwargs
) -> str:
    """A gateway token bound to ``certificate`` (PEM; default: the session's client's)."""
    from mlsec_platform.gateway.services import AUDIENCE
    from mlsec_platform.identities.tokens import issue_token

    return issue_token(
        operator_vault(settings, endpoints),
        subject=subject,
        audience=kwargs.pop("audience", AUDIENCE),
        ttl_seconds=kwargs.pop("ttl_seconds", 600),
        certificate=certificate or session_client(settings).pem,
        claims={"scope": list(scopes)},
        **kwargs,
    )


def audit_events(superuser_dsn: dict, event_type: str, since_seq: int = 0) -> list[dict]:
    import psycopg2

    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT payload FROM audit.events WHERE event_type = %s AND seq > %s ORDER BY seq",
            (event_type, since_seq),
        )
        rows = [r[0] for r in cur.fetchall()]
    conn.close()
    return rows


def audit_head(superuser_dsn: dict) -> int:
    import psycopg2

    with psycopg2.connect(**superuser_dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(seq), 0) FROM audit.events")
        head = cur.fetchone()[0]
    conn.close()
    return head


def local_token_vault(folder):
    """The token vault's own code on a local folder, with keys made here (nothing to reveal
    with): for tests that run no server but tokenize like Silver does."""
    import os
    import uuid

    from mlsec_platform.privacy.tokens import DataKey, IndexKey
    from mlsec_platform.storage.token_vault import TokenVault

    index = IndexKey(os.urandom(32))
    return TokenVault(
        str(folder),
        dict,
        index_key=lambda: index,
        data_keys=lambda: DataKey(uuid.uuid4().hex, "not wrapped: a test's", os.urandom(32)),
    )


def vault_reader(settings: PlatformSettings, endpoints: Endpoints):
    """The token vault as the revealer reads it, with its read-only S3 keys."""
    from mlsec_platform.resources.identity import identity_resources
    from mlsec_platform.storage.token_vault import TokenVault

    return TokenVault.on_lake(identity_resources(settings, "revealer", endpoints).lake)
