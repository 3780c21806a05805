"""One OS user per workload identity, so a process of one identity cannot read another's
AppRole credentials (the embedded default, run as root).

`mlsec up` run as root makes a system user ``mlsec-<identity>`` for every workload identity
(no home, no login shell; idempotent) and hands each identity's credential folder to its user:
0700 folder, 0600 files, read by that user alone. The processes of an identity (the broker and
the gateway services, the code servers and run workers of the Dagster code locations) run as
its user; the bootstrap secrets (``secrets/``) stay root's.

Two identities are shared on purpose, by group rather than by user: their folder is 0750 and
their files 0640, readable by the members of the identity's group.

- ``orchestrator``: every process that opens the Dagster instance reads the instance's
  Postgres login as it (``stack/orchestrator.py``), so the run workers of the connector, the
  pipeline and the lifecycle (their code locations) are members of ``mlsec-orchestrator``;
  `mlsec ui` runs the Dagster webserver and daemon as ``mlsec-orchestrator`` itself
  (``ops/dagster_ui.py``).
- ``revealer``: the broker's reveal path logs in as it (``broker_api/services.py``).

Run as any other user (a developer's laptop, CI without root) every process runs as that one
user, as it always did: the credential files are still 0600, but they all belong to the same
user, so the separation is by process only. `mlsec up` and `mlsec status` say so. The compose
stack separates identities by container instead.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import mlsec_platform
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.identities.catalog import IDENTITIES
from mlsec_platform.settings import PlatformSettings, Profile

PREFIX = "mlsec-"
#: Identities whose credentials another identity's processes need too: identity -> readers.
SHARED_WITH: dict[str, tuple[str, ...]] = {
    "orchestrator": ("connector", "pipeline", "lifecycle"),
    "revealer": ("broker",),
}
NOLOGIN = "/usr/sbin/nologin"
#: What `mlsec up` and `mlsec status` say when not run as root.
SINGLE_USER_NOTE = (
    "identities share one OS user here: each identity's processes run as their own OS user "
    "only when `mlsec up` runs as root (or in the compose stack)"
)


def separated(settings: PlatformSettings) -> bool:
    """Whether identities run as OS users of their own: on the embedded default (the compose
    stack separates them by container), when root, who alone can make and become them."""
    return settings.profile is Profile.LOCAL and os.geteuid() == 0


def user_name(identity: str) -> str:
    return PREFIX + identity


@dataclass(frozen=True)
class OsUser:
    """The OS account an identity's processes run as."""

    identity: str
    uid: int
    gid: int
    #: The groups of the shared identities whose credentials this identity reads too.
    extra_gids: tuple[int, ...]

    def popen_options(self, env: Mapping[str, str] | None = None) -> dict:
        """``subprocess.Popen`` options that start a process as this user, with ``env`` (this
        process's by default) whose HOME is the user's, which does not exist: nothing of
        root's home is read by mistake (hvac reads a token from ``~/.vault-token``)."""
        name = user_name(self.identity)
        home = pwd.getpwnam(name).pw_dir
        return {
            "user": self.uid,
            "group": self.gid,
            "extra_groups": list(self.extra_gids),
            "env": {
                **(os.environ if env is None else env),
                "HOME": home,
                "USER": name,
                "LOGNAME": name,
            },  # fmt: skip
        }


def os_user(identity: str) -> OsUser:
    """The OS user of ``identity``; ConfigurationError (fail closed) when it was never made."""
    try:
        entry = pwd.getpwnam(user_name(identity))
        extra = tuple(
            grp.getgrnam(user_name(shared)).gr_gid
            for shared, readers in SHARED_WITH.items()
            if identity in readers
        )
    except KeyError:
        raise ConfigurationError(
            f"no OS user {user_name(identity)} for identity '{identity}': run `mlsec up` as root "
            "first (it makes one user per identity)"
        ) from None
    return OsUser(identity, entry.pw_uid, entry.pw_gid, extra)


def popen_options(
    settings: PlatformSettings, identity: str, env: Mapping[str, str] | None = None
) -> dict:
    """Options that start a subprocess as ``identity``'s user (with ``env``) when separated,
    else as this process's user, with ``env``."""
    if separated(settings):
        _reach_public_files(settings)
        return os_user(identity).popen_options(env)
    return {"env": dict(os.environ if env is None else env)}


