"""Checks every upload and event passes before it is accepted into landing or the event stream.

Each check raises ``Rejected`` with the HTTP status the gateway answers and a reason a person can
act on; the gateway keeps the rejected input in quarantine with that reason. Nothing a caller
sends may raise anything else: every check is a pure function of bytes, rows or events, so a
streaming reader can run the same checks chunk by chunk (``refuse_nul`` on each chunk with its
offset, ``sniff_text`` on the first, the table checks on each parsed batch).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mlsec_platform.catalog.sources import EventContract, SourceContract
from mlsec_platform.errors import MlsecError


class Rejected(MlsecError):
    """Input refused at the door, with the status to answer and the reason to give."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = self.http_status = status
        self.reason = reason


# Magic numbers of formats that are often renamed to .csv by mistake (or on purpose).
_MAGIC = {
    b"PK\x03\x04": "a zip archive (xlsx, docx, ...)",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "gzip-compressed data",
    b"\x7fELF": "an ELF executable",
    b"MZ": "a Windows executable",
    b"\xd0\xcf\x11\xe0": "an OLE document (xls, doc)",
    b"PAR1": "a Parquet file",
}
UTF8_BOM = b"\xef\xbb\xbf"


def sniff_text(head: bytes) -> None:
    """Refuse content whose first bytes say it is a known binary format, whatever its name or
    declared type says (only the start of a body is needed)."""
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise Rejected(415, f"content is {what}, not CSV text")


def refuse_nul(chunk: bytes, offset: int = 0, lines_before: int = 0) -> None:
    """Refuse a NUL byte anywhere: text never holds one, and a NUL deep in a file is binary
    data all the same (it would land in Raw). ``offset`` and ``lines_before`` place a chunk
    of a longer body, for the reason."""
    at = chunk.find(b"\x00")
    if at >= 0:
        line = lines_before + chunk.count(b"\n", 0, at) + 1
        raise Rejected(
            415,
            f"content has a NUL byte at offset {offset + at} (line {line}): "
            "binary data, not CSV text",
        )


def decode_utf8(data: bytes) -> str:
    try:
        return data.removeprefix(UTF8_BOM).decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Rejected(
            422,
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})",
        ) from None


class Utf8Stream:
    """UTF-8 checked block by block as a body arrives; a refusal names the bad byte's offset
    and line in the whole body."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.offset = 0  # bytes fed so far
        self.lines = 0  # newlines fed so far

    def feed(self, block: bytes) -> None:
        pending = self._decoder.getstate()[0]  # an incomplete character from the last block
        data = block.removeprefix(UTF8_BOM) if self.offset == 0 else block
        try:
            self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            joined = pending + data
            offset = self.offset - len(pending) + (len(block) - len(data)) + exc.start
            line = self.lines + joined[: exc.start].count(b"\n") + 1
            raise Rejected(
                422,
                f"not valid UTF-8: byte 0x{joined[exc.start]:02x} at offset {offset} (line {line})",
            ) from None
        self.offset += len(block)
        self.lines += block.count(b"\n")

    def finish(self) -> None:
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise Rejected(
                422, f"not valid UTF-8: the body ends inside a character (offset {self.offset})"
            ) from None


def header_line(text: str) -> str:
    """The first line: it ends at the first LF or CR, as the CSV parser ends it (CR alone
    is a line ending too)."""
    ends = [at for at in (text.find("\n"), text.find("\r")) if at >= 0]
    return text[: min(ends)] if ends else text


def check_header(text: str, contract: SourceContract) -> None:
    try:
        header = next(csv.reader([header_line(text)], strict=True), [])
    except csv.Error as exc:  # an unclosed quote, a field over the csv module's limit
        raise Rejected(
            422, f"header of contract {contract.name} is not a CSV line: {exc}"
        ) from None
    expected = contract.column_names
    if header == expected:
        return
    missing = [c for c in expected if c not in header]
    unexpected = [c for c in header if c not in expected]
    details = []
    if missing:
        details.append(f"missing {', '.join(missing)}")
    if unexpected:
        details.append(f"unexpected {', '.join(unexpected)}")
    if not details:
        details.append("columns out of order")
    raise Rejected(
        422,
        f"header does not match contract {contract.name} v{contract.version}: "
        + "; ".join(details),
    )


#: How a CSV body is parsed, whole (``read_csv``) or streamed (``file_stream``): the same.
CSV_PARSE_OPTIONS = pacsv.ParseOptions(newlines_in_values=True)


def csv_convert_options(contract: SourceContract) -> pacsv.ConvertOptions:
    """Text columns of ``contract``. Raw holds what was sent: only an empty field is null,
    never a word like NA, NULL, nan or #N/A (Arrow's default null words), quoted or not."""
    return pacsv.ConvertOptions(
        column_types=contract.raw_schema(),
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )


def read_csv(data: bytes, contract: SourceContract) -> pa.Table:
    """Parse the (already checked) CSV into text columns; ragged rows are refused."""
    try:
        return pacsv.read_csv(
            io.BytesIO(data.removeprefix(UTF8_BOM)),
            read_options=pacsv.ReadOptions(use_threads=True, block_size=8 << 20),
            parse_options=CSV_PARSE_OPTIONS,
            convert_options=csv_convert_options(contract),
        )
    except pa.ArrowInvalid as exc:
        raise Rejected(422, f"malformed CSV: {str(exc).splitlines()[0]}") from None


