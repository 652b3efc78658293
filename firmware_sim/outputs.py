"""Where a simulated tracker's bytes go: a pty, TCP, a file or stdout; and the pacing loop.

The sinks are plain objects with non-blocking ``write(bytes)`` and ``close()``,
so they suit a simple loop and an asyncio task alike (a write never waits on
a slow reader). Like a real serial line, bytes nobody reads are lost: a full
pty buffer, a TCP server with no client or a disconnected TCP client drop
data, counted in ``dropped``.

Sink specs (:func:`open_sink`):

| spec | sink |
|---|---|
| ``-`` | stdout |
| ``pty`` | a new pseudo-terminal; the agent opens ``path`` like a serial port |
| ``file:PATH`` | append to a file |
| ``tcp:PORT``, ``tcp:HOST:PORT`` | a TCP server (default 127.0.0.1) streaming to every client |
| ``connect:HOST:PORT`` | a TCP client that connects (and reconnects) to the agent |

:func:`stream` drives one tracker tick by tick through two sinks (NMEA and the
JSON-lines hardware I/O of :mod:`protocols.hwio`), paced by a :class:`Pacer`
at ``speed`` x real time (0 = as fast as possible).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from firmware_sim.tracker import Tracker
from protocols.hwio import encode_signal


class Sink(Protocol):
    @property
    def description(self) -> str: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class StdoutSink:
    description = "stdout"
    dropped = 0

    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def close(self) -> None:
        sys.stdout.buffer.flush()


class FileSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = path.open("ab")
        self.dropped = 0

    @property
    def description(self) -> str:
        return str(self.path)

    def write(self, data: bytes) -> None:
        self._f.write(data)
        self._f.flush()

    def close(self) -> None:
        self._f.close()


class PtySink:
    """A pseudo-terminal in raw mode; we keep the slave open so the device persists."""

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.path = os.ttyname(self._slave)
        self.dropped = 0

    @property
    def description(self) -> str:
        return self.path

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:  # nobody reads and the line buffer is full
                self.dropped += len(view)
                return
            view = view[n:]

    def close(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class TcpServerSink:
    """Listens; every connected client receives what is written from then on."""

    def __init__(self, host: str, port: int) -> None:
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.2)
        self.host, self.port = host, self._server.getsockname()[1]
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.dropped = 0
        self._thread = threading.Thread(target=self._accept, name="sim-sink-accept", daemon=True)
        self._thread.start()

    @property
    def description(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setblocking(False)
            with self._lock:
                self._clients.append(conn)

    def write(self, data: bytes) -> None:
        with self._lock:
            if not self._clients:
                self.dropped += len(data)
            for conn in list(self._clients):
                try:
                    conn.sendall(data)
                except BlockingIOError:  # a reader that cannot keep up loses data
                    self.dropped += len(data)
                except OSError:
                    self._clients.remove(conn)
                    conn.close()

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        self._thread.join(timeout=1.0)
        with self._lock:
            for conn in self._clients:
                conn.close()
            self._clients.clear()


class TcpClientSink:
    """Connects to a listener (the agent), reconnecting at most once a second."""

    def __init__(
        self, host: str, port: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.host, self.port = host, port
        self._sock: socket.socket | None = None
        self._next_try = 0.0
        self._clock = clock
        self.dropped = 0

    @property
    def description(self) -> str:
        return f"tcp://{self.host}:{self.port} (client)"

    def _connect(self) -> socket.socket | None:
        if self._sock is None and self._clock() >= self._next_try:
            self._next_try = self._clock() + 1.0
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=1.0)
            except OSError:
                return None
        return self._sock

    def write(self, data: bytes) -> None:
        sock = self._connect()
        if sock is None:
            self.dropped += len(data)
            return
        try:
            sock.sendall(data)
        except OSError:
            self.dropped += len(data)
            sock.close()
            self._sock = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def open_sink(spec: str) -> Sink:
    """A sink from its spec (see the module docstring); ValueError explains a bad one."""
    if spec == "-":
        return StdoutSink()
    if spec == "pty":
        return PtySink()
    kind, _, rest = spec.partition(":")
    if kind == "file" and rest:
        return FileSink(Path(rest))
    host, _, port = rest.rpartition(":")
    if kind in ("tcp", "connect") and port.isdigit() and int(port) < 65536:
        if kind == "tcp":
            return TcpServerSink(host or "127.0.0.1", int(port))
        if host:
            return TcpClientSink(host, int(port))
    raise ValueError(
        f"bad sink {spec!r}: use -, pty, file:PATH, tcp:PORT, tcp:HOST:PORT or connect:HOST:PORT"
    )


class Pacer:
    """Holds simulated time to ``speed`` x wall-clock time (``speed`` 0: no waiting)."""

    def __init__(
        self,
        speed: float,
        sim_start: datetime,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.speed = speed
        self.sim_start = sim_start
        self._clock, self._sleep = clock, sleep
        self._wall_start = clock()

    def wait_until(self, sim_t: datetime) -> None:
        if self.speed <= 0:
            return
        target = self._wall_start + (sim_t - self.sim_start).total_seconds() / self.speed
        delay = target - self._clock()
        if delay > 0:
            self._sleep(delay)


@dataclass(slots=True)
class StreamStats:
    ticks: int = 0
    nmea_lines: int = 0
    io_lines: int = 0


def stream(
    tracker: Tracker,
    start: datetime,
    end: datetime,
    nmea: Sink,
    io: Sink | None,
    pacer: Pacer,
    *,
    step: timedelta = timedelta(seconds=1),
) -> StreamStats:
    """Tick ``tracker`` from ``start`` to ``end``; I/O lines go out before that second's NMEA."""
    stats = StreamStats()
    t = start
    while t < end:
        tick = tracker.tick(t)
        pacer.wait_until(t)
        if io is not None and tick.io:
            io.write(b"".join(encode_signal(sig) for sig in tick.io))
        if tick.nmea:
            nmea.write(b"".join(tick.nmea))
        stats.ticks += 1
        stats.nmea_lines += len(tick.nmea)
        stats.io_lines += len(tick.io)
        t += step
    return stats
