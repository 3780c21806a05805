"""Checks every upload and event passes before it is accepted into landing or the event stream.

Each check raises ``Rejected`` with the HTTP status the gateway answers and a reason a person can
act on; the gateway keeps the rejected input in quarantine with that reason.
"""

from __future__ import annotations

import csv
import io
import json
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


def sniff_text(data: bytes) -> None:
    """Refuse content that is not text, whatever its name or declared type says."""
    for magic, what in _MAGIC.items():
        if data.startswith(magic):
            raise Rejected(415, f"content is {what}, not CSV text")
    if b"\x00" in data[:65536]:
        raise Rejected(415, "content has NUL bytes: binary data, not CSV text")


def decode_utf8(data: bytes) -> str:
    try:
        return data.removeprefix(UTF8_BOM).decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Rejected(
            422,
            f"not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})",
        ) from None


def check_header(text: str, contract: SourceContract) -> None:
    first_line = text.split("\n", 1)[0].rstrip("\r")
    header = next(csv.reader([first_line]), [])
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


def read_csv(data: bytes, contract: SourceContract) -> pa.Table:
    """Parse the (already checked) CSV into text columns; ragged rows are refused."""
    try:
        return pacsv.read_csv(
            io.BytesIO(data.removeprefix(UTF8_BOM)),
            read_options=pacsv.ReadOptions(use_threads=True, block_size=8 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=contract.raw_schema(),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise Rejected(422, f"malformed CSV: {str(exc).splitlines()[0]}") from None


def check_required(table: pa.Table, contract: SourceContract) -> None:
    for column in contract.columns:
        if column.required:
            nulls = table.column(column.name).null_count
            if nulls:
                raise Rejected(422, f"{nulls} rows have no {column.name} (required)")


_FORMULA = r"^[=+\-@\t\r]"
# A leading + or - followed only by digits, spaces and ().,- is a number or a phone number
# (e.g. "-12.5", "+55 (11) 91234-5678"), not a formula: payloads need letters or | ! etc.
_INERT_SIGNED = r"^[+-][0-9 ().,\-]*$"
_TRIGGERS = pa.array(["=", "+", "-", "@", "\t", "\r"])


def neutralize_formulas(table: pa.Table) -> tuple[pa.Table, int]:
    """Prefix cells a spreadsheet would run as a formula with ``'``.

    Always for a leading ``= @``, tab or CR; for a leading ``+ -`` unless the cell is inert
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
    text = decode_utf8(data)
    check_header(text, contract)
    table = read_csv(data, contract)
    check_required(table, contract)
    return neutralize_formulas(table)


def parse_events(body: bytes, contract: EventContract) -> list[dict[str, Any]]:
    """A JSON array (or one object) of events, each exactly matching the domain's contract."""
    try:
        decoded = json.loads(decode_utf8(body))
    except json.JSONDecodeError as exc:
        raise Rejected(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    events = decoded if isinstance(decoded, list) else [decoded]
    if not events:
        raise Rejected(422, "no events in the request")
    for index, event in enumerate(events):
        validate_event(event, contract, index)
    return events


def validate_event(event: Any, contract: EventContract, index: int = 0) -> None:
    where = f"event {index}"
    if not isinstance(event, dict):
        raise Rejected(422, f"{where}: must be a JSON object")
    unknown = sorted(set(event) - set(contract.fields))
    if unknown:
        raise Rejected(422, f"{where}: unknown fields {', '.join(unknown)}")
    for name in sorted(contract.required):
        if event.get(name) in (None, ""):
            raise Rejected(422, f"{where}: missing required field {name}")
    for name, expected in contract.fields.items():
        if name in event and not isinstance(event[name], expected):
            raise Rejected(422, f"{where}: field {name} has the wrong type")
