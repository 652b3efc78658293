"""Framing: a byte stream from the receiver → candidate NMEA sentence lines.

The first of three layers (framing → :mod:`edge.nmea.sentences` →
:mod:`edge.nmea.assembler`). It knows only where a sentence starts and ends,
never what it says:

* a sentence starts at ``$`` (or ``!``, the encapsulation start) and ends at
  CR, LF or CRLF; the line handed on keeps its start character and has no
  line end (an empty line between CR and LF is no sentence);
* bytes outside a sentence (binary protocols sharing the port, line noise,
  a half sentence after reconnecting) are skipped: each run is counted once
  as ``garbage``; blank lines and whitespace between sentences are not;
* a sentence may hold only printable ASCII; a NUL or any other byte outside
  0x20..0x7E ends it as ``bad_byte`` (the gp-320fw capture has a sentence cut
  off by a run of NULs);
* a start character inside a sentence abandons the unfinished one as
  ``truncated`` and starts anew (receivers that drop bytes glue two
  sentences together); so does the end of the stream (:meth:`Framer.close`);
* a sentence longer than ``max_line_bytes`` (start character included,
  line end excluded) is dropped as ``line_too_long``. NMEA 0183 allows 82
  characters; the default 512 leaves room for vendor extensions.

Pure and incremental: :meth:`Framer.feed` takes chunks of any size, split
anywhere, and returns the complete lines found so far.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

GARBAGE: Final = "garbage"
BAD_BYTE: Final = "bad_byte"
TRUNCATED: Final = "truncated"
LINE_TOO_LONG: Final = "line_too_long"
#: Every reason this layer counts, for metrics that want the full label set.
REASONS: Final = (GARBAGE, BAD_BYTE, TRUNCATED, LINE_TOO_LONG)

DEFAULT_MAX_LINE_BYTES: Final = 512

_STARTS: Final = frozenset(b"$!")
_EOL: Final = frozenset(b"\r\n")
# Whitespace between sentences is framing, not garbage.
_BLANK: Final = frozenset(b"\r\n\t ")


class Framer:
    """Incremental splitter of a receiver's byte stream into sentence lines.

    ``counts`` holds the dropped input by reason (see the module docstring);
    ``lines`` the number of lines handed on.
    """

    def __init__(self, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 2:
            msg = "max_line_bytes must be at least 2"
            raise ValueError(msg)
        self.max_line_bytes = max_line_bytes
        self.counts: Counter[str] = Counter()
        self.lines = 0
        self._buf = bytearray()
        self._in_sentence = False
        self._in_garbage = False
        self._overflowed = False  # inside a too-long sentence: skip to its end

    def feed(self, chunk: bytes) -> list[str]:
        """Consume ``chunk``; return the sentences it completed, in order."""
        out: list[str] = []
        for byte in chunk:
            if self._in_sentence:
                self._sentence_byte(byte, out)
            elif byte in _STARTS:
                self._start(byte)
            elif byte in _BLANK:
                self._in_garbage = False
            elif not self._in_garbage:
                self._in_garbage = True
                self.counts[GARBAGE] += 1
        return out

    def close(self) -> None:
        """End of stream: an unfinished sentence is counted as ``truncated``."""
        if self._in_sentence:
            self._abandon(TRUNCATED)
        self._in_garbage = False

    def _start(self, byte: int) -> None:
        self._in_sentence = True
        self._overflowed = False
        self._buf[:] = bytes((byte,))

    def _abandon(self, reason: str) -> None:
        """Drop the unfinished sentence; before its first comma it was only noise."""
        if self._overflowed:
            pass
        elif 44 in self._buf:  # b","
            self.counts[reason] += 1
            self._in_garbage = False
        elif not self._in_garbage:
            self.counts[GARBAGE] += 1
            self._in_garbage = True
        self._in_sentence = self._overflowed = False
        self._buf.clear()

    def _sentence_byte(self, byte: int, out: list[str]) -> None:
        if byte in _EOL:
            if not self._overflowed:
                out.append(self._buf.decode("ascii"))
                self.lines += 1
            self._in_sentence = self._overflowed = self._in_garbage = False
            self._buf.clear()
        elif byte in _STARTS:
            self._abandon(TRUNCATED)
            self._start(byte)
        elif not 0x20 <= byte <= 0x7E:
            self._abandon(BAD_BYTE)
            # The rest of the broken sentence is garbage, counted with it.
            self._in_garbage = True
        elif not self._overflowed:
            if len(self._buf) >= self.max_line_bytes:
                self.counts[LINE_TOO_LONG] += 1
                self._overflowed = True
                self._buf.clear()
            else:
                self._buf.append(byte)
