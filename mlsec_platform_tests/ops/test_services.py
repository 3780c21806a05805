"""The services `mlsec status` lists beside the servers (UI, broker, gateway): up while their
process listens, down once it is gone (gateway/test_process_status.py: a real `mlsec
gateway`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from mlsec_platform.ops.services import record_service, service_states, serving
from mlsec_platform.settings import PlatformSettings


def test_a_service_is_up_while_its_process_listens(tmp_path) -> None:
    settings = PlatformSettings(state_dir=tmp_path)
    assert [(s.name, s.up) for s in service_states(settings)] == [
        ("ui", False),
        ("broker", False),
        ("gateway", False),
        ("metrics", False),
        ("dashboard", False),
    ]
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        with serving(settings, "broker", f"https://127.0.0.1:{port}", "127.0.0.1", port):
            broker = service_states(settings)[1]
            assert (broker.up, broker.pid, broker.url) == (
                True,
                os.getpid(),
                f"https://127.0.0.1:{port}",
            )
    assert not service_states(settings)[1].up
    assert not (tmp_path / "services" / "broker" / "record.json").exists()


def test_a_record_whose_process_is_gone_is_down(tmp_path) -> None:
    settings = PlatformSettings(state_dir=tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = record_service(settings, "ui", "http://127.0.0.1:3000", "127.0.0.1", 3000)
    path.write_text(json.dumps({**json.loads(path.read_text()), "pid": gone.pid}))
    ui = service_states(settings)[0]
    assert (ui.up, ui.pid, ui.url) == (False, None, "http://127.0.0.1:3000")
