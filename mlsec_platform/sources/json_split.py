"""A JSON array cut into the text of its elements as its bytes arrive.

An event batch is a JSON array of objects (or one object). To check it without ever holding
its parsed form whole, the gateway cuts it into the text of each element as blocks arrive and
parses each element on its own. The splitter reads only what it needs to find where an element
ends: strings and their escapes, nesting depth, and the commas, brackets and whitespace
between elements, which it checks strictly (a missing value, a trailing comma, an unclosed
array, anything after it). Everything else is the parser's to check, element by element: a
body whose elements all parse is a valid JSON array of exactly those elements.

Memory is what arrived of the element being read (at most ``max_part_bytes``) and the block.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: JSON's whitespace, and nothing else (``bytes.strip()`` would also take \x0b and \x0c).
WHITESPACE = b" \t\r\n"
UTF8_BOM = b"\xef\xbb\xbf"
#: The deepest nesting the parsers accept (orjson's limit), the outer array included.
MAX_DEPTH = 1024

_OPEN, _CLOSE, _OPEN_OBJECT, _CLOSE_OBJECT, _COMMA, _QUOTE = b'[]{},"'
#: A string (closed, or still open where the bytes end) or one structural byte.
_TOKEN = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(")?|[\[\]{},]', re.S)
#: The usual element in one match: an object without nested objects or arrays (strings may
#: hold any bracket), its whitespace and the comma or bracket after it.
_FLAT = re.compile(
    rb'[ \t\r\n]*+(\{[^{}\[\]"]*+(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"[^{}\[\]"]*+)*+\})'
    rb"[ \t\r\n]*+([,\]])",
    re.S,
)
_SPACE = re.compile(rb"[ \t\r\n]*+")


class SplitError(ValueError):
    """The bytes are not a JSON array (or one value): what is wrong and where."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"{message} at offset {offset}")
        self.offset = offset
        self.message = message


class PartTooLarge(SplitError):
    """An element longer than the splitter may hold."""

    def __init__(self, offset: int, index: int, limit: int) -> None:
        super().__init__(offset, f"element {index} is longer than {limit} bytes")
        self.index = index
        self.limit = limit


class Part(NamedTuple):  # a tuple: made once per event, it must cost little
    """One element: its index, where its text starts in the body, and its text."""

    index: int
    offset: int
    text: bytes


class _Phase:
    START = "before the first value"
    OPENED = "after '['"
    ITEMS = "in the array"
    AFTER = "after the array"
    SINGLE = "in a value that is not an array"


