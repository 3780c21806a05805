"""The file checks of ``validation.py`` run over a stream, so an upload is never held whole.

An upload arrives in blocks: :meth:`FileStream.feed` runs the byte checks on each block as it
comes (what the content is, a NUL anywhere, UTF-8, the header), so a bad body is refused
without reading the rest of it. Once the body is complete (in a spool file, not in memory),
:meth:`FileStream.finish` parses it in batches of ``BATCH_BYTES``: ragged rows, required
columns, formula cells. Only when a cell needs neutralizing is the file written again, batch
by batch, to a second spool. Memory is a few blocks, whatever the size of the upload.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.csv as pacsv

from mlsec_platform.catalog.sources import SourceContract
from mlsec_platform.sources.validation import (
    CSV_PARSE_OPTIONS,
    UTF8_BOM,
    Rejected,
    Utf8Stream,
    check_header,
    csv_convert_options,
    neutralize_formulas,
    refuse_nul,
    sniff_text,
)

#: Bytes of CSV parsed at a time, in this thread (no read-ahead): the reader holds one or two.
BATCH_BYTES = 1 << 20
#: The first bytes sniffed for what the content is (magic numbers).
SNIFF_BYTES = 64 * 1024
#: A header line longer than this cannot be any contract's: it is refused without reading on
#: (the csv module's own field limit, 128 KiB, is above it: the whole-body check refuses it too).
MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class CheckedFile:
    """A file that passed every check: its rows, how many cells were neutralized, and the
    file to store (the spool itself, or the neutralized copy)."""

    rows: int
    neutralized: int
    stored: BinaryIO


class FileStream:
    """The checks of one CSV upload of ``contract``, fed block by block."""

    def __init__(self, contract: SourceContract) -> None:
        self.contract = contract
        self._utf8 = Utf8Stream()  # also where in the body a block is
        self._head = bytearray()  # the first line, until the header is checked
        self._header_checked = False
        self._blank = True  # nothing but whitespace so far
        self._start: bytearray | None = bytearray()  # the first bytes, until sniffed

    def feed(self, block: bytes) -> None:
        """Check the next block of the body; raises :class:`Rejected`."""
        if self._start is not None:
            # What the content is shows in its first bytes: gather them before any check.
            self._start += block
            if len(self._start) < SNIFF_BYTES:
                return
            block, self._start = bytes(self._start), None
            sniff_text(block)
        if block:
            self._check(block)

    def _check(self, block: bytes) -> None:
        refuse_nul(block, self._utf8.offset, self._utf8.lines)
        self._utf8.feed(block)
        self._blank = self._blank and not block.strip()
        if not self._header_checked and not self._blank:
            self._head += block[: MAX_HEADER_BYTES + 1 - len(self._head)]
            # CR alone ends a line too, for the parser and for the header check.
            if b"\n" in self._head or b"\r" in self._head:
                self._check_header()
            elif len(self._head) > MAX_HEADER_BYTES:
                raise Rejected(
                    422,
                    f"header of contract {self.contract.name} is not a CSV line: no line end "
                    f"in its first {MAX_HEADER_BYTES} bytes",
                )

    def _check_header(self) -> None:
        head = bytes(self._head).removeprefix(UTF8_BOM)
        check_header(head.decode("utf-8", errors="replace"), self.contract)  # its first line
        self._header_checked = True
        self._head = bytearray()

    def finish(self, spool: BinaryIO) -> CheckedFile:
        """The body is complete in ``spool``: the last byte checks, then its rows in batches."""
        if self._start is not None:  # a body shorter than SNIFF_BYTES
            start, self._start = bytes(self._start), None
            sniff_text(start)
            if start:
                self._check(start)
        self._utf8.finish()
        if self._blank:
            raise Rejected(422, "empty upload")
        if not self._header_checked:
            self._check_header()
        rows, neutralized, missing = 0, 0, dict.fromkeys(self._required(), 0)
        for batch in _batches(spool, self.contract):
            rows += batch.num_rows
            for name in missing:
                missing[name] += batch.column(name).null_count
            neutralized += neutralize_formulas(pa.Table.from_batches([batch]))[1]
        for name, nulls in missing.items():
            if nulls:
                raise Rejected(422, f"{nulls} rows have no {name} (required)")
        if not neutralized:
            return CheckedFile(rows, 0, spool)
        return CheckedFile(rows, neutralized, _neutralized_copy(spool, self.contract))

    def _required(self) -> list[str]:
        return [column.name for column in self.contract.columns if column.required]


def _batches(spool: BinaryIO, contract: SourceContract):
    """The spool's rows as text columns, ``BATCH_BYTES`` of CSV at a time."""
    spool.seek(0)
    try:
        reader = pacsv.open_csv(
            spool,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=BATCH_BYTES),
            parse_options=CSV_PARSE_OPTIONS,  # the options of the whole-body parse
            convert_options=csv_convert_options(contract),
        )
        yield from reader
    except pa.ArrowInvalid as exc:
        raise Rejected(422, f"malformed CSV: {str(exc).splitlines()[0]}") from None


def _neutralized_copy(spool: BinaryIO, contract: SourceContract) -> BinaryIO:
    """The spool written again with its formula cells neutralized, batch by batch."""
    # Returned open: the caller stores it, then closes it (which frees the disk).
    copy = tempfile.TemporaryFile(prefix="mlsec-neutralized-")  # noqa: SIM115
    try:
        writer = None
        for batch in _batches(spool, contract):
            table, _ = neutralize_formulas(pa.Table.from_batches([batch]))
            if writer is None:
                writer = pacsv.CSVWriter(copy, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
    except BaseException:
        copy.close()
        raise
    copy.seek(0)
    return copy
