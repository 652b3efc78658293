"""`vgr demo` as a child process for tests: its printed URL and credentials, a clean stop.

Used by ``tests/integration/test_demo.py`` and by the browser tests' stack fixture:
the real stack (private PostgreSQL + TimescaleDB and Mosquitto, migrations,
tenants and users, ingest, risk worker, webhook dispatcher, ack listener,
API) with a small fleet of real edge agents driven by the simulator.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STATUS = re.compile(r"fixes ([\d,]+) from (\d+) trackers\s+alerts (\d+)")
USER = re.compile(r"^\s+(\w+)\s+tenant (\S+)\s+user (\S+)\s+password (\S+)$")


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (the demo's directory)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(f"{proc.name}: {cmd}")
    return found


class Output:
    """A child's stdout, line by line, read on a thread."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._q.put(line)

    def wait_for(self, match: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=1)
            except queue.Empty:
                continue
            self.lines.append(line)
            if match(line):
                return line
        raise AssertionError(f"no {what} within {timeout:.0f} s:\n" + "".join(self.lines[-40:]))

    def drain(self) -> None:
        while True:
            try:
                self.lines.append(self._q.get_nowait())
            except queue.Empty:
                return

    def tail(self, n: int = 40) -> str:
        self.drain()
        return "".join(self.lines[-n:])


@dataclass
class DemoProcess:
    """``vgr demo`` started in ``base``; :meth:`wait_ready` parses the URL and the users."""

    base: Path
    argv: list[str]
    proc: subprocess.Popen[str] | None = None
    out: Output | None = None
    url: str = ""
    users: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def start(self) -> DemoProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cloud.console", "demo", "--port", "0", "--dir",
             str(self.base), *self.argv],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.out = Output(self.proc.stdout)
        return self

    def wait_ready(self, timeout: float = 400) -> None:
        """Until the map URL and the credentials are printed (the fleet is then running)."""
        assert self.out is not None
        line = self.out.wait_for(lambda s: s.strip().startswith("map "), timeout, "map URL")
        self.url = line.split()[-1]
        self.out.wait_for(lambda s: "password" in s and "other-lender" in s, 30, "credentials")
        for s in self.out.lines:
            if m := USER.match(s):
                self.users[(m[1], m[2])] = (m[3], m[4])

    def credentials(self, role: str, tenant: str = "demo-bank") -> tuple[str, str, str]:
        """(tenant, username, password) of the printed user."""
        username, password = self.users[(role, tenant)]
        return tenant, username, password

    def stop(self, timeout: float = 180) -> int:
        """SIGINT (Ctrl-C), as a person stops the demo; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
