"""The ``vgr`` command: a thin dispatcher over the programs' registered subcommands.

Each program registers its command group under the ``vgr.commands`` entry-point
group and its config model under ``vgr.config_kinds`` (see pyproject.toml), so
this module imports none of them directly and the edge/cloud separation holds.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from protocols.configfile import ConfigError, parse_toml

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
ParseConfig = Callable[..., Any]


def _loaded(group: str) -> dict[str, Any]:
    return {ep.name: ep.load() for ep in entry_points(group=group)}


def check_config(path: Path) -> int:
    """Validate a config file of any kind; print each problem with its key."""
    try:
        text = path.read_text(encoding="utf-8")
        kind = parse_toml(text, source=str(path)).get("kind")
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    parsers: dict[str, ParseConfig] = _loaded("vgr.config_kinds")
    if not isinstance(kind, str) or kind not in parsers:
        known = ", ".join(sorted(parsers))
        print(f"{path}: kind: must be one of {known} (found {kind!r})", file=sys.stderr)
        return 1
    try:
        parsers[kind](text, environ=os.environ, source=str(path))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s) in this {kind} config", file=sys.stderr)
        return 1
    print(f"{path}: valid {kind} config")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vgr", description="VGR vehicle-GPS risk control: edge agent, cloud, simulator."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    registrations: dict[str, Register] = _loaded("vgr.commands")
    for name in sorted(registrations):
        registrations[name](sub)
    chk = sub.add_parser("check-config", help="validate a config file (edge or cloud)")
    chk.add_argument("file", type=Path)
    chk.set_defaults(func=lambda args: check_config(args.file))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
