"""The demo's fleet: one real edge agent process per tracker, fed over pseudo-terminals.

Like ``vgr sim fleet`` (``firmware_sim.fleet``), but sized for a whole demo on
one machine: agents are started in small batches with progress output (200
Python processes started at once would fight over two cores for a minute),
run as ``python -m edge run`` (the tracker's own entry point, about 20 MB
lighter than the ``vgr`` dispatcher), authorized with the token, policy and
platform key the registry issued. Simulated time runs at the wall clock
(speed 1: the map is live) and starts for each batch as soon as its agents
are up (an agent left without NMEA for minutes would rightly report a GNSS
fault). Stopping ends the trackers, gives the agents a few seconds to flush,
then terminates every agent and waits for it: no orphans.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from firmware_sim.outputs import Pacer, PtySink, stream
from firmware_sim.tracker import Tracker
from firmware_sim.world import World

AGENT_ARGV: tuple[str, ...] = (sys.executable, "-m", "edge", "run")


@dataclass(frozen=True, slots=True)
class Reporting:
    """The agents' ``[reporting]`` intervals (seconds) for the demo."""

    moving_interval_s: float = 10.0
    parked_interval_s: float = 60.0
    chase_interval_s: float = 2.0
    heartbeat_interval_s: float = 60.0


@dataclass(frozen=True, slots=True)
class AgentSpec:
    tracker_id: str
    tenant: str
    token: str
    policy_jws: str


@dataclass(slots=True)
class AgentRun:
    spec: AgentSpec
    run_dir: Path
    nmea: PtySink
    io: PtySink
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    thread: threading.Thread | None = None
    ticks: int = 0
    done: bool = False


def agent_config(run_dir: Path, spec: AgentSpec, nmea: str, io: str, *, broker: tuple[str, int],
                 platform_pub: Path, reporting: Reporting) -> Path:  # fmt: skip
    """Write the agent's token, policy and ``edge.toml``; return the config path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "token.jwt").write_text(spec.token + "\n")
    (run_dir / "policy.jwt").write_text(spec.policy_jws + "\n")
    cfg = run_dir / "edge.toml"
    cfg.write_text(
        f"""kind = "edge"
[device]
id = "{spec.tracker_id}"
tenant = "{spec.tenant}"
[gnss]
source = "pty"
path = "{nmea}"
[io]
source = "pty"
path = "{io}"
[reporting]
moving_interval_s = {reporting.moving_interval_s}
parked_interval_s = {reporting.parked_interval_s}
chase_interval_s = {reporting.chase_interval_s}
heartbeat_interval_s = {reporting.heartbeat_interval_s}
[outbox]
path = "{run_dir}/outbox.sqlite3"
[uplink]
host = "{broker[0]}"
port = {broker[1]}
tls = false
backoff_min_s = 0.5
backoff_max_s = 10
[trust]
platform_keys = ["{platform_pub}"]
token_file = "{run_dir}/token.jwt"
policy_file = "{run_dir}/policy.jwt"
"""
    )
    return cfg


@dataclass(slots=True)
class DemoFleet:
    """Agents first (staggered), then the trackers that feed them, then a clean stop."""

    base_dir: Path
    broker: tuple[str, int]
    platform_pub: Path
    reporting: Reporting = field(default_factory=Reporting)
    batch: int = 10
    batch_pause_s: float = 1.5
    runs: list[AgentRun] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self, specs: Sequence[AgentSpec],
              worlds: Callable[[Sequence[str], datetime], Sequence[World]],
              progress: Callable[[int, int], None] | None = None) -> None:  # fmt: skip
        """Start one agent per spec, ``batch`` at a time, and right behind each batch its
        trackers: ``worlds(tracker_ids, now)`` builds theirs (simulated time from ``now``), so
        every vehicle's story begins when its agent is up and no agent waits without NMEA."""
        for first in range(0, len(specs), self.batch):
            if self._stop.is_set():
                return
            batch = [self._launch(spec) for spec in specs[first : first + self.batch]]
            self._stop.wait(self.batch_pause_s)  # the agents open their ptys
            built = worlds([r.spec.tracker_id for r in batch], datetime.now(UTC))
            by_id = {tid: (w, t) for w in built for tid, t in w.trackers.items()}
            for run in batch:
                world, tracker = by_id[run.spec.tracker_id]
                run.thread = threading.Thread(target=self._drive,
                                              args=(run, tracker, world.start, world.end),
                                              name=f"tracker-{run.spec.tracker_id}",
                                              daemon=True)  # fmt: skip
                run.thread.start()
            if progress is not None:
                progress(len(self.runs), len(specs))

    def _launch(self, spec: AgentSpec) -> AgentRun:
        nmea, io = PtySink(), PtySink()
        run_dir = self.base_dir / spec.tracker_id
        cfg = agent_config(run_dir, spec, nmea.description, io.description, broker=self.broker,
                           platform_pub=self.platform_pub, reporting=self.reporting)  # fmt: skip
        log = (run_dir / "agent.log").open("ab")
        proc = subprocess.Popen([*AGENT_ARGV, "--config", str(cfg)], stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip
        run = AgentRun(spec, run_dir, nmea, io, proc, log)
        self.runs.append(run)
        return run

    def _drive(self, run: AgentRun, tracker: Tracker, start: datetime, end: datetime) -> None:
        pacer = Pacer(1.0, start, sleep=self._pause)
        try:
            t = start
            while t < end and not self._stop.is_set():
                nxt = min(end, t + timedelta(seconds=5))  # short slices: a stop is seen at once
                run.ticks += stream(tracker, t, nxt, run.nmea, run.io, pacer).ticks
                t = nxt
        finally:
            run.done = True

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def alive(self) -> int:
        return sum(1 for r in self.runs if r.proc.poll() is None)

    def ticks(self) -> int:
        return sum(r.ticks for r in self.runs)

    def pids(self) -> list[int]:
        return [r.proc.pid for r in self.runs]

    def request_stop(self) -> None:
        """Safe from a signal handler: the trackers and the starting loop stop soon."""
        self._stop.set()

    def stop(self, drain_s: float = 3.0) -> None:
        """Stop the trackers, let the agents flush for ``drain_s``, terminate and reap them."""
        self._stop.set()
        for run in self.runs:
            if run.thread is not None:
                run.thread.join(timeout=10)
        if self.runs:
            time.sleep(drain_s)
        for run in self.runs:
            if run.proc.poll() is None:
                run.proc.terminate()
        deadline = time.monotonic() + 20
        for run in self.runs:
            try:
                run.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()
            run.nmea.close()
            run.io.close()
            with contextlib.suppress(OSError):
                run.log.close()