class JsonSplitter:
    """Feed it the body's blocks in order; each call returns the elements completed so far."""

    def __init__(self, max_part_bytes: int | None = None) -> None:
        self.max_part_bytes = max_part_bytes
        self.count = 0  # elements found so far
        self.is_array: bool | None = None  # known once the first value begins
        self._buf = bytearray()
        self._base = 0  # where _buf[0] is in the body
        self._pos = 0  # where reading goes on, in _buf
        self._start = 0  # where the element being read starts, in _buf
        self._depth = 0  # nesting inside that element
        self._phase = _Phase.START

    def feed(self, block: bytes) -> list[Part]:
        """The elements that ``block`` completes; raises :class:`SplitError`."""
        self._buf += block
        parts: list[Part] = []
        self._scan(parts, final=False)
        self._forget_read()
        return parts

    def finish(self) -> list[Part]:
        """The body is complete: its last element; raises :class:`SplitError` when the
        array is not closed or there was no value at all."""
        parts: list[Part] = []
        self._scan(parts, final=True)
        end = self._base + len(self._buf)
        if self._phase is _Phase.SINGLE:
            self._emit(parts, self._start, len(self._buf))
        elif self._phase is _Phase.START:
            raise SplitError(end, "no JSON value")
        elif self._phase is not _Phase.AFTER:
            raise SplitError(end, "the array is not closed")
        self._buf = bytearray()
        return parts

    def _scan(self, parts: list[Part], final: bool) -> None:
        buf = self._buf
        while True:
            phase = self._phase
            if phase is _Phase.START:
                if not self._begin(final):
                    return
            elif phase is _Phase.OPENED:
                pos = _SPACE.match(buf, self._pos).end()
                if pos == len(buf):
                    self._pos = pos
                    return
                empty = buf[pos] == _CLOSE
                self._phase = _Phase.AFTER if empty else _Phase.ITEMS
                self._pos = self._start = pos + 1 if empty else pos
            elif phase is _Phase.ITEMS:
                if not self._scan_items(parts):
                    return
            elif phase is _Phase.AFTER:
                pos = _SPACE.match(buf, self._pos).end()
                if pos < len(buf):
                    raise SplitError(self._base + pos, "data after the end of the array")
                self._pos = pos
                return
            else:  # a single value: all that follows is its text, parsed whole at the end
                self._pos = len(buf)
                return

    def _begin(self, final: bool) -> bool:
        """Find the first value: '[' starts an array, anything else is a single value."""
        buf, pos = self._buf, self._pos
        if self._base + pos == 0:  # a byte order mark may start the body
            if not final and len(buf) < len(UTF8_BOM) and UTF8_BOM.startswith(buf):
                return False
            if buf.startswith(UTF8_BOM):
                pos = len(UTF8_BOM)
        pos = _SPACE.match(buf, pos).end()
        self._pos = pos
        if pos == len(buf):
            return False
        self.is_array = buf[pos] == _OPEN
        if self.is_array:
            self._phase, self._pos = _Phase.OPENED, pos + 1
        else:
            self._phase, self._start = _Phase.SINGLE, pos
        return True

    def _scan_items(self, parts: list[Part]) -> bool:
        """Read elements up to where the bytes end; True once the array is closed."""
        buf, base, end = self._buf, self._base, len(self._buf)
        pos, depth, start = self._pos, self._depth, self._start
        flat, token = _FLAT.match, _TOKEN.search
        try:
            while True:
                if depth == 0 and pos == start:  # at an element's start
                    found = flat(buf, pos)
                    if found is not None:  # its bounds are exact: no stripping
                        first, pos = found.start(1), found.end()
                        self._check_size(base + first, pos - 1 - first)
                        parts.append(Part(self.count, base + first, found.group(1)))
                        self.count += 1
                        start = pos
                        if buf[pos - 1] == _CLOSE:
                            self._phase = _Phase.AFTER
                            return True
                        continue
                    pos = start = _SPACE.match(buf, pos).end()
                found = token(buf, pos)
                if found is None:
                    pos = end
                    return False
                at = found.start()
                byte = buf[at]
                if byte == _QUOTE:
                    if found.group(1) is None:  # open where the bytes end: read it again
                        pos = at
                        return False
                    pos = found.end()
                    continue
                pos = at + 1
                if byte in (_OPEN, _OPEN_OBJECT):
                    depth += 1
                    if depth >= MAX_DEPTH:
                        raise SplitError(base + at, f"nesting deeper than {MAX_DEPTH}")
                elif depth:
                    if byte != _COMMA:
                        depth -= 1
                elif byte == _CLOSE_OBJECT:
                    raise SplitError(base + at, "'}' closes nothing")
                else:  # a comma or the closing bracket: the element ends here
                    if at == start:
                        raise SplitError(base + at, f"a value is missing before '{chr(byte)}'")
                    self._emit(parts, start, at)
                    start = pos
                    if byte == _CLOSE:
                        self._phase = _Phase.AFTER
                        return True
        finally:
            self._pos, self._depth, self._start = pos, depth, start

    def _emit(self, parts: list[Part], start: int, end: int) -> None:
        """The element from ``start`` (its first byte) up to ``end`` (its separator); what
        counts against the limit is that span, as :meth:`_forget_read` counts it."""
        self._check_size(self._base + start, end - start)
        text = bytes(self._buf[start:end])
        stripped = text.lstrip(WHITESPACE)
        offset = self._base + start + len(text) - len(stripped)
        parts.append(Part(self.count, offset, stripped.rstrip(WHITESPACE)))
        self.count += 1

    def _check_size(self, offset: int, size: int) -> None:
        if self.max_part_bytes is not None and size > self.max_part_bytes:
            raise PartTooLarge(offset, self.count, self.max_part_bytes)

    def _forget_read(self) -> None:
        """Drop what is read; keep the element being read, within its limit."""
        reading = self._phase in (_Phase.ITEMS, _Phase.SINGLE)
        done = self._start if reading else self._pos
        if done:
            del self._buf[:done]
            self._base += done
            self._pos -= done
            self._start -= done
        if reading:
            self._check_size(self._base + self._start, len(self._buf) - self._start)


def split(body: bytes, max_part_bytes: int | None = None) -> list[bytes]:
    """The text of each element of ``body`` (a JSON array, or one value: its text)."""
    splitter = JsonSplitter(max_part_bytes)
    return [part.text for part in splitter.feed(body) + splitter.finish()]
