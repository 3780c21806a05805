"""Where a door's body goes while it arrives, and how it is checked once complete.

Either body is spooled to an unlinked temporary file (what quarantine keeps of it if it is
refused) and checked block by block as it comes: a file by ``sources/file_stream.py``, events
by ``sources/event_batch.py``, which keeps each checked event only as its encoded message. The
gateway's memory does not grow with the size of uploads or event batches.
"""

from __future__ import annotations

import tempfile
from typing import Any, BinaryIO, Protocol

from mlsec_platform.catalog.sources import EventContract, SourceContract
from mlsec_platform.sources.event_batch import EventBatch
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


class EventSink:
    """An events request: spooled as it arrives, its events checked and kept as messages
    sized against the message server's ``max_payload``."""

    def __init__(self, contract: EventContract, max_payload: int) -> None:
        self.spool = tempfile.TemporaryFile(prefix="mlsec-events-body-")  # noqa: SIM115
        self._batch = EventBatch(contract, max_payload)

    def write(self, block: bytes) -> None:
        self.spool.write(block)  # first: a block that fails its checks is kept too
        self._batch.feed(block)

    def finish(self) -> EventBatch:
        return self._batch.finish()

    def payload(self) -> BinaryIO:
        self.spool.flush()
        return self.spool

    def close(self) -> None:
        self._batch.close()
        self.spool.close()