def check_required(table: pa.Table, contract: SourceContract) -> None:
    for column in contract.columns:
        if column.required:
            nulls = table.column(column.name).null_count
            if nulls:
                raise Rejected(422, f"{nulls} rows have no {column.name} (required)")


def _invisible_leads() -> str:
    """Characters a spreadsheet skips before a formula sign: whitespace (NBSP, ideographic
    space...) and format characters (zero-width space and joiners, word joiner, BOM, bidi)."""
    return "".join(
        c for c in map(chr, range(0x10000)) if c.isspace() or unicodedata.category(c) == "Cf"
    )


_LEADS = _invisible_leads()
_SIGNS = "=+-@\uff1d\uff0b\uff0d\uff20"  # and their fullwidth forms: ＝ ＋ － ＠
_CLASS = "".join(f"\\x{{{ord(c):04x}}}" for c in _LEADS)
_SIGN_CLASS = "".join(f"\\x{{{ord(c):04x}}}" for c in _SIGNS)
#: A leading tab or CR always; else any signs after invisible characters.
_FORMULA = rf"^(?:[\t\r]|[{_CLASS}]*[{_SIGN_CLASS}])"
# A leading + or - (after spaces) followed only by digits, spaces and ().,- is a number or a
# phone number (e.g. "-12.5", "+55 (11) 91234-5678"), not a formula: payloads need letters or
# | ! etc.
_INERT_SIGNED = r"^ *[+-][0-9 ().,\-]*$"
#: First characters that make a column pay for the regexes.
_TRIGGERS = pa.array(sorted(set(_LEADS) | set(_SIGNS)))


def neutralize_formulas(table: pa.Table) -> tuple[pa.Table, int]:
    """Prefix cells a spreadsheet would run as a formula with ``'``.

    Always for a leading tab or CR, or ``= @`` (also fullwidth, also after whitespace, NBSP
    or zero-width characters, which spreadsheets skip); for ``+ -`` unless the cell is inert
    (numbers, phone numbers). Only columns with such a first character pay for the regexes.
    """
    changed = 0
    columns = []
    for column in table.columns:
        first = pc.utf8_slice_codeunits(column, 0, 1)
        if not pc.any(pc.is_in(first, value_set=_TRIGGERS)).as_py():
            columns.append(column)
            continue
        formula = pc.fill_null(
            pc.and_(
                pc.match_substring_regex(column, _FORMULA),
                pc.invert(pc.match_substring_regex(column, _INERT_SIGNED)),
            ),
            False,
        )
        hits = pc.sum(formula).as_py() or 0
        if hits:
            column = pc.if_else(formula, pc.binary_join_element_wise("'", column, ""), column)
            changed += hits
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema), changed


def validate_file(data: bytes, contract: SourceContract) -> tuple[pa.Table, int]:
    """All file checks in order; returns the parsed table and how many cells were neutralized."""
    if not data.strip():
        raise Rejected(422, "empty upload")
    sniff_text(data)
    refuse_nul(data)
    text = decode_utf8(data)
    check_header(text, contract)
    table = read_csv(data, contract)
    check_required(table, contract)
    return neutralize_formulas(table)


def validate_event(event: Any, contract: EventContract, index: int = 0) -> None:
    where = f"event {index}"
    if not isinstance(event, dict):
        raise Rejected(422, f"{where}: must be a JSON object")
    unknown = sorted(set(event) - set(contract.fields))
    if unknown:
        raise Rejected(422, f"{where}: unknown fields {', '.join(escaped(u) for u in unknown)}")
    for name in sorted(contract.required):
        if event.get(name) in (None, ""):
            raise Rejected(422, f"{where}: missing required field {name}")
    for name, expected in contract.fields.items():
        if name in event and not isinstance(event[name], expected):
            raise Rejected(422, f"{where}: field {name} has the wrong type")
    check_event_id(event["event_id"], where)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: An id is a key (of the stream's duplicate window, of Silver events), not content: a long
#: one is refused rather than sent as a message-id header the size of a payload.
MAX_EVENT_ID_BYTES = 1024


def check_event_id(event_id: str, where: str) -> None:
    """An event id travels as the ``Nats-Msg-Id`` header, which the NATS client strips and
    whose CR/LF it rewrites: ids that differ only there would collapse into one message id
    (the later event dropped as a duplicate). Such ids are refused, never silently merged."""
    if event_id != event_id.strip():
        raise Rejected(
            422, f"{where}: event_id {quoted(event_id)} has leading or trailing whitespace"
        )
    if _CONTROL.search(event_id):
        raise Rejected(422, f"{where}: event_id {quoted(event_id)} has a control character")
    if _utf8_size(event_id) > MAX_EVENT_ID_BYTES:
        raise Rejected(
            422, f"{where}: event_id {quoted(event_id)} is longer than {MAX_EVENT_ID_BYTES} bytes"
        )


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))  # surrogates: encode_event's


def escaped(text: str, limit: int = 80) -> str:
    """Caller text as a reason quotes it: ASCII with escapes (no NUL, CR or LF reaches a
    reason or the audit log), at most ``limit`` characters and an ellipsis."""
    shown = ascii(text[:limit])[1:-1]
    return shown[:limit] + "..." if len(shown) > limit or len(text) > limit else shown


def quoted(text: str) -> str:
    """Caller text quoted in a reason, escaped and bounded as by :func:`escaped`."""
    return f"'{escaped(text)}'"
