"""``vgr sim fleet``: run N simulated trackers through real edge agents against a broker."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType


def _scenarios(args: argparse.Namespace) -> list[object]:
    from firmware_sim.scenario_gen import TEMPLATES
    from firmware_sim.scenarios import generate, load_named

    if args.scenario == "mix":
        return list(generate(args.seed, args.vehicles))
    if args.scenario in TEMPLATES:
        return list(generate(args.seed, args.vehicles, {args.scenario: 1.0}))
    return [load_named(args.scenario)]


def fleet(args: argparse.Namespace) -> int:
    from firmware_sim.fleet import Fleet, FleetPlan, FleetStatus
    from firmware_sim.scenarios import ScenarioError, parse_duration

    try:
        scenarios = _scenarios(args)
        limit = parse_duration(args.sim_for) if args.sim_for else None
    except (ScenarioError, ValueError, OSError) as exc:
        print(f"cannot load scenarios: {exc}", file=sys.stderr)
        return 2
    host, _, port = args.broker.rpartition(":")
    plan = FleetPlan(
        scenarios=scenarios,  # type: ignore[arg-type]
        broker_host=host or "127.0.0.1",
        broker_port=int(port),
        base_dir=Path(args.dir).resolve(),
        tenant=args.tenant,
        speed=args.speed,
        limit=limit,
    )
    fl = Fleet(plan)
    ids = fl.device_ids
    plan.base_dir.mkdir(parents=True, exist_ok=True)
    (plan.base_dir / "devices.txt").write_text("\n".join(ids) + "\n")
    print(f"{len(ids)} trackers on {len(fl.worlds)} vehicles; device ids in "
          f"{plan.base_dir / 'devices.txt'}", file=sys.stderr)  # fmt: skip
    if args.list_devices:
        print("\n".join(ids))
        return 0

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        fl.stop_requested()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def progress(st: FleetStatus) -> None:
        when = st.sim_time.isoformat(timespec="minutes") if st.sim_time else "-"
        print(f"\rsim {when}  trackers {st.trackers}  agents up {st.agents_alive}  "
              f"finished {st.finished}  tracker-seconds {st.lines:,}", end="",
              file=sys.stderr, flush=True)  # fmt: skip

    fl.start()
    try:
        fl.wait(progress)
    finally:
        print(file=sys.stderr)
        fl.stop(drain_s=args.drain)
    print(f"fleet done: {fl.status().lines} tracker-seconds simulated", file=sys.stderr)
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("fleet", help="run N simulated trackers, each through a real edge agent")
    p.add_argument("--vehicles", type=int, default=10)
    p.add_argument(
        "--scenario", default="mix",
        help="'mix' (labelled mix), a template name for N of one kind, or a scenario file/name",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--broker", default="127.0.0.1:1883", help="HOST:PORT of the plain listener")
    p.add_argument("--tenant", default="demo-bank")
    p.add_argument("--speed", type=float, default=1.0, help="x real time (GNSS stays <= now)")
    p.add_argument("--for", dest="sim_for", default=None, help="simulate at most this (e.g. 2h)")
    p.add_argument("--dir", default="var/fleet", help="agents' configs, outboxes and logs")
    p.add_argument("--drain", type=float, default=5.0, help="seconds for agents to flush at end")
    p.add_argument(
        "--list-devices", action="store_true",
        help="only print the device ids the fleet would use (to register them first)",
    )  # fmt: skip
    p.set_defaults(func=fleet)
