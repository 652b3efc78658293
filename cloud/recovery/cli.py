"""``vgr cloud recovery …``: the recovery queue, case workflow and command-ack listener.

Exit codes: 0 done; 1 refused (the case workflow said no, or the database
failed); 2 the config or an argument is wrong; 3 the case changed but some
commands did not reach the broker (``chase`` again re-sends them).
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cloud.config import CloudConfig
    from cloud.recovery.cases import Result
    from cloud.recovery.commands import Commander
    from cloud.recovery.mqtt import BrokerSettings

log = logging.getLogger("vgr.recovery")

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


class UsageError(Exception):
    """A config or argument problem (exit code 2)."""


def parse_duration(text: str) -> int:
    """Seconds in ``1h``, ``30m``, ``1h30m``, ``90s`` or ``3600``; ValueError otherwise."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (use 1h, 30m, 1h30m, 90s or seconds)")
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---------------------------------------------------------------- wiring


def _config(path: Path) -> CloudConfig:
    from cloud.config import load_config
    from protocols.configfile import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        raise UsageError("\n".join(f"{exc.source}: {p}" for p in exc.problems)) from None


def broker_settings(cfg: CloudConfig, role: str, *, unique: bool = True) -> BrokerSettings:
    """The cloud's own broker account (``[mqtt]``), as ingest uses it."""
    from cloud.recovery.mqtt import BrokerSettings, client_id
    from cloud.secrets_io import secret
    from protocols.secrets import SecretError

    m = cfg.mqtt
    try:
        password = secret(m.password)
    except SecretError as exc:
        raise UsageError(f"mqtt.password: {exc}") from None
    return BrokerSettings(
        host=m.host,
        port=m.port,
        client_id=client_id(m.client_id_prefix, role, unique),
        username=m.username,
        password=password,
        tls_ca=str(m.ca_file) if m.tls and m.ca_file else None,
        keepalive_s=m.keepalive_s,
    )


