"""The command line of the agent's zipapp (``vgr-agent.pyz``) on a tracker.

Only the edge's own commands: ``run`` (the agent), ``verify-token``,
``replay``, ``provision``, ``selftest``, an edge-only ``check-config`` and
``check-deps`` (are the third-party packages importable from this Python?).
No entry points are used: a zipapp has no installed metadata.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

#: Module imported → what provides it (the wheel, or the Debian package without wheels).
DEPENDENCIES: Final = (
    ("aiomqtt", "aiomqtt"),
    ("paho.mqtt", "paho-mqtt / python3-paho-mqtt"),
    ("pynmea2", "pynmea2 / python3-nmea2"),
    ("msgspec", "msgspec / python3-msgspec"),
    ("serial_asyncio", "pyserial-asyncio / python3-serial-asyncio"),
)


def check_deps() -> int:
    missing = 0
    for module, provider in DEPENDENCIES:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            missing += 1
            print(f"MISSING {module}: {exc} (install {provider})")
            continue
        print(f"ok      {module} {getattr(mod, '__version__', '')}".rstrip())
    return 1 if missing else 0


def check_config(path: Path) -> int:
    from edge.config import load_config
    from protocols.configfile import ConfigError

    try:
        load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        return 1
    print(f"{path}: valid edge config")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from edge import __version__, cli_trust
    from edge.agent import cli as agent_cli
    from edge.installer import cli as installer_cli
    from edge.nmea import cli as nmea_cli

    parser = argparse.ArgumentParser(prog="vgr-agent", description="VGR edge agent on a tracker.")
    parser.add_argument("--version", action="version", version=f"vgr-agent {__version__}")
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    agent_cli.register(cmds)
    cli_trust.register(cmds)
    nmea_cli.register(cmds)
    installer_cli.register_on_tracker(cmds)
    p = cmds.add_parser("check-config", help="validate an edge config file")
    p.add_argument("file", type=Path)
    p.set_defaults(func=lambda a: check_config(a.file))
    p = cmds.add_parser("check-deps", help="import every third-party package the agent needs")
    p.set_defaults(func=lambda _a: check_deps())
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
