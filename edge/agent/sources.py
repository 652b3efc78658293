"""Byte streams the agent reads: serial port, pty, TCP, file or stdin.

Each source is an async iterator of raw chunks. Serial ports, ptys and TCP
peers that go away are reopened with jittered backoff (a receiver that is
unplugged and plugged back is normal on a tracker); a file or stdin ends at
EOF. Framing and parsing happen downstream, never here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

SourceKind = Literal["serial", "pty", "tcp", "file", "stdin"]
CHUNK = 4096


@dataclass(frozen=True, slots=True)
class SourceSpec:
    kind: SourceKind
    path: str | None = None
    baudrate: int = 9600
    host: str = "127.0.0.1"
    port: int = 0
    retry_max_s: float = 10.0

    def describe(self) -> str:
        if self.kind == "tcp":
            return f"tcp://{self.host}:{self.port}"
        return f"{self.kind}:{self.path or '-'}"


async def _read_all(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        chunk = await reader.read(CHUNK)
        if not chunk:
            return
        yield chunk


async def _open(spec: SourceSpec) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Reader and its writer: the writer must stay referenced, or its ``__del__``
    closes the transport under the reader (Python 3.11+)."""
    if spec.kind in ("serial", "pty"):
        if not spec.path:
            msg = f"{spec.kind} source needs a path"
            raise ValueError(msg)
        import serial_asyncio  # only trackers reading a serial port or pty pay for pyserial

        reader, writer = await serial_asyncio.open_serial_connection(
            url=spec.path, baudrate=spec.baudrate
        )
        return reader, writer
    if spec.kind == "tcp":
        return await asyncio.open_connection(spec.host, spec.port)
    msg = f"not a reopenable source: {spec.kind}"
    raise ValueError(msg)


async def stream(spec: SourceSpec) -> AsyncIterator[bytes]:
    """Chunks from the source; reopens serial/pty/TCP sources until cancelled."""
    if spec.kind == "file":
        if not spec.path:
            msg = "file source needs a path"
            raise ValueError(msg)
        fh = await asyncio.to_thread(Path(spec.path).open, "rb")
        try:
            while chunk := await asyncio.to_thread(fh.read, CHUNK):
                yield chunk
        finally:
            fh.close()
        return
    if spec.kind == "stdin":
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        async for chunk in _read_all(reader):
            yield chunk
        return
    backoff = 0.2
    while True:
        try:
            reader, writer = await _open(spec)
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValueError) and "needs a path" in str(exc):
                raise
            log.warning("cannot open %s (%s); retrying", spec.describe(), exc)
            await asyncio.sleep(backoff * random.uniform(0.5, 1.5))  # noqa: S311
            backoff = min(backoff * 2, spec.retry_max_s)
            continue
        log.info("reading %s", spec.describe())
        backoff = 0.2
        try:
            async for chunk in _read_all(reader):
                yield chunk
        except OSError as exc:
            log.warning("%s failed (%s); reopening", spec.describe(), exc)
        finally:
            writer.close()
        await asyncio.sleep(backoff)
