"""``vgr cloud webhooks …``: endpoints, secrets, deliveries, replays, and the dispatcher."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloud.config import CloudConfig

from cloud.cli_common import config_arg, database_dsn, load_or_report

log = logging.getLogger("vgr.webhooks")


_config = load_or_report
_dsn = database_dsn


def _with_db(args: argparse.Namespace, action: Callable[[Any, CloudConfig], int]) -> int:
    """Run ``action(conn, cfg)`` on a connection to the configured database, with clear errors."""
    import psycopg

    from cloud.webhooks.events import WebhookError
    from protocols.secrets import SecretError

    cfg = _config(args.config)
    if cfg is None:
        return 2
    try:
        timeout = max(1, round(cfg.database.connect_timeout_s))
        with psycopg.connect(_dsn(cfg), autocommit=True, connect_timeout=timeout) as conn:
            return action(conn, cfg)
    except WebhookError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedTable:
        print("the database has no webhook tables: run `vgr cloud migrate` first", file=sys.stderr)
        return 1
    except (psycopg.Error, SecretError) as exc:
        print(f"database: {str(exc).strip()}", file=sys.stderr)
        return 1


def add_endpoint(args: argparse.Namespace) -> int:
    from cloud.webhooks import admin

    events = [e.strip() for e in (args.events or "").split(",") if e.strip()]

    def action(conn: Any, cfg: CloudConfig) -> int:
        endpoint_id, secret = admin.add_endpoint(
            conn,
            args.tenant,
            args.url,
            event_types=events,
            description=args.description,
            allow_private=cfg.webhooks.allow_private_targets,
        )
        print(f"endpoint {endpoint_id} for {args.tenant}: {args.url}", file=sys.stderr)
        print("signing secret, shown once; give it to the receiver now:", file=sys.stderr)
        print(f"{endpoint_id} {secret}")
        return 0

    return _with_db(args, action)


def rotate_secret(args: argparse.Namespace) -> int:
    from cloud.webhooks import admin

    def action(conn: Any, cfg: CloudConfig) -> int:
        overlap = (
            args.overlap_hours * 3600
            if args.overlap_hours is not None
            else cfg.webhooks.secret_overlap_s
        )
        secret, until = admin.rotate_secret(conn, args.endpoint, overlap_s=overlap)
        print(
            f"new primary secret for {args.endpoint}, shown once; the previous secret keeps "
            f"signing until {until:%Y-%m-%d %H:%M:%S %Z}:",
            file=sys.stderr,
        )
        print(secret)
        return 0

    return _with_db(args, action)


def set_enabled(args: argparse.Namespace, *, enabled: bool) -> int:
    from cloud.webhooks import admin

    def action(conn: Any, _cfg: CloudConfig) -> int:
        admin.set_enabled(conn, args.endpoint, enabled=enabled, reason=getattr(args, "reason", ""))
        print(f"{args.endpoint} {'enabled' if enabled else 'disabled'}")
        return 0

    return _with_db(args, action)


def list_endpoints(args: argparse.Namespace) -> int:
    from cloud.webhooks import admin

    def action(conn: Any, _cfg: CloudConfig) -> int:
        rows = admin.list_endpoints(conn, tenant_id=args.tenant)
        if not rows:
            print("no endpoints", file=sys.stderr)
        for e in rows:
            events = ",".join(e.event_types) or "*"
            status = "enabled" if e.enabled else f"disabled ({e.disabled_reason})"
            print(
                f"{e.id}\t{e.tenant_id}\t{e.url}\t{events}\t{status}\t"
                f"secrets={e.live_secrets}\t{e.description}"
            )
        return 0

    return _with_db(args, action)


def list_deliveries(args: argparse.Namespace) -> int:
    from cloud.webhooks import admin

    def action(conn: Any, _cfg: CloudConfig) -> int:
        rows = admin.list_deliveries(
            conn,
            endpoint_id=args.endpoint,
            state=args.state,
            message_id=args.message,
            tenant_id=args.tenant,
            limit=args.limit,
        )
        if not rows:
            print("no deliveries", file=sys.stderr)
        for d in rows:
            when = f"next {d.next_attempt_at:%Y-%m-%d %H:%M:%S}" if d.state == "failed" else ""
            print(
                f"{d.id}\t{d.message_id}\t{d.endpoint_id}\t{d.event_type}\tseries={d.series}\t"
                f"attempts={d.attempt_no}\t{d.state}\t{d.last_status or ''}\t"
                f"{d.last_error or ''}\t{when}".rstrip()
            )
        return 0

    return _with_db(args, action)


def show_attempts(args: argparse.Namespace) -> int:
    from cloud.webhooks import admin

    def action(conn: Any, _cfg: CloudConfig) -> int:
        rows = admin.attempts(conn, args.delivery)
        if not rows:
            print(f"no attempts logged for delivery {args.delivery}", file=sys.stderr)
        for no, started, ms, outcome, status, error, body in rows:
            latency = "" if ms is None else f"{ms:.0f}ms"
            print(
                f"{no}\t{started:%Y-%m-%d %H:%M:%S}\t{latency}\t{outcome}\t{status or ''}\t"
                f"{error or ''}\t{(body or '')[:200]!r}"
            )
        return 0

    return _with_db(args, action)


def replay(args: argparse.Namespace) -> int:
    from cloud.webhooks import admin

    def action(conn: Any, _cfg: CloudConfig) -> int:
        results = admin.replay(conn, args.message, endpoint_id=args.endpoint)
        for r in results:
            if r.series is None:
                print(f"{r.endpoint_id}: skipped, {r.reason}", file=sys.stderr)
            else:
                print(f"{r.endpoint_id}: replay queued (series {r.series})")
        return 0 if any(r.series is not None for r in results) else 1

    return _with_db(args, action)


def dispatch(args: argparse.Namespace) -> int:
    import asyncio
    import os
    import signal
    import socket

    from prometheus_client import start_http_server

    from cloud.metrics import REGISTRY
    from cloud.webhooks.dispatcher import Dispatcher
    from protocols.secrets import SecretError

    cfg = _config(args.config)
    if cfg is None:
        return 2
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        dsn = _dsn(cfg)
    except SecretError as exc:
        print(f"database.password: {exc}", file=sys.stderr)
        return 2
    wh = cfg.webhooks
    worker_id = args.worker_id or f"{socket.gethostname()}-{os.getpid()}"
    metrics_port = args.metrics_port if args.metrics_port is not None else wh.metrics_port
    if metrics_port:
        start_http_server(metrics_port, addr=wh.metrics_host, registry=REGISTRY)
        log.info("metrics on http://%s:%d/metrics", wh.metrics_host, metrics_port)
    if wh.allow_private_targets:
        log.warning("webhooks.allow_private_targets is on: the SSRF guard is off")
    dispatcher = Dispatcher(
        dsn,
        wh,
        worker_id=worker_id,
        pool_max=min(cfg.database.pool_max, wh.concurrency + 1),
        connect_timeout_s=cfg.database.connect_timeout_s,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, dispatcher.stop)
        log.info("webhook dispatcher %s started", worker_id)
        await dispatcher.run()

    import psycopg
    from psycopg_pool import PoolTimeout

    try:
        asyncio.run(main())
    except (psycopg.Error, PoolTimeout) as exc:
        print(f"database: {str(exc).strip()}", file=sys.stderr)
        return 1
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``webhooks`` and its subcommands to the ``vgr cloud`` command group."""
    from cloud.webhooks.admin import DELIVERY_STATES
    from cloud.webhooks.events import EVENT_TYPES

    top = cmds.add_parser("webhooks", help="signed webhooks to lending systems (Standard Webhooks)")
    sub = top.add_subparsers(dest="webhooks_command", metavar="COMMAND", required=True)

    p = sub.add_parser("add-endpoint", help="register a receiver URL; prints its secret once")
    config_arg(p)
    p.add_argument("--tenant", required=True, help="tenant id")
    p.add_argument("--url", required=True, help="http(s) URL the webhooks are POSTed to")
    p.add_argument(
        "--events", help=f"comma-separated subset of: {', '.join(EVENT_TYPES)} (default: all)"
    )
    p.add_argument("--description", default="", help="free text shown by `list`")
    p.set_defaults(func=add_endpoint)

    p = sub.add_parser("rotate-secret", help="new primary secret; the old one signs a while longer")
    config_arg(p)
    p.add_argument("endpoint", help="endpoint id (ep_…)")
    p.add_argument(
        "--overlap-hours",
        type=float,
        default=None,
        help="how long the old secret keeps signing (webhooks.secret_overlap_s)",
    )
    p.set_defaults(func=rotate_secret)

    p = sub.add_parser("enable-endpoint", help="enable an endpoint again (e.g. after 410 Gone)")
    config_arg(p)
    p.add_argument("endpoint", help="endpoint id (ep_…)")
    p.set_defaults(func=lambda a: set_enabled(a, enabled=True))

    p = sub.add_parser("disable-endpoint", help="stop sending to an endpoint")
    config_arg(p)
    p.add_argument("endpoint", help="endpoint id (ep_…)")
    p.add_argument("--reason", default="", help="recorded with the endpoint")
    p.set_defaults(func=lambda a: set_enabled(a, enabled=False))

    p = sub.add_parser("list", help="list endpoints")
    config_arg(p)
    p.add_argument("--tenant", default=None, help="only this tenant's")
    p.set_defaults(func=list_endpoints)

    p = sub.add_parser("deliveries", help="list deliveries, newest first")
    config_arg(p)
    p.add_argument("--endpoint", default=None, help="endpoint id")
    p.add_argument("--state", choices=DELIVERY_STATES, default=None)
    p.add_argument("--message", default=None, help="message id (msg_…)")
    p.add_argument("--tenant", default=None, help="tenant id")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=list_deliveries)

    p = sub.add_parser("attempts", help="the attempt log of one delivery")
    config_arg(p)
    p.add_argument("delivery", type=int, help="delivery id (first column of `deliveries`)")
    p.set_defaults(func=show_attempts)

    p = sub.add_parser("replay", help="send a message again, with the same webhook-id")
    config_arg(p)
    p.add_argument("message", help="message id (msg_…)")
    p.add_argument(
        "--endpoint",
        default=None,
        help="only to this endpoint (default: every endpoint that had it)",
    )
    p.set_defaults(func=replay)

    p = sub.add_parser("dispatch", help="run a dispatcher (start several to share the work)")
    config_arg(p)
    p.add_argument("--worker-id", default=None, help="name in leases and logs (host-pid)")
    p.add_argument(
        "--metrics-port", type=int, default=None, help="override webhooks.metrics_port (0: none)"
    )
    p.set_defaults(func=dispatch)
