"""SeaweedFS's internal ports take only its own parts: the S3 port is the one way in."""

from __future__ import annotations

import socket
import ssl
import uuid

import pytest
import requests

from mlsec_platform.settings import Zone
from mlsec_platform.stack.servers.seaweedfs_mesh import (
    GRPC_COMPONENTS,
    HTTPS_COMPONENTS,
    MeshFiles,
    prepare_mesh,
    security_config,
)
from mlsec_platform_tests.helpers import s3_admin, s3_error_code

#: The HTTP/2 preface a gRPC client sends first.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# -- without servers -------------------------------------------------------------------------


def test_every_internal_port_requires_the_mesh_certificate(tmp_path):
    files = MeshFiles(tmp_path)
    config = security_config(files)
    for part in GRPC_COMPONENTS:
        assert f'[grpc.{part}]\ncert = "{files.certificate}"' in config
    for part in HTTPS_COMPONENTS:
        # `ca` on an HTTPS section is what makes the server demand a client certificate.
        assert f'[https.{part}]\ncert = "{files.certificate}"\nkey = "{files.key}"\nca = ' in config
    assert f'[grpc]\nca = "{files.ca}"' in config
    assert "[https.client]\nenabled = true" in config


def test_the_mesh_files_are_private_and_the_ca_key_is_not_kept(tmp_path):
    first = prepare_mesh(tmp_path)
    assert sorted(p.name for p in first.folder.iterdir()) == ["ca.pem", "node.key", "node.pem"]
    for path in (first.key, first.certificate, first.ca, first.config):
        assert path.stat().st_mode & 0o777 == 0o600
    assert first.folder.stat().st_mode & 0o777 == 0o700
    before = first.certificate.read_bytes()
    prepare_mesh(tmp_path)  # each start issues a new certificate from a new CA
    assert first.certificate.read_bytes() != before


# -- against the embedded stack -------------------------------------------------------------


@pytest.fixture(scope="module")
def seaweedfs(supervisor):
    return supervisor.servers["seaweedfs"]


@pytest.mark.parametrize("port", HTTPS_COMPONENTS)
def test_an_internal_http_port_refuses_a_client_without_the_mesh_certificate(seaweedfs, port):
    address = f"127.0.0.1:{seaweedfs.ports[port]}"
    plain = requests.get(f"http://{address}/", timeout=5)
    assert plain.status_code == 400
    assert "HTTP request to an HTTPS server" in plain.text
    # The client trusts the server; the server does not take a client without the certificate.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"https://{address}/", timeout=5, verify=str(seaweedfs.mesh.ca))
    # The same request with the mesh certificate is answered: the refusal is the certificate.
    assert seaweedfs.mesh_get(port, "/").status_code < 500


def test_a_filer_write_without_the_certificate_lands_nowhere(seaweedfs, supervisor, settings):
    bucket, key = settings.bucket(Zone.RAW), f"probe/{uuid.uuid4().hex}.txt"
    url = f"127.0.0.1:{seaweedfs.ports['filer']}/buckets/{bucket}/{key}"
    files = {"file": ("x.txt", b"overwritten")}
    assert requests.post(f"http://{url}", files=files, timeout=5).status_code == 400
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(f"https://{url}", files=files, timeout=5, verify=str(seaweedfs.mesh.ca))
    admin = s3_admin(supervisor, settings)
    assert s3_error_code(lambda: admin.head_object(Bucket=bucket, Key=key)) in {"404", "NoSuchKey"}


def _grpc_answer(mesh: MeshFiles, port: int, cert: bool, tls: bool = True) -> bytes:
    """What a gRPC port sends back to an HTTP/2 preface, in the clear or over TLS with or
    without a client certificate (an empty answer or a TLS alert: refused)."""
    if not tls:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(_H2_PREFACE)
            return raw.recv(64)
    context = ssl.create_default_context(cafile=str(mesh.ca))
    context.set_alpn_protocols(["h2"])
    if cert:
        context.load_cert_chain(*mesh.client_cert)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(_H2_PREFACE)
                return tls.recv(64)
        except (ssl.SSLError, ConnectionError):
            return b""


@pytest.mark.parametrize("part", GRPC_COMPONENTS)
def test_an_internal_grpc_port_refuses_a_client_without_the_mesh_certificate(seaweedfs, part):
    port = seaweedfs.ports[f"{part}_grpc"]
    assert _grpc_answer(seaweedfs.mesh, port, cert=False, tls=False) == b""
    assert _grpc_answer(seaweedfs.mesh, port, cert=False) == b""
    # With the certificate the server answers with its HTTP/2 settings frame.
    assert _grpc_answer(seaweedfs.mesh, port, cert=True) != b""
