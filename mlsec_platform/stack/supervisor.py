"""Starts, watches and stops the embedded servers of the `local` profile.

State lives under one folder (``.mlsec/`` by default). The ports each server got are recorded in
``stack.json`` and reused on the next start, so addresses stay stable across `down` and `up`;
a recorded port that another program took meanwhile is replaced by a free one.
"""

from __future__ import annotations

import fcntl
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlsec_platform.settings import Endpoints, PlatformSettings, Profile
from mlsec_platform.stack.ports import PortAllocator, is_free
from mlsec_platform.stack.secret_files import ensure_private_dir
from mlsec_platform.stack.servers.base import ManagedServer, PortTaken
from mlsec_platform.stack.servers.nats import NatsServer
from mlsec_platform.stack.servers.openbao import OpenBaoServer
from mlsec_platform.stack.servers.postgres import PostgresServer
from mlsec_platform.stack.servers.sail import SailServer, key_fingerprint
from mlsec_platform.stack.servers.seaweedfs import SeaweedFSServer

if TYPE_CHECKING:
    from mlsec_platform.resources.s3_lake import S3Credentials

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class ServerStatus:
    name: str
    running: bool
    healthy: bool
    ports: dict[str, int]


#: How many times a server is started on fresh ports when another process took one of its ports.
PORT_ATTEMPTS = 3


