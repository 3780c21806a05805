"""What every embedded server has in common: a detached process, a pidfile, a health check."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil

from mlsec_platform.errors import MlsecError
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.server_tls import ServerCertificate


class ServerError(MlsecError, RuntimeError):
    """An embedded server failed to start, answer or stop; the message says where to look."""


class PortTaken(ServerError):
    """Another process bound one of the server's ports between its choice and the server's
    start (ports are chosen free, then bound by the server: a race on a busy machine)."""


#: What the servers write to their log when a port they were given is in use.
BIND_FAILURE = "address already in use"


def wait_until(
    check: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except ServerError:
            raise  # the check saw the server fail: waiting longer cannot help
        except Exception:  # noqa: S110 - a server that is still starting may answer anything
            pass
        time.sleep(interval)
    raise ServerError(f"timed out after {timeout:.0f}s waiting for {what}")


class ManagedServer(ABC):
    """One embedded server of the `local` profile.

    Subclasses say how to prepare the state folder once, which command runs the server and how
    to tell it is healthy. The process is started in its own session so it outlives the `mlsec`
    command that started it; its pid is kept in ``<state>/run/<name>.pid``.
    """

    name: str
    #: The signals to try when stopping, each with how long to wait for the process to exit.
    stop_signals: Sequence[tuple[signal.Signals, float]] = (
        (signal.SIGTERM, 10.0),
        (signal.SIGKILL, 5.0),
    )
    start_timeout: float = 60.0
    #: The platform CA's PKI role this server's certificate comes from (None: not from it).
    pki_role: str | None = None

    def __init__(self, settings: PlatformSettings, ports: dict[str, int]) -> None:
        self.settings = settings
        self.ports = ports

    # -- paths ---------------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.settings.root / self.name

    @property
    def log_file(self) -> Path:
        return self.settings.root / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.root / "run" / f"{self.name}.pid"

    @property
    def tls(self) -> ServerCertificate:
        """This server's certificate and key (under its own folder)."""
        return ServerCertificate(self.home / "tls")

    @property
    def tls_owner(self) -> int | None:
        """The uid the certificate's files belong to when the server runs as another user."""
        return None

    # -- what subclasses provide ---------------------------------------------------------------
    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Create folders and config before each start (idempotent)."""

    @abstractmethod
    def command(self) -> list[str]:
        """The command line of the server process."""

    @abstractmethod
    def is_healthy(self) -> bool:
        """Whether the server answers as it should right now."""

    def after_start(self) -> None:  # noqa: B027 - optional hook
        """Work that needs the running process (init, unseal, admin identity)."""

    # -- lifecycle -----------------------------------------------------------------------------
    def process(self) -> psutil.Process | None:
        """The running server process recorded in the pidfile, if it is still ours."""
        try:
            pid = int(self.pid_file.read_text())
            proc = psutil.Process(pid)
            binary = Path(self.command()[0]).name
            if (
                proc.is_running()
                and proc.status() != psutil.STATUS_ZOMBIE
                and any(binary in part for part in proc.cmdline()[:1])
            ):
                return proc
        except (FileNotFoundError, ValueError, psutil.Error):
            pass
        return None

    def is_running(self) -> bool:
        return self.process() is not None

    def start(self) -> None:
        if self.is_running():
            self.wait_healthy()
            return
        self.prepare()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log_start = log.tell()
            proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
                env=self.environment(),
            )
        self.pid_file.write_text(str(proc.pid))
        try:
            self.wait_healthy(started=proc, log_start=log_start)
        except PortTaken:
            self.stop()  # some servers keep running without the port: never leave one so
            raise

    def environment(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home)}

    def wait_healthy(self, started: subprocess.Popen | None = None, log_start: int = 0) -> None:
        def ready() -> bool:
            if started is not None and self._port_taken(log_start):
                raise PortTaken(f"{self.name}: a port it was given is in use")
            if started is not None and started.poll() is not None:
                raise ServerError(f"{self.name} exited with code {started.returncode}")
            return self._ready()

        try:
            wait_until(ready, timeout=self.start_timeout, what=f"{self.name} to start")
        except ServerError as exc:
            raise type(exc)(f"{exc}; see {self.log_file}") from None
        self.after_start()
        wait_until(self.is_healthy, timeout=self.start_timeout, what=f"{self.name} to be healthy")

    def _port_taken(self, log_start: int) -> bool:
        """Whether this start's part of the log says a port was in use."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(log_start)
                return BIND_FAILURE in log.read().decode(errors="replace").lower()
        except OSError:
            return False

    def renew_certificate(self) -> bool:
        """Issue this server's TLS certificate if it is missing or due; True when it did.
        Servers whose certificate comes from the platform CA are handed theirs by the
        supervisor instead (see ``Supervisor``)."""
        return False

    def reload(self) -> None:
        """Make the running server take its new certificate: a restart unless it can reload."""
        self.stop()
        self.start()

    def send_signal(self, sig: signal.Signals) -> None:
        proc = self.process()
        if proc is not None:
            proc.send_signal(sig)

    def _ready(self) -> bool:
        """Whether the process answers at all (before `after_start`); health by default."""
        return self.is_healthy()

    def stop(self) -> None:
        proc = self.process()
        if proc is None:
            self.pid_file.unlink(missing_ok=True)
            return
        for sig, wait in self.stop_signals:
            try:
                proc.send_signal(sig)
                proc.wait(wait)
                break
            except psutil.TimeoutExpired:
                continue
            except psutil.NoSuchProcess:
                break
        self.pid_file.unlink(missing_ok=True)
