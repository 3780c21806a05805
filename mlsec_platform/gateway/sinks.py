"""Where a door's body goes while it arrives, and how it is checked once complete.

A file is spooled to an unlinked temporary file and checked block by block as it comes
(``sources/file_stream.py``): the gateway's memory does not grow with the size of uploads.
Events are gathered in memory (their requests are capped much lower) and parsed whole, since
a request's events are accepted or refused together.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from mlsec_platform.catalog.sources import SourceContract
from mlsec_platform.sources.file_stream import CheckedFile, FileStream


class Sink(Protocol):
    def write(self, block: bytes) -> None:
        """Take the next block; raises ``Rejected`` when a check fails on it."""

    def finish(self) -> Any:
        """The body is complete: the last checks; returns what the route needs."""

    def payload(self) -> bytes | BinaryIO:
        """What arrived so far, for quarantine."""

    def close(self) -> None:
        """Free what the sink holds (its spool files)."""


class SpoolSink:
    """A file upload: spooled to disk and checked as it arrives."""

    def __init__(self, contract: SourceContract) -> None:
        # Unlinked at once (nothing is left on disk if the process dies); closed by close().
        self.spool = tempfile.TemporaryFile(prefix="mlsec-upload-")  # noqa: SIM115
        self._stream = FileStream(contract)
        self._checked: CheckedFile | None = None

    def write(self, block: bytes) -> None:
        self.spool.write(block)  # first: a block that fails its checks is kept too
        self._stream.feed(block)

    def finish(self) -> CheckedFile:
        self.spool.flush()
        self._checked = self._stream.finish(self.spool)
        return self._checked

    def payload(self) -> BinaryIO:
        self.spool.flush()
        return self.spool

    def close(self) -> None:
        if self._checked is not None and self._checked.stored is not self.spool:
            self._checked.stored.close()
        self.spool.close()


class BufferSink:
    """An events request: gathered in memory (within its cap) and parsed whole."""

    def __init__(self, contract: Any, check: Callable[[bytes, Any], Any]) -> None:
        self._contract, self._check = contract, check
        self._blocks: list[bytes] = []

    def write(self, block: bytes) -> None:
        self._blocks.append(block)

    def finish(self) -> Any:
        body = self.payload()
        self._blocks = [body]
        return self._check(body, self._contract)

    def payload(self) -> bytes:
        return b"".join(self._blocks)

    def close(self) -> None:
        self._blocks = []
