"""Loopback port allocation for the embedded servers."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class PortAllocator:
    """Hands out distinct free loopback ports, preferring the ones asked for."""

    def __init__(self) -> None:
        self._taken: set[int] = set()

    def take(self, preferred: int | None = None) -> int:
        if preferred and preferred not in self._taken and is_free(preferred):
            self._taken.add(preferred)
            return preferred
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port = sock.getsockname()[1]
            if port not in self._taken:
                self._taken.add(port)
                return port
