"""``vgr edge provision|selftest|bundle|flash``: the installer's commands.

Handlers import their modules lazily, so ``vgr --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _provision(args: argparse.Namespace) -> int:
    from edge.installer import provision

    return provision.run(args)


def _selftest(args: argparse.Namespace) -> int:
    from edge.installer import selftest

    return selftest.run(args)


def _bundle(args: argparse.Namespace) -> int:
    from edge.installer import bundle

    return bundle.run(args)


def _flash(args: argparse.Namespace) -> int:
    from edge.installer import flash

    return flash.run(args)


def add_provision(cmds: Commands) -> None:
    p = cmds.add_parser(
        "provision",
        help="register and bind a tracker with the cloud and write its agent config",
        description="Register the device, bind it to a vehicle and a loan contract, get its "
        "credentials, verify them, and write the agent's config and trust files. The "
        "installer key is read from an environment variable or a file, never an argument.",
    )
    p.add_argument("--api", required=True, help="provisioning API, e.g. https://cloud.example")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--key-env", metavar="NAME", help="environment variable holding the key")
    key.add_argument("--key-file", metavar="PATH", type=Path, help="file holding the key")
    p.add_argument("--imei", required=True, help="15-digit IMEI (the device id)")
    p.add_argument("--kind", required=True, choices=("wired", "wireless"))
    p.add_argument("--vin", required=True, help="vehicle identification number (17 characters)")
    p.add_argument("--contract", required=True, help="the loan contract id")
    p.add_argument("--plate", help="licence plate")
    p.add_argument("--address", help="the borrower's declared address")
    p.add_argument("--adcode", help="6-digit administrative code of that address, e.g. 320100")
    p.add_argument(
        "--areas",
        type=Path,
        metavar="FILE",
        help='JSON {"allowed": [...], "forbidden": [...]} areas of the policy',
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("/etc/vgr"),
        metavar="DIR",
        help="where to write edge.toml and the trust files (default /etc/vgr)",
    )
    p.add_argument(
        "--outbox",
        type=Path,
        default=Path("/var/lib/vgr/outbox.sqlite3"),
        help="the agent's outbox file (default /var/lib/vgr/outbox.sqlite3)",
    )
    p.add_argument("--uplink-host", help="broker host for the tracker (default: the cloud's)")
    p.add_argument(
        "--expect-platform-key",
        type=Path,
        metavar="PEM",
        help="refuse unless the cloud signs with this platform public key",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per API request")
    p.add_argument("--api-ca", metavar="PEM", help="CA file for the API's certificate")
    g = p.add_argument_group("GNSS receiver (written into [gnss]; defaults: serial /dev/ttyUSB0)")
    g.add_argument("--gnss-source", choices=("serial", "tcp", "pty", "file", "stdin"))
    g.add_argument("--gnss-path", help="serial device, pty or file")
    g.add_argument("--gnss-baudrate", type=int)
    g.add_argument("--gnss-host")
    g.add_argument("--gnss-port", type=int)
    p.set_defaults(func=_provision)


def add_selftest(cmds: Commands) -> None:
    p = cmds.add_parser(
        "selftest",
        help="check GNSS, broker, token, clock, outbox and disk; exit 1 on any failure",
    )
    p.add_argument("--config", type=Path, required=True)
    p.add_argument(
        "--gnss-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for a GNSS fix (default 60)",
    )
    p.set_defaults(func=_selftest)


def add_bundle(cmds: Commands) -> None:
    p = cmds.add_parser(
        "bundle",
        help="pack the agent, its config and trust files and a systemd unit into one tarball",
    )
    p.add_argument("--config", type=Path, required=True, help="a provisioned edge.toml")
    p.add_argument("--out", type=Path, required=True, help="bundle file (.tar.gz) to write")
    p.add_argument(
        "--no-wheels",
        action="store_true",
        help="leave out the dependencies' wheels (the tracker provides them)",
    )
    p.add_argument(
        "--platform",
        action="append",
        metavar="TAG",
        help="wheel platform of the tracker, e.g. manylinux2014_aarch64 (repeatable)",
    )
    p.add_argument("--python-version", metavar="X.Y", help="the tracker's Python (default: ours)")
    p.add_argument(
        "--find-links",
        type=Path,
        metavar="DIR",
        help="take wheels from this directory only (offline build)",
    )
    p.set_defaults(func=_bundle)


def add_flash(cmds: Commands) -> None:
    p = cmds.add_parser(
        "flash",
        help="write a bundle into a tracker's root filesystem and verify every file",
    )
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument(
        "--target",
        type=Path,
        required=True,
        metavar="DIR",
        help="the tracker's root filesystem, mounted",
    )
    p.add_argument(
        "--verify-only",
        action="store_true",
        help="only compare what is in DIR with the bundle's manifest",
    )
    p.add_argument(
        "--i-mean-root",
        action="store_true",
        help="allow DIR to be / (when running on the tracker itself)",
    )
    p.set_defaults(func=_flash)


def register(cmds: Commands) -> None:
    """All installer commands, for ``vgr edge``."""
    add_provision(cmds)
    add_selftest(cmds)
    add_bundle(cmds)
    add_flash(cmds)


def register_on_tracker(cmds: Commands) -> None:
    """The commands that make sense inside the agent's zipapp on a tracker."""
    add_provision(cmds)
    add_selftest(cmds)


def main_for(
    register_commands: Callable[[Commands], None], prog: str, argv: Sequence[str] | None = None
) -> int:
    """A stand-alone command line over ``register_commands`` (``python -m edge.installer``)."""
    parser = argparse.ArgumentParser(prog=prog)
    cmds = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_commands(cmds)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
