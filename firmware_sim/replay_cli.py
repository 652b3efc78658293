"""``vgr sim replay``: labelled scenarios through the real cloud pipeline, faster than real time.

Example::

    vgr sim replay --scenario mix --vehicles 20 --seed 3 --broker 127.0.0.1:1883 \\
                   --speed max --end-at now --devices-out var/replay-devices.jsonl

builds the worlds so they end just before now, turns them into the messages
their trackers would send (:mod:`firmware_sim.reporter`), publishes them with
one MQTT client per device and waits until every record is committed
(CommitAck). Register the devices first (``--list-devices`` prints them and
exits; ``--devices-out`` writes id, kind, vehicle, scenario and a wireless
unit's ``wakes_per_day`` as JSON lines).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from firmware_sim.scenarios import Scenario


def scenarios_for(spec: str, vehicles: int, seed: int) -> list[Scenario]:
    """``mix`` (generated labelled mix), a template name (``vehicles`` of that kind),
    ``bundled`` (every bundled scenario), ``bundled:NAME``, or a scenario file."""
    from firmware_sim.scenario_gen import TEMPLATES
    from firmware_sim.scenarios import bundled, generate, load_named

    if spec == "mix":
        return generate(seed, vehicles)
    if spec in TEMPLATES:
        return generate(seed, vehicles, {spec: 1.0})
    if spec == "bundled":
        return [load_named(name) for name in bundled()]
    if spec.startswith("bundled:"):
        name = spec.removeprefix("bundled:")
        if name not in bundled():
            msg = f"no bundled scenario {name!r}; known: {', '.join(bundled())}"
            raise ValueError(msg)
        return [load_named(name)]
    return [load_named(spec)]


def _end_at(text: str) -> datetime:
    now = datetime.now(UTC)
    if text == "now":
        return now
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not 'now' or an ISO time with a zone: {text!r}"
        ) from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone: {text!r}")
    if when > now:
        raise argparse.ArgumentTypeError("--end-at must not be in the future (GNSS time would be)")
    return when


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'max': {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("speed must be > 0")
    return value


def run_replay(args: argparse.Namespace) -> int:
    from firmware_sim.mqtt_device import load_passwords
    from firmware_sim.replay import ReplayPlan, ReplayStatus, build_worlds, replay
    from firmware_sim.reporter import devices_of
    from firmware_sim.scenarios import ScenarioError

    try:
        worlds = build_worlds(scenarios_for(args.scenario, args.vehicles, args.seed), args.end_at)
        devices = devices_of(worlds)
        passwords = load_passwords(Path(args.credentials)) if args.credentials else {}
    except (ScenarioError, ValueError, OSError) as exc:
        print(f"vgr sim replay: {exc}", file=sys.stderr)
        return 2
    if args.devices_out:
        out = Path(args.devices_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(dataclasses.asdict(d)) + "\n" for d in devices))
    start, end = min(w.start for w in worlds), max(w.end for w in worlds)
    vehicles = sum(len(w.vehicles) for w in worlds)
    span = f"{start.isoformat()} .. {end.isoformat()}"
    print(f"{len(devices)} trackers, {vehicles} vehicles, {len(worlds)} worlds, {span}",
          file=sys.stderr)  # fmt: skip
    if args.list_devices:
        for d in devices:
            print(f"{d.device_id}\t{d.kind}\t{d.vehicle_id}\t{d.scenario}")
        return 0
    host, _, port = args.broker.rpartition(":")
    plan = ReplayPlan(
        host=host or "127.0.0.1",
        port=int(port),
        speed=args.speed,
        passwords=passwords,
        window=args.window,
        max_in_flight=args.max_in_flight,
        ack_timeout_s=args.ack_timeout,
        settle_timeout_s=args.settle_timeout,
        boot_salt=args.boot_salt,
    )

    def progress(s: ReplayStatus) -> None:
        when = s.sim_time.isoformat(timespec="minutes") if s.sim_time else "-"
        line = (
            f"\r{s.elapsed_s:6.1f}s  sim {when}  published {s.published:,}/{s.total_messages:,}"
            f"  records {s.records:,}/{s.total_records:,}  committed {s.acked:,}"
            f"  resends {s.resends}  reconnects {s.reconnects}"
        )
        print(line, end="", file=sys.stderr, flush=True)

    async def go() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        result = await replay(worlds, plan, progress=None if args.quiet else progress, stop=stop)
        s = result.status
        if not args.quiet:
            print(file=sys.stderr)
        print(f"messages={s.published}/{s.total_messages} records={s.records} acked={s.acked} "
              f"resends={s.resends} reconnects={s.reconnects} gave_up={s.gave_up} "
              f"generate_s={s.generate_s:.1f} elapsed_s={s.elapsed_s:.1f}")  # fmt: skip
        return 0 if result.complete else 1

    return asyncio.run(go())


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser(
        "replay",
        help="publish labelled scenarios as tracker-firmware messages, wait for commits",
        description="Turn scenarios into the MQTT messages their trackers would send and publish "
        "them, faster than real time, waiting until the cloud has committed every record.",
    )
    p.add_argument(
        "--scenario",
        default="mix",
        help="'mix', a template name (N generated of that kind), 'bundled', 'bundled:NAME', "
        "or a scenario file",
    )
    p.add_argument("--vehicles", type=int, default=20, help="vehicles for 'mix' or a template")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT")
    p.add_argument(
        "--credentials",
        default=None,
        help="MQTT passwords: a directory of files named by device id, or a file of "
        "device_id:password lines (username is always the device id)",
    )
    p.add_argument(
        "--speed",
        type=_speed,
        default=None,
        help="x real time between publish moments, or 'max' (default)",
    )
    p.add_argument(
        "--end-at",
        type=_end_at,
        default="now",
        help="'now' (default) or an ISO time: scenarios are moved by whole days to "
        "end just before it",
    )
    p.add_argument("--devices-out", default=None, help="write the devices as JSON lines")
    p.add_argument(
        "--list-devices",
        action="store_true",
        help="print device id, kind, vehicle and scenario, then exit",
    )
    p.add_argument(
        "--window",
        type=int,
        default=32,
        help="messages per device awaiting commit (1: the agent's strict order)",
    )
    p.add_argument(
        "--max-in-flight", type=int, default=800, help="messages of all devices awaiting commit"
    )
    p.add_argument("--ack-timeout", type=float, default=10.0, help="resend after this many s")
    p.add_argument(
        "--settle-timeout",
        type=float,
        default=120.0,
        help="give up when no commit arrives for this many s",
    )
    p.add_argument(
        "--boot-salt",
        default=None,
        help="names the run's boot ids (default: per scenario; same salt and worlds "
        "= an idempotent re-publish)",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_replay)
