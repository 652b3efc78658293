"""``vgr sim …``: simulated trackers, receivers and load."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta


def load(args: argparse.Namespace) -> int:
    from firmware_sim.loadgen import LoadPlan, LoadReport, run_load

    ids = tuple(f"{args.prefix}{i:0{args.width}d}" for i in range(args.devices))
    plan = LoadPlan(
        host=args.host,
        port=args.port,
        device_ids=ids,
        fixes_per_device=args.fixes,
        batch_size=args.batch,
        fix_interval=timedelta(seconds=args.interval),
        rate_per_device=args.rate,
        ack_timeout_s=args.ack_timeout,
        seed=args.seed,
    )
    total = len(ids) * args.fixes

    def progress(r: LoadReport) -> None:
        rate = r.acked / r.elapsed_s if r.elapsed_s else 0.0
        print(
            f"\r{r.elapsed_s:6.1f}s  sent {r.sent:>9,}/{total:,}  committed {r.acked:>9,}"
            f"  ({rate:,.0f} fixes/s)",
            end="",
            file=sys.stderr,
            flush=True,
        )

    report = asyncio.run(run_load(plan, progress=None if args.quiet else progress))
    if not args.quiet:
        print(file=sys.stderr)
    resends = sum(d.resends for d in report.devices)
    print(
        f"devices={len(ids)} sent={report.sent} committed={report.acked} resends={resends} "
        f"elapsed_s={report.elapsed_s:.1f} "
        f"fixes_per_s={report.acked / max(report.elapsed_s, 1e-9):.0f} "
        f"p50_ms={report.latency_percentile(0.5) * 1000:.1f} "
        f"p99_ms={report.latency_percentile(0.99) * 1000:.1f}"
    )
    return 0 if report.acked == total else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("sim", help="simulated trackers, receivers and load generation")
    cmds = group.add_subparsers(dest="sim_command", metavar="COMMAND", required=True)
    p = cmds.add_parser(
        "load",
        help="publish fixes from N simulated devices (protocol-level load, waits for commit acks)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--fixes", type=int, default=1000, help="fixes per device")
    p.add_argument("--batch", type=int, default=50, help="fixes per MQTT message")
    p.add_argument("--interval", type=float, default=1.0, help="GNSS seconds between fixes")
    p.add_argument("--rate", type=float, default=None, help="fixes/s per device (default: max)")
    p.add_argument("--ack-timeout", type=float, default=5.0)
    p.add_argument("--prefix", default="86000000", help="device id prefix")
    p.add_argument("--width", type=int, default=7, help="digits after the prefix")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=load)

    from firmware_sim import fleet_cli, replay_cli, sim_cli

    sim_cli.register(cmds)
    fleet_cli.register(cmds)
    replay_cli.register(cmds)
