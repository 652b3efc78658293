"""``vgr sim nmea``: stream one simulated tracker of a scenario, like a receiver on a serial port.

Example::

    vgr sim nmea --scenario unplugged --vehicle GZ-UNPLUG --out pty --io pty --speed 60

prints the two pty paths (``nmea: /dev/pts/7``, ``io: /dev/pts/8``), then
writes the tracker's NMEA to the first and its hardware I/O JSON lines to the
second, at 60 x real time, until the scenario ends. Register with
``register(cmds)`` on the ``vgr sim`` subcommand group.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import timedelta

from firmware_sim.outputs import Pacer, Sink, open_sink, stream
from firmware_sim.scenarios import ScenarioError, build, load_named, parse_duration

SINKS = "- | pty | file:PATH | tcp:PORT | tcp:HOST:PORT | connect:HOST:PORT"


def _duration(text: str) -> timedelta:
    if not re.fullmatch(r"(?=.)(\d+d)?(\d+h)?(\d+m)?(\d+s)?", text):
        raise argparse.ArgumentTypeError(f"not a duration like 1d2h30m: {text!r}")
    return parse_duration(text)


def run_nmea(args: argparse.Namespace) -> int:
    try:
        scenario = load_named(args.scenario)
    except ScenarioError as exc:
        print(f"{args.scenario}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{args.scenario}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    world = build(scenario)
    if args.vehicle not in world.vehicles:
        print(f"no vehicle {args.vehicle!r}; known: {', '.join(world.vehicles)}", file=sys.stderr)
        return 2
    trackers = world.trackers_of(args.vehicle)
    chosen = [t for t in trackers if args.tracker in (None, t.spec.device_id)]
    if not chosen:
        known = ", ".join(t.spec.device_id for t in trackers)
        print(f"no tracker {args.tracker!r} on {args.vehicle}; known: {known}", file=sys.stderr)
        return 2
    tracker = chosen[0]
    start = world.start + args.start_offset
    end = world.end if args.length is None else min(world.end, start + args.length)
    sinks: list[Sink] = []
    try:
        out = open_sink(args.out)
        sinks.append(out)
        io = open_sink(args.io) if args.io else None
        if io is not None:
            sinks.append(io)
    except (ValueError, OSError) as exc:
        for sink in sinks:
            sink.close()
        print(f"vgr sim nmea: {exc}", file=sys.stderr)
        return 2
    notes = sys.stderr if args.out == "-" else sys.stdout
    print(f"nmea: {out.description}", file=notes, flush=True)
    if io is not None:
        print(f"io: {io.description}", file=notes, flush=True)
    print(
        f"tracker {tracker.spec.device_id} ({tracker.spec.kind}) on {args.vehicle}, "
        f"{start.isoformat()} .. {end.isoformat()} at x{args.speed:g}",
        file=sys.stderr,
        flush=True,
    )
    try:
        if args.wait > 0:
            time.sleep(args.wait)
        stats = stream(tracker, start, end, out, io, Pacer(args.speed, start))
    finally:
        for sink in sinks:
            sink.close()
    rx = tracker.receiver.stats
    print(
        f"ticks={stats.ticks} nmea_lines={stats.nmea_lines} io_lines={stats.io_lines} "
        f"corrupted={rx.corrupted_total} fixed_epochs={rx.fixed_epochs}",
        file=sys.stderr,
    )
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser(
        "nmea",
        help="stream one simulated tracker's NMEA (and hardware I/O) from a scenario",
        description="Stream one tracker of a scenario: NMEA 0183 to --out, I/O JSON lines to --io.",
    )
    p.add_argument("--scenario", required=True, help="bundled scenario name or TOML file")
    p.add_argument("--vehicle", required=True, help="vehicle id in the scenario")
    p.add_argument("--tracker", default=None, help="tracker id (default: the vehicle's first)")
    p.add_argument("--out", default="-", help=f"NMEA sink: {SINKS} (default -)")
    p.add_argument("--io", default=None, help=f"hardware I/O sink: {SINKS} (default: none)")
    p.add_argument("--speed", type=float, default=1.0, help="x real time; 0 = as fast as possible")
    p.add_argument(
        "--from",
        dest="start_offset",
        type=_duration,
        default=timedelta(0),
        help="start this long after the scenario start, e.g. 1d7h (the tracker starts fresh)",
    )
    p.add_argument(
        "--for", dest="length", type=_duration, default=None, help="simulated time to stream"
    )
    p.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait after printing the sink paths"
    )
    p.set_defaults(func=run_nmea)
