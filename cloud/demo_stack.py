"""The demo's cloud processes: config file, start in order, stop in reverse, no orphans.

Each service is the real command a deployment runs (``vgr cloud ingest``,
``risk run``, ``webhooks dispatch``, ``recovery ack-listener``, ``api
serve``), as its own process with its log in the demo directory.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from cloud.localsvc import free_port
from cloud.localsvc.ports import LOOPBACK, port_accepts

SERVICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ingest", ("cloud", "ingest")),
    ("risk", ("cloud", "risk", "run")),
    ("webhooks", ("cloud", "webhooks", "dispatch")),
    ("acks", ("cloud", "recovery", "ack-listener")),
    ("api", ("cloud", "api", "serve")),
)


@dataclass(frozen=True, slots=True)
class StackPorts:
    api: int
    ingest_metrics: int
    risk_metrics: int
    webhook_metrics: int

    @staticmethod
    def pick(api_port: int) -> StackPorts:
        """``api_port`` if it is free (0: any), and free ports for the metrics endpoints."""
        if api_port == 0 or port_accepts(LOOPBACK, api_port):
            api_port = free_port()
        return StackPorts(api_port, free_port(), free_port(), free_port())


def write_config(path: Path, *, dsn: str, broker: tuple[str, int], ports: StackPorts,
                 signing_key: Path) -> Path:  # fmt: skip
    """The one cloud config every demo service reads (plain http on loopback)."""
    path.write_text(
        f"""# Written by `vgr demo`: every service of the demo stack reads this file.
kind = "cloud"
[database]
dsn = "{dsn}"
pool_max = 8
[mqtt]
host = "{broker[0]}"
port = {broker[1]}
[ingest]
metrics_port = {ports.ingest_metrics}
batch_ms = 100
[risk]
metrics_port = {ports.risk_metrics}
tick_interval_s = 30
[webhooks]
metrics_port = {ports.webhook_metrics}
allow_private_targets = true   # the demo's receiver listens on loopback
poll_interval_s = 1
[api]
host = "127.0.0.1"
port = {ports.api}
cookie_secure = false          # plain http on localhost: the demo only
[registry]
signing_key = "file:{signing_key}"
"""
    )
    return path


@dataclass(slots=True)
class Stack:
    config: Path
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: tuple[str, ...]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloud.console", *argv, "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def start_all(self) -> None:
        for name, argv in SERVICES:
            self.start(name, argv)

    def exited(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM in reverse start order, wait, SIGKILL what is left; close the logs."""
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            with contextlib.suppress(OSError):
                log.close()


def wait_http(url: str, timeout: float, stack: Stack | None = None) -> bool:
    """True once ``url`` answers at all (any HTTP status); False on timeout or a dead service."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - our own loopback URL
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            if stack is not None and stack.exited():
                return False
            time.sleep(0.3)
    return False
