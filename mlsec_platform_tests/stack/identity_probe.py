"""What a process can reach of each identity's credentials: run by ``test_os_users.py`` as one
identity's OS user, it prints one JSON object.

``python -m mlsec_platform_tests.stack.identity_probe IDENTITY... [--environ PID...]``: for each
identity, whether its secret_id file reads and whether an AppRole login as it (and a read of
its S3 keys) works; for each PID, whether ``/proc/<PID>/environ`` reads.
"""

from __future__ import annotations

import json
import os
import sys

from mlsec_platform.errors import MlsecError
from mlsec_platform.resources.vault import VaultResource
from mlsec_platform.settings import get_settings


def _secret_id(identity: str) -> str:
    try:
        (get_settings().identities_dir / identity / "secret_id").read_text()
    except PermissionError:
        return "denied"
    return "read"


def _login(identity: str) -> str:
    vault = VaultResource.for_identity(get_settings(), identity)
    try:
        vault.read_kv(f"s3/{identity}")
    except MlsecError as exc:
        return type(exc).__name__
    vault.revoke()
    return "logged in"


def _environ(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            fh.read()
    except PermissionError:
        return "denied"
    except (FileNotFoundError, ProcessLookupError):
        return "gone"
    return "read"


def main(argv: list[str]) -> dict:
    identities, pids = (
        (argv[: argv.index("--environ")], argv[argv.index("--environ") + 1 :])
        if ("--environ" in argv)
        else (argv, [])
    )
    return {
        "uid": os.getuid(),
        "secret_id": {name: _secret_id(name) for name in identities},
        "login": {name: _login(name) for name in identities},
        "environ": {pid: _environ(pid) for pid in pids},
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
