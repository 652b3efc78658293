"""``vgr edge …``: the agent and the installer's tools."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("edge", help="edge agent on a tracker, and installer tools")
    cmds = group.add_subparsers(dest="edge_command", metavar="COMMAND", required=True)
    from edge import cli_trust
    from edge.agent import cli as agent_cli
    from edge.installer import cli as installer_cli
    from edge.nmea import cli as nmea_cli

    agent_cli.register(cmds)
    nmea_cli.register(cmds)
    cli_trust.register(cmds)
    installer_cli.register(cmds)
