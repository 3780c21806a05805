"""A table as CSV for Postgres ``COPY FROM STDIN``, made while COPY reads it.

Made whole first, a warehouse load's CSV kept its thread busy while Postgres waited, then
Postgres parsed it while the thread waited (``fact_order_item`` at 1M orders: a few seconds
each way). Here a thread writes the CSV a record batch at a time into a short queue and COPY
reads from the other end: Arrow's CSV writer and Postgres' parser run at once (both release
the GIL: the writer while it formats, psycopg2 while it sends), and the whole CSV is never
held, only a few parts of it.
"""

from __future__ import annotations

import io
import queue
import threading
import time

import pyarrow as pa
import pyarrow.csv as pacsv

#: Rows formatted at a time, and parts held at most between the writer and COPY (~25 MB).
BATCH_ROWS = 65_536
QUEUED_PARTS = 4
#: What COPY asks for at a time (a part is handed over whole whatever this says).
CSV_PART_BYTES = 1 << 20
_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed")


class CsvStream(io.RawIOBase):
    """``table`` as CSV without a header, read with ``read``; use it as a context manager,
    which stops the writing thread however COPY ends. ``waited``: seconds ``read`` spent
    waiting for the writer (what making the CSV still added to the load)."""

    def __init__(self, table: pa.Table) -> None:
        super().__init__()
        self._table = table
        self._parts: queue.Queue[bytes | BaseException | None] = queue.Queue(QUEUED_PARTS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, name="csv-stream", daemon=True)
        self._done = False
        self.waited = 0.0

    def __enter__(self) -> CsvStream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a writer waiting for room
            try:
                self._parts.get(timeout=0.05)
            except queue.Empty:
                continue
        self._thread.join()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """The next part of the CSV (any length; empty at the end). A writer's error is
        raised here, so COPY fails and its transaction rolls back."""
        if self._done:
            return b""
        started = time.perf_counter()
        part = self._parts.get()
        self.waited += time.perf_counter() - started
        if isinstance(part, BaseException):
            self._done = True
            raise part
        if part is None:
            self._done = True
            return b""
        return part

    def _write(self) -> None:
        try:
            for batch in self._table.to_batches(max_chunksize=BATCH_ROWS):
                sink = io.BytesIO()
                pacsv.write_csv(batch, sink, _OPTIONS)
                if not self._put(sink.getvalue()):
                    return
            self._put(None)
        except Exception as exc:  # noqa: BLE001 - handed to the reader, which raises it
            self._put(exc)

    def _put(self, part: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._parts.put(part, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False
