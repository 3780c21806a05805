"""Sail (the `pysail` wheel): the embedded Spark Connect engine of ``MLSEC_ENGINE=spark``.

Sail reads and writes the lake's Delta tables itself, with the S3 keys in its own process
environment (``AWS_*``, read by its object store). So its environment holds the ``pipeline``
identity's keys and nothing else: they are read from OpenBao when the server starts (by the
supervisor, as the ``pipeline`` identity, an audited secret read), handed to the child process
only, never written to a file or printed. The keys are static until an operator rotates them,
which deletes the old ones at once: the fingerprint of the key the server holds is kept beside
its pidfile (a SHA-256 of the key id, no secret), and the supervisor restarts the server when
OpenBao holds another key (``Supervisor.ensure_sail``, also run after ``mlsec rotate s3-keys``).

It listens on a loopback port only. Spark Connect has no client login and Sail cannot listen on
a Unix socket, so while it runs any local user can submit work with the pipeline's rights: the
embedded Sail is for a machine whose local users may hold them (the README says so); elsewhere
``MLSEC_SPARK_REMOTE`` points at an endpoint with its own authentication.

``local-cluster`` runs a driver and ``sail_workers`` worker actors in the one process, talking
over loopback RPC (the way a Sail cluster on Kubernetes is run), which the tests use to show
tasks running on two workers.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from typing import TYPE_CHECKING

from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.servers.base import ManagedServer, ServerError

if TYPE_CHECKING:
    from mlsec_platform.resources.s3_lake import S3Credentials


def key_fingerprint(credentials: S3Credentials) -> str:
    """What identifies the key a server holds, safe to keep in a file (no secret in it)."""
    return hashlib.sha256(credentials.access_key_id.encode()).hexdigest()[:16]


class SailServer(ManagedServer):
    name = "sail"
    port_names = ("connect",)
    start_timeout = 30.0

    def __init__(
        self,
        settings: PlatformSettings,
        ports: dict[str, int],
        *,
        s3_endpoint: str | None = None,
        credentials: S3Credentials | None = None,
    ) -> None:
        super().__init__(settings, ports)
        self.s3_endpoint = s3_endpoint
        self._credentials = credentials

    @property
    def remote(self) -> str:
        """The Spark Connect address clients use."""
        return f"sc://127.0.0.1:{self.ports['connect']}"

    @property
    def key_file(self):
        return self.pid_file.with_suffix(".key")

    def held_key(self) -> str | None:
        """The fingerprint of the S3 key the running server was started with."""
        try:
            return self.key_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self._credentials is None or self.s3_endpoint is None:
            raise ServerError("sail starts only with the pipeline identity's S3 keys and endpoint")
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        self.key_file.write_text(key_fingerprint(self._credentials))

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pysail",
            "spark",
            "server",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.ports["connect"]),
        ]

    def process(self):
        if "connect" not in self.ports:  # never started under this state folder
            return None
        # The command's first word is the Python interpreter: match on the module instead.
        proc = super().process()
        if proc is not None and "pysail" not in " ".join(proc.cmdline()):
            return None
        return proc

    def environment(self) -> dict[str, str]:
        """PATH, HOME, the lake options with the pipeline's keys, and Sail's own settings; no
        other variable of this process reaches the engine."""
        assert self._credentials is not None and self.s3_endpoint is not None
        # Imported here: the resources import Dagster (seconds), which `mlsec up` does not need.
        from mlsec_platform.resources.s3_lake import lake_storage_options

        options = lake_storage_options(self.s3_endpoint, self.settings.s3_region, self._credentials)
        env = {**super().environment(), **options, "SAIL_MODE": self.settings.sail_mode}
        # S3 speaks TLS with the platform's CA: the engine's object store (rustls with the
        # system's roots) trusts exactly the bundle named here, as delta-rs does here.
        env["SSL_CERT_FILE"] = options["certificate_path"]
        if self.settings.sail_mode == "local-cluster":
            workers = str(self.settings.sail_workers)
            env |= {
                "SAIL_CLUSTER__WORKER_INITIAL_COUNT": workers,
                "SAIL_CLUSTER__WORKER_MAX_COUNT": workers,
            }
        if "RUST_LOG" in os.environ:  # a developer's own log level, for debugging the engine
            env["RUST_LOG"] = os.environ["RUST_LOG"]
        return env

    def is_healthy(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.ports["connect"]), timeout=2):
            return True

    def stop(self) -> None:
        super().stop()
        self.key_file.unlink(missing_ok=True)
