"""``vgr edge replay FILE``: decode a receiver capture the way the agent would."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.nmea.assembler import GnssFix


def _show(fix: GnssFix) -> str:
    from edge.nmea.replay import iso_time

    if fix.lat is None or fix.lon is None:
        return f"{iso_time(fix.time)}  mode {fix.mode}  no fix"
    return (
        f"{iso_time(fix.time)}  mode {fix.mode}  {fix.lat:.7f},{fix.lon:.7f}  "
        f"alt {fix.alt_m} m  speed {fix.speed_mps} m/s  hdop {fix.hdop}  sats {fix.sats}"
    )


def replay_file(path: str, *, jsonl: bool, max_line_bytes: int) -> int:
    """Print each epoch as it completes (stdin may be a live receiver); counts to stderr."""
    from edge.nmea.replay import Pipeline, dumps, read_chunks, replay

    pipeline = Pipeline(max_line_bytes=max_line_bytes)
    epochs = fixed = 0
    try:
        stream = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: SIM115
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        with stream:
            for fix in replay(read_chunks(stream), pipeline):
                epochs += 1
                fixed += fix.fixed
                print(dumps(fix) if jsonl else _show(fix), flush=True)
    except BrokenPipeError:  # the reader went away (| head): not an error
        sys.stdout = open(os.devnull, "w")  # noqa: PTH123, SIM115 - no flush error at exit
        return 0
    except OSError as exc:
        print(f"cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    print(
        f"{epochs} epochs, {fixed} with a fix; {pipeline.framer.lines} lines, "
        f"{sum(pipeline.parser.accepted.values())} sentences used",
        file=sys.stderr,
    )
    for reason, n in sorted(pipeline.rejected().items()):
        print(f"rejected {reason}: {n}", file=sys.stderr)
    return 0


def register(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser("replay", help="decode an NMEA capture into one record per epoch")
    p.add_argument("file", help="capture file ('-' reads standard input)")
    p.add_argument("--jsonl", action="store_true", help="one JSON object per epoch")
    p.add_argument("--max-line-bytes", type=int, default=512, help="longest sentence kept")
    p.set_defaults(
        func=lambda a: replay_file(a.file, jsonl=a.jsonl, max_line_bytes=a.max_line_bytes)
    )