class Supervisor:
    """The embedded stack: OpenBao, SeaweedFS, PostgreSQL and NATS on loopback, and Sail
    (the Spark engine) once identities exist, when the `spark` engine has no remote."""

    SERVER_TYPES: tuple[type[ManagedServer], ...] = (
        OpenBaoServer,
        SeaweedFSServer,
        PostgresServer,
        NatsServer,
    )

    def __init__(self, settings: PlatformSettings, progress: Progress = _quiet) -> None:
        if settings.profile is not Profile.LOCAL:
            raise ValueError("the supervisor runs the `local` profile only")
        self.settings = settings
        self.progress = progress
        self.servers: dict[str, ManagedServer] = {}
        self._ports = PortAllocator()
        self._saving = threading.Lock()  # servers start in parallel threads
        self._load()

    # -- state ---------------------------------------------------------------------------------
    def _preferred(self) -> dict[str, dict[str, int | None]]:
        s = self.settings
        use = s.prefer_default_ports
        return {
            "openbao": {
                "api": s.vault_port if use else None,
                "cluster": s.vault_port + 1 if use else None,
            },
            "seaweedfs": {
                name: (s.s3_port if use and name == "s3" else None)
                for name in SeaweedFSServer.port_names
            },
            "postgres": {"tcp": s.postgres_port if use else None},
            "nats": {
                "client": s.nats_port if use else None,
                "monitor": s.nats_port + 4000 if use else None,
            },
        }

    def _load(self) -> None:
        recorded = {}
        if self.settings.stack_file.exists():
            recorded = json.loads(self.settings.stack_file.read_text()).get("ports", {})
        for server_type in self.SERVER_TYPES:
            ports = recorded.get(server_type.name) or {}
            self.servers[server_type.name] = server_type(self.settings, dict(ports))
        # Not in SERVER_TYPES: it needs the pipeline's keys, which exist after bootstrap.
        self.sail = SailServer(self.settings, dict(recorded.get(SailServer.name) or {}))

    def _allocate_ports(self) -> None:
        allocator = self._ports = PortAllocator()
        preferred = self._preferred()
        for name, server in self.servers.items():
            wanted = preferred[name]
            keep = set(server.ports) == set(wanted) and (
                server.is_running() or all(is_free(p) for p in server.ports.values())
            )
            if keep:
                for port in server.ports.values():
                    allocator.take(port)
                continue
            if server.ports:
                self.progress(f"  {name}: recorded ports are taken, choosing free ones")
            server.ports = {label: allocator.take(pref) for label, pref in wanted.items()}

    def endpoints(self) -> Endpoints:
        s = self.servers
        return Endpoints(
            vault_addr=s["openbao"].addr,
            s3_endpoint=s["seaweedfs"].endpoint,
            postgres_port=s["postgres"].ports["tcp"],
            nats_url=s["nats"].url,
            spark_remote=self.sail.remote if self.sail.is_running() else None,
        )

    def _save(self) -> None:
        ports = {name: server.ports for name, server in self.servers.items()}
        state = {
            "ports": ports | ({SailServer.name: self.sail.ports} if self.sail.ports else {}),
            "endpoints": self.endpoints().model_dump(),
        }
        with self._saving:
            tmp = self.settings.stack_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, indent=2))
            tmp.replace(self.settings.stack_file)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # The root stays traversable: PostgreSQL runs as its own system user. Only
        # secrets/ and identities/ are private.
        self.settings.root.mkdir(parents=True, exist_ok=True)
        with open(self.settings.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- lifecycle -----------------------------------------------------------------------------
    def up(self) -> Endpoints:
        """Start every server that is not running, in parallel, and wait until all are healthy.

        Every server speaks TLS only. A certificate that is missing or past two thirds of its
        life is issued first: OpenBao's from the bootstrap CA (here, at once), the others'
        from the platform CA in OpenBao, so when one of those is due OpenBao (with whatever
        needs nothing from it) starts first and the rest follow (the first start, and about
        once a month after). A running server given a new certificate reloads it."""
        with self._locked():
            ensure_private_dir(self.settings.secrets_dir)
            self._allocate_ports()
            self._save()
            started = time.monotonic()
            openbao = self.openbao
            if openbao.is_running() and openbao.renew_certificate():
                openbao.reload()
            due = [s for s in self.servers.values() if s.pki_role and s.tls.due()]
            if due:
                self._start_all([s for s in self.servers.values() if s not in due])
                self._issue_certificates(due)
            self._start_all(list(self.servers.values()))
            self.progress(f"  all servers healthy after {time.monotonic() - started:.1f}s")
            return self.endpoints()

    def _start_all(self, servers: list[ManagedServer]) -> None:
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            for future in [pool.submit(self._start, s) for s in servers]:
                future.result()

    def _start(self, server: ManagedServer) -> None:
        was_running = server.is_running()
        t0 = time.monotonic()
        for attempt in range(PORT_ATTEMPTS):
            try:
                server.start()
                break
            except PortTaken:
                # Another process bound a port between its choice and the server's start.
                if attempt == PORT_ATTEMPTS - 1:
                    raise
                self.progress(f"  {server.name}: a port was taken meanwhile, choosing free ones")
                with self._saving:
                    server.ports = {label: self._ports.take() for label in server.ports}
                self._save()
        state = "running" if was_running else f"started in {time.monotonic() - t0:.1f}s"
        self.progress(f"  {server.name:<10} {state}  {self._describe(server)}")

    def _issue_certificates(self, servers: list[ManagedServer]) -> None:
        """New platform-CA certificates for ``servers``; the running ones reload theirs."""
        # Imported here: only a start that issues certificates needs the PKI bootstrap.
        from mlsec_platform.stack.bootstrap.pki import issue_server_certificates

        t0 = time.monotonic()
        running = [s for s in servers if s.is_running()]
        targets = [(s.pki_role, s.tls, s.tls_owner) for s in servers]
        issue_server_certificates(self.settings, self.endpoints(), targets)  # type: ignore[arg-type]
        for server in running:
            server.reload()
        names = ", ".join(s.name for s in servers)
        self.progress(f"  tls        certificates for {names} ({time.monotonic() - t0:.1f}s)")

    def down(self) -> None:
        with self._locked():
            self._load()  # Sail may have been started by another supervisor since this loaded

            def stop(server: ManagedServer) -> None:
                if server.is_running():
                    server.stop()
                    self.progress(f"  {server.name:<10} stopped")

            stop(self.sail)  # first: it reads and writes the lake
            with ThreadPoolExecutor(max_workers=len(self.servers)) as pool:
                for future in [pool.submit(stop, s) for s in self.servers.values()]:
                    future.result()

    def ensure_sail(self) -> str:
        """Sail running with the ``pipeline`` identity's current S3 keys; its address.

        The keys are read from OpenBao as the ``pipeline`` identity (audited) and handed to the
        server's environment only. A server holding another key (rotated since it started) is
        restarted: the old key no longer works."""
        with self._locked():
            endpoints = self.endpoints()
            credentials = pipeline_s3_credentials(self.settings, endpoints)
            sail = self.sail
            if sail.is_running() and sail.held_key() == key_fingerprint(credentials):
                return sail.remote
            restarted = sail.is_running()
            sail.stop()
            if set(sail.ports) != {"connect"} or not is_free(sail.ports["connect"]):
                sail.ports = {"connect": PortAllocator().take()}
            sail.s3_endpoint, sail._credentials = endpoints.s3_endpoint, credentials
            try:
                t0 = time.monotonic()
                sail.start()
            finally:
                sail._credentials = None  # held by the server's process only
            what = "restarted with new keys" if restarted else "started"
            self.progress(
                f"  {sail.name:<10} {what} in {time.monotonic() - t0:.1f}s  {sail.remote}"
            )
            self._save()
            return sail.remote

    def start(self, name: str) -> None:
        with self._locked():
            self.servers[name].start()

    def stop(self, name: str) -> None:
        with self._locked():
            self.servers[name].stop()

    def status(self) -> list[ServerStatus]:
        result = []
        optional = [self.sail] if self.sail.is_running() else []
        for server in [*self.servers.values(), *optional]:
            running = server.is_running()
            try:
                healthy = running and server.is_healthy()
            except Exception:
                healthy = False
            result.append(ServerStatus(server.name, running, healthy, dict(server.ports)))
        return result

    @staticmethod
    def _describe(server: ManagedServer) -> str:
        main = next(iter(server.ports.values()), None)
        return f"127.0.0.1:{main}" if main else ""

    # -- typed access for bootstrap ------------------------------------------------------------
    @property
    def openbao(self) -> OpenBaoServer:
        return self.servers["openbao"]  # type: ignore[return-value]

    @property
    def seaweedfs(self) -> SeaweedFSServer:
        return self.servers["seaweedfs"]  # type: ignore[return-value]

    @property
    def postgres(self) -> PostgresServer:
        return self.servers["postgres"]  # type: ignore[return-value]

    @property
    def nats(self) -> NatsServer:
        return self.servers["nats"]  # type: ignore[return-value]


def pipeline_s3_credentials(settings: PlatformSettings, endpoints: Endpoints) -> S3Credentials:
    """The ``pipeline`` identity's S3 keys, read from OpenBao by that identity (audited)."""
    # Imported here: the resources import Dagster (seconds), which only Sail's start needs;
    # `mlsec up` and `mlsec down` otherwise paid for it on every call.
    from mlsec_platform.resources.identity import identity_resources

    chain = identity_resources(settings, "pipeline", endpoints)
    try:
        return chain.lake.credentials()
    finally:
        chain.vault.revoke()
        chain.audit.close()
