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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``only`` just that program's commands (``vgr edge run`` on a
    tracker must not pay for importing the cloud's command modules)."""
    parser = argparse.ArgumentParser(
        prog="vgr", description="VGR vehicle-GPS risk control: edge agent, cloud, simulator."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    eps = {ep.name: ep for ep in entry_points(group="vgr.commands")}
    names = [only] if only in eps else sorted(eps)
    for name in names:
        register: Register = eps[name].load()
        register(sub)
    chk = sub.add_parser("check-config", help="validate a config file (edge or cloud)")
    chk.add_argument("file", type=Path)
    chk.set_defaults(func=lambda args: check_config(args.file))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    first = args_in[0] if args_in else None
    parser = build_parser(first if first not in (None, "-h", "--help", "check-config") else None)
    args = parser.parse_args(args_in)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
