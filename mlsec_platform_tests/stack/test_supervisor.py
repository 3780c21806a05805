"""The embedded stack: healthy, reused on a second start, and durable across down/up."""

import json
import socket
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager

import psycopg2
import pytest
from click.testing import CliRunner

from mlsec_platform.cli import main
from mlsec_platform.settings import PlatformSettings, Zone
from mlsec_platform.stack.ports import PortAllocator, is_free
from mlsec_platform.stack.secret_files import ensure_private_dir
from mlsec_platform.stack.servers.base import PortTaken
from mlsec_platform.stack.servers.openbao import OpenBaoServer
from mlsec_platform.stack.supervisor import Supervisor
from mlsec_platform_tests.helpers import s3_as


def test_every_server_is_healthy(supervisor):
    statuses = supervisor.status()
    assert [s.name for s in statuses] == ["openbao", "seaweedfs", "postgres", "nats"]
    assert all(s.running and s.healthy for s in statuses), statuses


def test_status_command_reports_health(supervisor):
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0, result.output
    assert result.output.count("healthy") == 4


def test_bootstrap_secrets_are_private_files(settings):
    secrets = settings.secrets_dir
    assert secrets.stat().st_mode & 0o777 == 0o700
    names = {p.name for p in secrets.iterdir()}
    assert {
        "openbao-unseal-key",
        "openbao-bootstrap-token",
        "postgres-superuser",
        "s3-admin.json",
    } <= names
    for path in secrets.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path


def test_second_start_reuses_state(supervisor, settings):
    unseal_key = (settings.secrets_dir / "openbao-unseal-key").read_text()
    ports = json.loads(settings.stack_file.read_text())["ports"]
    again = Supervisor(settings)
    assert again.up() == supervisor.endpoints()
    assert (settings.secrets_dir / "openbao-unseal-key").read_text() == unseal_key
    assert json.loads(settings.stack_file.read_text())["ports"] == ports


def test_data_survives_down_then_up(supervisor, settings, endpoints, superuser_dsn):
    key = f"durability/{uuid.uuid4()}.txt"
    s3_as("pipeline", settings, endpoints).put_object(
        Bucket=settings.bucket(Zone.SILVER), Key=key, Body=b"still here"
    )
    marker = f"durability_{uuid.uuid4().hex[:8]}"
    with closing(psycopg2.connect(**superuser_dsn)) as conn, conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE public.{marker} (v text)")
        cur.execute(f"INSERT INTO public.{marker} VALUES ('still here')")

    runner = CliRunner()
    down = runner.invoke(main, ["down"])
    assert down.exit_code == 0, down.output
    assert not any(s.running for s in supervisor.status())
    up = runner.invoke(main, ["up"])
    assert up.exit_code == 0, up.output

    # The identities still work (OpenBao state, SeaweedFS IAM) and the data is there.
    body = s3_as("pipeline", settings, endpoints).get_object(
        Bucket=settings.bucket(Zone.SILVER), Key=key
    )
    assert body["Body"].read() == b"still here"
    with closing(psycopg2.connect(**superuser_dsn)) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT v FROM public.{marker}")
        assert cur.fetchone() == ("still here",)
        cur.execute(f"DROP TABLE public.{marker}")
        conn.commit()


def test_taken_ports_are_replaced_by_free_ones():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        allocator = PortAllocator()
        assert not is_free(taken)
        port = allocator.take(taken)
        assert port != taken and is_free(port)
        assert allocator.take(port) != port  # never handed out twice


@contextmanager
def _held_port() -> Iterator[int]:
    """A loopback port another process has bound (the race a busy machine runs)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


@pytest.mark.stack  # starts an OpenBao of its own
def test_a_server_whose_port_is_taken_fails_as_such_and_leaves_no_process(tmp_path):
    settings = PlatformSettings(state_dir=tmp_path / "state")
    ensure_private_dir(settings.secrets_dir)
    with _held_port() as taken:
        server = OpenBaoServer(settings, {"api": taken, "cluster": PortAllocator().take()})
        # Read from its log, not a timeout: the error says the port, and nothing is left.
        with pytest.raises(PortTaken, match="a port it was given is in use"):
            server.start()
    assert not server.is_running()


@pytest.mark.stack  # starts an OpenBao of its own
def test_up_moves_a_server_to_free_ports_when_one_was_taken_meanwhile(tmp_path):
    settings = PlatformSettings(state_dir=tmp_path / "state")
    ensure_private_dir(settings.secrets_dir)
    said: list[str] = []
    supervisor = Supervisor(settings, progress=said.append)
    supervisor._allocate_ports()
    openbao = supervisor.openbao
    with _held_port() as taken:
        openbao.ports["api"] = taken
        try:
            supervisor._start(openbao)
            assert openbao.ports["api"] != taken
            assert openbao.is_healthy()
            recorded = json.loads(settings.stack_file.read_text())["ports"]["openbao"]
            assert recorded == openbao.ports
            assert any("a port was taken meanwhile" in line for line in said)
        finally:
            openbao.stop()