def become(settings: PlatformSettings, identity: str, give: Path | None = None) -> None:
    """Run the rest of this process as ``identity``'s OS user, when separated (else nothing
    changes). ``give``, a folder, is handed to that user first (e.g. where the process keeps
    its service record). Call it before the process reads anything of the identity's.

    After the switch the kernel marks the process not dumpable: its ``/proc/<pid>`` files
    (environ, memory) belong to root, so no other identity's process can read them."""
    if not separated(settings):
        return
    user = os_user(identity)
    options = user.popen_options()
    _reach_public_files(settings)
    if give is not None:
        give.mkdir(parents=True, exist_ok=True)
        os.chown(give, user.uid, user.gid)
        _traversable(give)
    os.setgroups(options["extra_groups"])
    os.setgid(user.gid)
    os.setuid(user.uid)
    os.environ.update({k: options["env"][k] for k in ("HOME", "USER", "LOGNAME")})


def ensure_users() -> None:
    """Make the user (and its group) of every workload identity, and put the readers of the
    shared identities in their groups; what exists is kept. Root only.

    The identities' processes run this Python and this code: every folder above them is made
    passable (search, not listing) by other users, as the embedded PostgreSQL's wheel does for
    its binaries (e.g. a Python installed under root's home)."""
    for place in {Path(sys.base_prefix), Path(sys.prefix), Path(mlsec_platform.__file__).parent}:
        _traversable(place / "x")
    for identity in IDENTITIES:
        try:
            pwd.getpwnam(user_name(identity))
        except KeyError:
            _run(["useradd", "--system", "--no-create-home", "--shell", NOLOGIN,
                  "--user-group", user_name(identity)])  # fmt: skip
    for shared, readers in SHARED_WITH.items():
        members = grp.getgrnam(user_name(shared)).gr_mem
        for reader in readers:
            if user_name(reader) not in members:
                _run(["usermod", "--append", "--groups", user_name(shared), user_name(reader)])


def share_dagster_home(settings: PlatformSettings) -> None:
    """The Dagster instance's local folders (artifacts, staged step logs) are written by the
    run workers of every location, so they belong to the ``mlsec-orchestrator`` group, whose
    members they are: 2770, new entries inherit the group (the workers' umask is 007)."""
    group = grp.getgrnam(user_name("orchestrator")).gr_gid
    for folder in (settings.dagster_home, settings.dagster_home / "compute_logs"):
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, 0, group)
        folder.chmod(0o2770)


def _run(command: list[str]) -> None:
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        raise ConfigurationError(
            f"cannot make the identities' OS users ({command[0]}): {detail}"
        ) from None


def hand_over(settings: PlatformSettings, folder: Path, identity: str) -> None:
    """Give ``identity``'s credential folder and its files to its user (when separated):
    0700/0600, or 0750/0640 with its group for a shared identity. Run after every write, so a
    re-issued secret_id belongs to the identity like the one it replaced."""
    if not separated(settings):
        return
    user = os_user(identity)
    shared = identity in SHARED_WITH
    for path in (folder, *sorted(folder.iterdir())):
        os.chown(path, user.uid, user.gid)
        if path.is_dir():
            path.chmod(0o750 if shared else 0o700)
        else:
            path.chmod(0o640 if shared else 0o600)
    # Every user traverses to its own folder (the names of the identities are no secret).
    folder.parent.chmod(0o755)
    _traversable(folder.parent)


def _reach_public_files(settings: PlatformSettings) -> None:
    """The CA certificates and the policy folder the settings name are public, but may lie
    anywhere: e.g. ``MLSEC_CA_BUNDLE=certs/ca.pem`` from `mlsec cert issue --out certs`, in a
    folder only root could pass. Every identity's process reads them, so the folders above
    them are made passable (not listable) before it switches user; files keep their modes."""
    named = [settings.ca_bundle, settings.server_ca_bundle, *settings.server_ca_files.values()]
    # The broker's policy folder (no secret), named by a file in it so the folder itself
    # becomes passable too; its read bit stays as the operator set it.
    named.append(settings.broker_policy_dir and settings.broker_policy_dir / "policy.yaml")
    for path in named:
        if path is not None:
            _traversable(Path(path).absolute())


def _traversable(path: Path) -> None:
    """Let other users pass through every folder above ``path`` (as the embedded PostgreSQL,
    which runs as a user of its own under the same state folder, needs too)."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & 0o011 != 0o011:
            parent.chmod(mode | 0o011)
