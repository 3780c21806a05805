"""Bootstrap secrets on disk: 0600 files in 0700 folders, written atomically, never printed."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any


def ensure_private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_secret(path: Path, value: str | dict[str, Any]) -> None:
    """Write ``value`` to ``path`` with mode 0600 via rename, so a reader never sees half a file."""
    ensure_private_dir(path.parent)
    write_file(path, json.dumps(value) if isinstance(value, dict) else value, 0o600)


def write_file(path: Path, text: str, mode: int) -> None:
    """Write ``text`` to ``path`` (its folder made if missing) with ``mode`` from the start,
    via rename: a reader never sees half a file, nor a key with a wider mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_secret(path: Path) -> str:
    return path.read_text().strip()


def read_secret_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def new_password(nbytes: int = 24) -> str:
    """A random password that is safe inside SQL literals, URLs and config files."""
    return secrets.token_urlsafe(nbytes)
