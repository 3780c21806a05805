"""`mlsec ui`'s hand-over of a code server's socket (``ops/dagster_ui.py``): the socket's folder
is the code server's user's, so root changes what is there only if it is a socket, never a
link to another file."""

from __future__ import annotations

import os
import socket

import pytest

from mlsec_platform.errors import ConfigurationError
from mlsec_platform.ops.dagster_ui import _open_socket


def test_the_socket_goes_to_the_orchestrator_and_the_location(tmp_path) -> None:
    path = tmp_path / "grpc.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        path.chmod(0o700)
        _open_socket(path, os.getuid(), os.getgid())
        assert path.stat().st_mode & 0o777 == 0o660


def test_a_link_in_its_place_is_refused_and_its_target_untouched(tmp_path) -> None:
    target = tmp_path / "someone-elses-file"
    target.write_text("secret")
    target.chmod(0o600)
    (tmp_path / "grpc.sock").symlink_to(target)
    with pytest.raises(ConfigurationError, match="not the code server's socket"):
        _open_socket(tmp_path / "grpc.sock", os.getuid(), os.getgid())
    assert target.stat().st_mode & 0o777 == 0o600
