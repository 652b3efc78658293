"""The fleet runner: N simulated trackers, each driving a real edge agent process.

Every tracker gets two pseudo-terminals (NMEA and hardware I/O, as a serial
port and a GPIO shim would look to the agent), its own agent config and
outbox, and an ``vgr edge run`` process. The trackers are stepped on threads,
paced at ``speed`` x real time. Scenarios are moved to the present by whole
days so GNSS time never runs ahead of the wall clock (the agent's gate and
the cloud's plausibility check would rightly refuse fixes from the future).
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from firmware_sim.outputs import Pacer, PtySink, stream
from firmware_sim.scenarios import Scenario, build, shifted
from firmware_sim.world import World

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FleetPlan:
    scenarios: list[Scenario]
    broker_host: str
    broker_port: int
    base_dir: Path
    tenant: str = "demo-bank"
    speed: float = 1.0
    limit: timedelta | None = None  # run at most this much simulated time
    agent_argv: tuple[str, ...] = (sys.executable, "-m", "cloud.console", "edge", "run")
    reporting: dict[str, float] = field(default_factory=dict)  # [reporting] overrides


@dataclass(slots=True)
class TrackerRun:
    device_id: str
    vehicle_id: str
    scenario: str
    config: Path
    nmea: PtySink
    io: PtySink
    agent: subprocess.Popen[bytes] | None = None
    thread: threading.Thread | None = None
    ticks: int = 0
    done: bool = False


@dataclass(slots=True)
class FleetStatus:
    trackers: int
    agents_alive: int
    finished: int
    sim_time: datetime | None
    lines: int


def place_in_time(s: Scenario, speed: float, now: datetime) -> Scenario:
    """Shift ``s`` by whole days so that, paced at ``speed``, it never runs ahead of ``now``."""
    duration = s.end - s.start
    lag = duration * (1 - 1 / speed) if speed > 1 else timedelta(0)
    latest_start = now - lag
    days = math.floor((latest_start - s.start) / timedelta(days=1))
    return shifted(s, days)


def _agent_config(run_dir: Path, device_id: str, tenant: str, plan: FleetPlan,
                  nmea: str, io: str) -> Path:  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    reporting = "".join(f"{k} = {v}\n" for k, v in plan.reporting.items())
    cfg = run_dir / "edge.toml"
    cfg.write_text(
        f"""kind = "edge"
[device]
id = "{device_id}"
tenant = "{tenant}"
[gnss]
source = "pty"
path = "{nmea}"
[io]
source = "pty"
path = "{io}"
[reporting]
{reporting}[outbox]
path = "{run_dir}/outbox.sqlite3"
[uplink]
host = "{plan.broker_host}"
port = {plan.broker_port}
tls = false
backoff_min_s = 0.5
backoff_max_s = 10
[trust]
platform_keys = []
token_file = "{run_dir}/token.jwt"
policy_file = "{run_dir}/policy.jwt"
"""
    )
    return cfg


class Fleet:
    def __init__(self, plan: FleetPlan) -> None:
        self.plan = plan
        now = datetime.now(UTC)
        self.worlds: list[World] = [
            build(place_in_time(s, plan.speed, now)) for s in plan.scenarios
        ]
        self.runs: list[TrackerRun] = []
        self._stop = threading.Event()
        self._sim_time: datetime | None = None

    @property
    def device_ids(self) -> list[str]:
        return [tid for w in self.worlds for tid in w.trackers]

    def start(self) -> None:
        for world in self.worlds:
            for tid, tracker in world.trackers.items():
                nmea, io = PtySink(), PtySink()
                run_dir = self.plan.base_dir / tid
                cfg = _agent_config(run_dir, tid, self.plan.tenant, self.plan,
                                    nmea.description, io.description)  # fmt: skip
                run = TrackerRun(tid, world.vehicle_of[tid], world.scenario.name, cfg, nmea, io)
                log_file = (run_dir / "agent.log").open("ab")
                run.agent = subprocess.Popen(
                    [*self.plan.agent_argv, "--config", str(cfg)],
                    stdout=log_file, stderr=subprocess.STDOUT,
                )  # fmt: skip
                end = world.end if self.plan.limit is None else min(
                    world.end, world.start + self.plan.limit
                )  # fmt: skip
                run.thread = threading.Thread(
                    target=self._drive, args=(run, tracker, world.start, end),
                    name=f"tracker-{tid}", daemon=True,
                )  # fmt: skip
                self.runs.append(run)
        time.sleep(1.0)  # let the agents open their ptys before the first sentence
        for run in self.runs:
            assert run.thread is not None
            run.thread.start()

    def _drive(self, run: TrackerRun, tracker: object, start: datetime, end: datetime) -> None:
        from firmware_sim.tracker import Tracker

        assert isinstance(tracker, Tracker)
        pacer = Pacer(self.plan.speed, start, sleep=self._sleep)
        try:
            # Step in one-minute slices so a stop request is seen promptly.
            t = start
            while t < end and not self._stop.is_set():
                nxt = min(end, t + timedelta(minutes=1))
                stats = stream(tracker, t, nxt, run.nmea, run.io, pacer)
                run.ticks += stats.ticks
                self._sim_time = nxt
                t = nxt
        finally:
            run.done = True

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def status(self) -> FleetStatus:
        alive = sum(1 for r in self.runs if r.agent is not None and r.agent.poll() is None)
        return FleetStatus(
            trackers=len(self.runs),
            agents_alive=alive,
            finished=sum(1 for r in self.runs if r.done),
            sim_time=self._sim_time,
            lines=sum(r.ticks for r in self.runs),
        )

    def wait(self, progress: Callable[[FleetStatus], None] | None = None,
             every_s: float = 2.0) -> None:  # fmt: skip
        while not all(r.done for r in self.runs) and not self._stop.is_set():
            self._stop.wait(every_s)
            if progress is not None:
                progress(self.status())

    def stop_requested(self) -> None:
        """Ask the trackers to stop (safe from a signal handler); :meth:`stop` cleans up."""
        self._stop.set()

    def stop(self, drain_s: float = 5.0) -> None:
        """Stop the trackers, give the agents ``drain_s`` to send, then stop them."""
        self._stop.set()
        for run in self.runs:
            if run.thread is not None:
                run.thread.join(timeout=10)
        time.sleep(drain_s)
        for run in self.runs:
            if run.agent is not None and run.agent.poll() is None:
                run.agent.terminate()
        for run in self.runs:
            if run.agent is not None:
                try:
                    run.agent.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    run.agent.kill()
            run.nmea.close()
            run.io.close()
