"""``vgr cloud …``: the cloud services and their administration."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from cloud import cli_keys
    from cloud.ingest import cli as ingest_cli
    from cloud.registry import cli as registry_cli
    from cloud.storage import cli as storage_cli

    group = sub.add_parser("cloud", help="cloud services: ingest, storage, registry")
    cmds = group.add_subparsers(dest="cloud_command", metavar="COMMAND", required=True)
    storage_cli.register(cmds)
    ingest_cli.register(cmds)
    cli_keys.register(cmds)
    registry_cli.register(cmds)
