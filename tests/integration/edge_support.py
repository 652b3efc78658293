"""Simulated trackers feeding real edge agent processes, for end-to-end tests."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.localsvc import free_port
from firmware_sim.receiver import Environment, Receiver, StartKind, TrueState


@dataclass
class Epoch:
    time: datetime
    fixed: bool
    delivered: bool
    wall: float


@dataclass
class NmeaFeeder:
    """One simulated receiver on a TCP port, `rate` epochs per wall-clock second.

    GNSS time starts `lead` seconds in the past and advances one second per epoch,
    so it never runs ahead of the wall clock. Records what it emitted and whether a
    client (the agent) was connected to receive it.
    """

    seed: int
    epochs: int
    rate: float = 20.0
    lat: float = 31.20
    lon: float = 121.40
    speed_mps: float = 15.0
    port: int = field(default_factory=free_port)
    log: list[Epoch] = field(default_factory=list)
    accepts: list[float] = field(default_factory=list)  # wall clock of each agent connection
    _client: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._produce, daemon=True).start()

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                if self._client is not None:
                    self._client.close()
                self._client = conn
                self.accepts.append(time.monotonic())

    def _produce(self) -> None:
        rng = random.Random(self.seed)
        rx = Receiver(rng)
        lead = timedelta(seconds=self.epochs + 5)
        t0 = datetime.now(UTC).replace(microsecond=0) - lead
        rx.power_on(t0, StartKind.HOT)
        began = time.monotonic()
        for i in range(self.epochs):
            t = t0 + timedelta(seconds=i)
            dist = self.speed_mps * i
            truth = TrueState(
                time=t, lat=self.lat + dist / 111_320.0, lon=self.lon, alt_m=10.0,
                speed_mps=self.speed_mps, course_deg=0.0, environment=Environment.OPEN,
            )  # fmt: skip
            lines = rx.epoch(truth)
            delivered = False
            with self._lock:
                if self._client is not None:
                    try:
                        self._client.sendall(b"".join(lines))
                        delivered = True
                    except OSError:
                        self._client.close()
                        self._client = None
            self.log.append(Epoch(t, rx.fixed, delivered, time.monotonic()))
            time.sleep(max(0.0, began + (i + 1) / self.rate - time.monotonic()))
        self.done.set()

    def close(self) -> None:
        self.done.set()
        self._server.close()
        with self._lock:
            if self._client is not None:
                self._client.close()


def agent_config(base: Path, device_id: str, feeder_port: int, broker_port: int) -> Path:
    d = base / device_id
    d.mkdir(parents=True, exist_ok=True)
    cfg = d / "edge.toml"
    cfg.write_text(
        f"""kind = "edge"
[device]
id = "{device_id}"
tenant = "acme-finance"
[gnss]
source = "tcp"
host = "127.0.0.1"
port = {feeder_port}
[gate]
max_hdop = 50.0
min_sats = 0
max_jump_kmh = 5000
[reporting]
moving_interval_s = 1
parked_interval_s = 1
batch_max = 20
batch_linger_s = 0.2
[outbox]
path = "{d}/outbox.sqlite3"
[uplink]
host = "127.0.0.1"
port = {broker_port}
tls = false
ack_timeout_s = 3
backoff_min_s = 0.2
backoff_max_s = 2
[trust]
platform_keys = []
token_file = "{d}/token.jwt"
policy_file = "{d}/policy.jwt"
"""
    )
    return cfg


def start_agent(cfg: Path) -> subprocess.Popen[bytes]:
    log = (cfg.parent / "agent.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "cloud.console", "edge", "run", "--config", str(cfg)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_until(cond: object, timeout: float, what: str) -> None:
    assert callable(cond)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def expected_times(feeder: NmeaFeeder, gaps: list[tuple[float, float]]) -> set[datetime]:
    """Fixed epochs delivered to a live agent, outside the wall-clock windows in ``gaps``."""
    return {
        e.time
        for e in feeder.log
        if e.fixed and e.delivered and not any(a <= e.wall <= b for a, b in gaps)
    }


def _sentence(body: str) -> str:
    checksum = 0
    for ch in body:
        checksum ^= ord(ch)
    return f"${body}*{checksum:02X}\r\n"


def nmea_epoch(t: datetime, lat: float, lon: float, speed_mps: float = 0.0) -> str:
    """RMC + GGA for one fixed epoch (northern/eastern hemisphere), checksums included."""
    hms, dmy = t.strftime("%H%M%S") + ".00", t.strftime("%d%m%y")
    la = f"{int(lat):02d}{(lat - int(lat)) * 60:08.5f}"
    lo = f"{int(lon):03d}{(lon - int(lon)) * 60:08.5f}"
    knots = speed_mps / 0.514444
    return _sentence(f"GNRMC,{hms},A,{la},N,{lo},E,{knots:.2f},0.0,{dmy},,,A") + _sentence(
        f"GNGGA,{hms},{la},N,{lo},E,1,12,0.9,20.0,M,0.0,M,,"
    )
