"""`mlsec cert issue`: a client certificate of the platform CA for a subject, written with its
key (0600) and CA, ``--shell`` lines for the SDK that never hold the key, audited, short-lived.
On the ops package's demo stack."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess

import psycopg2
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlsec_platform.cli import main
from mlsec_platform.identities.tokens import certificate_thumbprint
from mlsec_platform.serving.client import ClientTls
from mlsec_platform.stack.supervisor import Supervisor


def _issue(*args: str) -> str:
    result = CliRunner().invoke(main, ["cert", "issue", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_client_certificate_and_its_private_key(endpoints, settings, tmp_path) -> None:
    output = _issue("--subject", "ana lima", "--out", str(tmp_path / "certs"), "--ttl", "30m")
    cert_file, key_file = (
        tmp_path / "certs" / "ana_lima.pem",
        tmp_path / "certs" / "ana_lima-key.pem",
    )
    assert str(cert_file) in output and str(key_file) in output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ana lima"
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]  # never a server certificate
    life = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=28) < life <= dt.timedelta(minutes=30)
    # Issued by the platform CA, which the services trust (the file bootstrap published).
    assert (tmp_path / "certs" / "ca.pem").read_text().strip() == (
        settings.ca_bundle.read_text().strip()
    )
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(settings.ca_bundle), str(cert_file)],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    dsn = Supervisor(settings).postgres.superuser_dsn("warehouse")
    with psycopg2.connect(**dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT actor, payload FROM audit.events WHERE event_type = 'certificate.issued' "
            "ORDER BY seq DESC LIMIT 1"
        )
        actor, event = cur.fetchone()
    conn.close()
    assert actor == "operator:operator" and event["subject"] == "ana lima"
    assert event["thumbprint"] == certificate_thumbprint(cert_file.read_bytes())


def test_shell_lines_point_the_sdk_at_the_files_never_at_the_key(endpoints, tmp_path) -> None:
    output = _issue("--subject", "bob", "--out", str(tmp_path), "--shell")
    env = dict(line.removeprefix("export ").split("=", 1) for line in output.splitlines())
    assert env == {
        "MLSEC_CA_BUNDLE": str(tmp_path / "ca.pem"),
        "MLSEC_CLIENT_CERT": str(tmp_path / "bob.pem"),
        "MLSEC_CLIENT_KEY": str(tmp_path / "bob-key.pem"),
    }
    key = (tmp_path / "bob-key.pem").read_text()
    assert "PRIVATE KEY" in key and key.strip().splitlines()[1] not in output
    assert ClientTls.from_env(env).ssl_context()  # the SDK loads what the lines name


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["--ttl", "13h"], "client certificates live 12 h at most"),
        (["--ttl", "soon"], "a duration like 3600, 30m or 1h"),
        (["--ttl", "0"], "a duration like 3600, 30m or 1h"),
        (["--subject", "x" * 65], "1 to 64 printable characters"),
        (["--subject", "ana\n"], "1 to 64 printable characters"),
    ],
)
def test_refused_options_say_why(args, refusal, tmp_path) -> None:
    options = {"--subject": "ana", "--out": str(tmp_path)}
    options.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = CliRunner().invoke(main, ["cert", "issue", *sum(options.items(), ())])
    assert result.exit_code == 2 and refusal in result.output
