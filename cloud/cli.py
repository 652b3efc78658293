"""``vgr cloud …``: the cloud services and their administration.

Each service package contributes its subcommands through a ``register``
function in its own ``cli`` module, listed here once.
"""

from __future__ import annotations

import argparse
import importlib

GROUPS = (
    "cloud.storage.cli",
    "cloud.ingest.cli",
    "cloud.cli_keys",
    "cloud.registry.cli",
    "cloud.refdata.cli",
    "cloud.webhooks.cli",
    "cloud.risk.cli",
    "cloud.api.cli",
    "cloud.risk.anomaly.cli",
    "cloud.recovery.cli",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser(
        "cloud", help="cloud services: ingest, storage, registry, risk, webhooks, reference data"
    )
    cmds = group.add_subparsers(dest="cloud_command", metavar="COMMAND", required=True)
    for name in GROUPS:
        importlib.import_module(name).register(cmds)
