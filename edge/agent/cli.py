"""``vgr edge run --config FILE``: the agent process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

log = logging.getLogger("vgr.edge")


def run(args: argparse.Namespace) -> int:
    from edge.agent.core import Agent
    from edge.agent.trust import load_keyring
    from edge.agent.uplink import Uplink, UplinkSettings
    from edge.config import load_config
    from protocols.configfile import ConfigError
    from protocols.secrets import SecretError, resolve_secret
    from protocols.token_verify import Keyring

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        keyring = load_keyring(cfg.trust.platform_keys)
    except (OSError, ValueError) as exc:
        log.error("platform keys unusable (%s): running unauthorized", exc)  # noqa: TRY400
        keyring = Keyring()
    up = cfg.uplink
    password = None
    if up.password is not None:
        try:
            password = resolve_secret(
                up.password,
                environ=os.environ,
                read_text=lambda p: Path(p).read_text(encoding="utf-8"),
            )
        except SecretError as exc:
            print(f"{args.config}: uplink.password: {exc}", file=sys.stderr)
            return 2

    async def main() -> int:
        agent = Agent(cfg, keyring=keyring)
        agent.uplink = Uplink(
            UplinkSettings(
                host=up.host,
                port=up.port,
                device_id=cfg.device.id,
                username=up.username or cfg.device.id,
                password=password,
                ca_file=str(up.ca_file) if up.ca_file else None,
                tls=up.tls,
                keepalive_s=up.keepalive_s,
                backoff_min_s=up.backoff_min_s,
                backoff_max_s=up.backoff_max_s,
            ),
            handler=agent.on_message,
            status=agent.status,
            on_connect=agent.on_uplink_connected,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.stop.set)
        log.info("agent %s starting (boot %s)", cfg.device.id, agent.outbox.boot_id)
        return await agent.run(exit_when_drained=args.exit_when_drained)

    return asyncio.run(main())


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("run", help="run the edge agent")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument(
        "--exit-when-drained",
        action="store_true",
        help="with a file or stdin GNSS source: exit once it ended and the outbox is empty",
    )
    p.set_defaults(func=run)
