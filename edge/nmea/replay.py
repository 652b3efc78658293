"""Replay a receiver capture through the three layers: bytes → lines → updates → records.

A capture is what the receiver sent, byte for byte, optionally preceded by
``#`` comment lines (the GPSD regression logs' provenance header). Comment
lines are skipped wherever a line starts with ``#``; a sentence never does.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from edge.nmea.assembler import Assembler, GnssFix
from edge.nmea.framing import DEFAULT_MAX_LINE_BYTES, Framer
from edge.nmea.sentences import SentenceParser

CHUNK_BYTES = 4096


class CommentFilter:
    """Drops lines that start with ``#`` from a byte stream, incrementally."""

    def __init__(self) -> None:
        self._at_line_start = True
        self._in_comment = False

    def feed(self, chunk: bytes) -> bytes:
        out = bytearray()
        for byte in chunk:
            if self._in_comment:
                if byte == 0x0A:  # \n ends the comment
                    self._in_comment = False
                    self._at_line_start = True
                continue
            if self._at_line_start and byte == 0x23:  # '#'
                self._in_comment = True
                continue
            out.append(byte)
            self._at_line_start = byte in (0x0A, 0x0D)
        return bytes(out)


@dataclass
class Pipeline:
    """Framing, parsing and assembly wired together, with every layer's counts."""

    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    comments: CommentFilter = field(default_factory=CommentFilter)
    framer: Framer = field(init=False)
    parser: SentenceParser = field(default_factory=SentenceParser)
    assembler: Assembler = field(default_factory=Assembler)

    def __post_init__(self) -> None:
        self.framer = Framer(max_line_bytes=self.max_line_bytes)

    def feed(self, chunk: bytes) -> list[GnssFix]:
        out: list[GnssFix] = []
        for line in self.framer.feed(self.comments.feed(chunk)):
            update = self.parser.parse(line)
            if update is not None:
                out.extend(self.assembler.push(update))
        return out

    def close(self) -> list[GnssFix]:
        self.framer.close()
        return self.assembler.flush()

    def rejected(self) -> Counter[str]:
        """Everything dropped, by reason, over all three layers."""
        return self.framer.counts + self.parser.counts + self.assembler.counts


def replay(chunks: Iterable[bytes], pipeline: Pipeline | None = None) -> Iterator[GnssFix]:
    """Records of a capture, in order; pass ``pipeline`` to read its counts after."""
    p = pipeline if pipeline is not None else Pipeline()
    for chunk in chunks:
        yield from p.feed(chunk)
    yield from p.close()


def read_chunks(stream: BinaryIO, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


def iso_time(t: datetime) -> str:
    """ISO 8601 UTC with ``Z``, to the millisecond, as GPSD writes it."""
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_json(fix: GnssFix) -> dict[str, Any]:
    """The replay's JSON record: time and mode always, the rest with a fix."""
    out: dict[str, Any] = {"time": iso_time(fix.time), "mode": fix.mode}
    if fix.fixed:
        out.update(
            lat=fix.lat,
            lon=fix.lon,
            alt=fix.alt_m,
            speed=fix.speed_mps,
            course=fix.course_deg,
            hdop=fix.hdop,
            sats=fix.sats,
        )
    return out


def dumps(fix: GnssFix) -> str:
    return json.dumps(to_json(fix), separators=(",", ":"))