def signing_key(cfg: CloudConfig) -> Ed25519PrivateKey:
    """The platform Ed25519 key named by ``registry.signing_key``."""
    from cloud.secrets_io import secret
    from protocols.secrets import SecretError
    from protocols.tokens import load_private_key

    ref = cfg.registry.signing_key
    if ref is None:
        raise UsageError("registry.signing_key: required to sign commands (env:NAME or file:/path)")
    try:
        return load_private_key((secret(ref) or "").encode())
    except SecretError as exc:
        raise UsageError(f"registry.signing_key: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise UsageError(f"registry.signing_key: not an Ed25519 PEM private key ({exc})") from None


@contextmanager
def _connection(cfg: CloudConfig) -> Iterator[psycopg.Connection[Any]]:
    import psycopg

    from cloud.secrets_io import dsn_with_password, secret
    from protocols.secrets import SecretError

    try:
        dsn = dsn_with_password(cfg.database.dsn, secret(cfg.database.password))
    except SecretError as exc:
        raise UsageError(f"database.password: {exc}") from None
    timeout = max(1, round(cfg.database.connect_timeout_s))
    with psycopg.connect(dsn, autocommit=True, connect_timeout=timeout) as conn:
        yield conn


@contextmanager
def _commander(cfg: CloudConfig) -> Iterator[Commander]:
    from cloud.recovery.commands import Commander
    from cloud.recovery.mqtt import MqttCommandPublisher

    key = signing_key(cfg)
    with MqttCommandPublisher(broker_settings(cfg, "recovery-cmd")) as publisher:
        yield Commander(key, publisher)


@contextmanager
def _optional_commander(cfg: CloudConfig) -> Iterator[Commander | None]:
    """A commander if the config allows one; finishing a case must not depend on it."""
    try:
        signing_key(cfg)
    except UsageError as exc:
        print(f"warning: cannot switch chase mode off ({exc})", file=sys.stderr)
        yield None
        return
    with _commander(cfg) as commander:
        yield commander


def _run(args: argparse.Namespace, action: Callable[[CloudConfig, Any], int]) -> int:
    """Load the config, connect, run ``action(cfg, conn)``; map errors to exit codes."""
    import psycopg

    from cloud.recovery.workflow import CaseError

    try:
        cfg = _config(args.config)
        with _connection(cfg) as conn:
            return action(cfg, conn)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except CaseError as exc:
        print(f"refused: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedTable:
        print("the database has no recovery tables: run `vgr cloud migrate`", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"database: {str(exc).strip()}", file=sys.stderr)
        return 1


def _report(result: Result) -> int:
    case = result.case
    print(f"case {case.id}: {case.status}" + (f" ({case.outcome})" if case.outcome else ""))
    if result.report is None:
        return 0
    for device, note in result.report.published:
        print(f"  sent to {device}: {note}")
    for device, error in result.report.failed:
        print(f"  NOT sent to {device}: {error}", file=sys.stderr)
    if result.report.failed:
        print("some commands did not reach the broker; see `show`", file=sys.stderr)
        return 3
    return 0


# ---------------------------------------------------------------- commands


def queue_command(args: argparse.Namespace) -> int:
    from cloud.recovery.render import queue_table
    from cloud.recovery.worklist import queue

    def action(_cfg: CloudConfig, conn: Any) -> int:
        entries = queue(conn, args.tenant, limit=args.limit, offset=args.offset)
        print(queue_table(entries))
        return 0

    return _run(args, action)


def case_command(args: argparse.Namespace) -> int:
    from cloud.recovery import cases
    from cloud.recovery.cases import Result
    from cloud.recovery.render import case_text

    t, by = args.tenant, getattr(args, "by", "")

    def action(cfg: CloudConfig, conn: Any) -> int:
        op = args.case_command
        if op == "open":
            case = cases.open_case(conn, t, args.vehicle, by, loan_id=args.loan, note=args.note)
            return _report(Result(case))
        if op == "show":
            case = cases.get_case(conn, t, args.case)
            hist = cases.history(conn, t, args.case)
            print(case_text(case, hist, cases.case_commands(conn, t, args.case)))
            return 0
        if op == "assign":
            return _report(Result(cases.assign(conn, t, args.case, by, args.to, note=args.note)))
        if op == "located":
            case = cases.mark_located(conn, t, args.case, by, args.lat, args.lon, note=args.note)
            return _report(Result(case))
        if op in ("finish", "close"):
            with _optional_commander(cfg) as maybe:
                if op == "finish":
                    result = cases.finish(
                        conn, t, args.case, by, args.outcome, commander=maybe, note=args.note
                    )
                else:
                    result = cases.close(
                        conn, t, args.case, by, reason=args.reason, commander=maybe
                    )
                return _report(result)
        with _commander(cfg) as cmd:
            if op == "chase":
                result = cases.start_chase(
                    conn, t, args.case, by, cmd, duration_s=args.duration, note=args.note
                )
            else:
                result = cases.stop_chase(conn, t, args.case, by, cmd, note=args.note)
            return _report(result)

    return _run(args, action)


def ack_listener_command(args: argparse.Namespace) -> int:
    import psycopg

    from cloud.recovery.mqtt import AckListener, serve

    try:
        cfg = _config(args.config)
        settings = broker_settings(cfg, f"recovery-acks-{args.listener_id}", unique=False)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping the ack listener", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.is_set():
        listener = AckListener(settings)
        try:
            with _connection(cfg) as conn:
                listener.start()
                serve(conn, listener, stop.is_set)
        except UsageError as exc:
            print(exc, file=sys.stderr)
            return 2
        except psycopg.OperationalError as exc:
            # Unacknowledged acks come again when the listener's session resumes.
            log.warning("database unavailable (%s); retrying in 2 s", exc)
            stop.wait(2.0)
        finally:
            listener.stop()
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``recovery`` to the ``vgr cloud`` command group."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, required=True, help="cloud config file")
    common.add_argument("--tenant", required=True, help="tenant id")
    p = cmds.add_parser("recovery", help="the asset engine: recovery queue, cases, chase mode")
    sub = p.add_subparsers(dest="recovery_command", metavar="COMMAND", required=True)

    q = sub.add_parser("queue", parents=[common], help="vehicles to recover, most urgent first")
    q.add_argument("--limit", type=int, default=20)
    q.add_argument("--offset", type=int, default=0)
    q.set_defaults(func=queue_command)

    c = sub.add_parser("case", help="open and move recovery cases (every change is audited)")
    ops = c.add_subparsers(dest="case_command", metavar="ACTION", required=True)
    actor = argparse.ArgumentParser(add_help=False, parents=[common])
    actor.add_argument("--by", required=True, help="the user doing it (recorded in the history)")
    actor.add_argument("--note", default="", help="free text kept with the case")

    def op(name: str, helptext: str, *, case: bool = True) -> argparse.ArgumentParser:
        parser = ops.add_parser(name, parents=[actor], help=helptext)
        if case:
            parser.add_argument("case", type=int, metavar="CASE", help="case id")
        parser.set_defaults(func=case_command)
        return parser

    o = op("open", "open a case for a vehicle", case=False)
    o.add_argument("--vehicle", type=int, required=True, help="vehicle id")
    o.add_argument("--loan", type=int, help="loan id (default: the vehicle's open loan)")
    op("assign", "assign (or reassign) the case").add_argument("--to", required=True)
    ch = op("chase", "put the car's trackers into chase mode (signed commands)")
    ch.add_argument("--duration", type=_duration, default=3600, help="e.g. 1h, 30m (max 24h)")
    op("stop-chase", "switch chase mode off on the car's trackers")
    loc = op("located", "the car has been found here (WGS-84)")
    loc.add_argument("--lat", type=float, required=True)
    loc.add_argument("--lon", type=float, required=True)
    fin = op("finish", "the recovery succeeded or failed (chase mode goes off)")
    fin.add_argument("--outcome", choices=("recovered", "failed"), required=True)
    cl = op("close", "close a finished case, or cancel an unfinished one with --reason")
    cl.add_argument("--reason", help="why an unfinished case is cancelled")
    s = ops.add_parser("show", parents=[common], help="a case with its history and commands")
    s.add_argument("case", type=int, metavar="CASE")
    s.set_defaults(func=case_command)

    a = sub.add_parser("ack-listener", help="record trackers' command acks (runs until stopped)")
    a.add_argument("--config", type=Path, required=True, help="cloud config file")
    a.add_argument("--listener-id", default="1", help="stable id: its broker session survives")
    a.set_defaults(func=ack_listener_command)
