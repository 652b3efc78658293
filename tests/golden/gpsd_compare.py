"""Compare our replay of a GPSD regression log with GPSD's own decoding (``.chk``).

Shared by ``tests/golden/test_gpsd_golden.py`` and ``scripts/gpsd_agreement.py``.

A ``.chk`` file interleaves the sentences GPSD accepted (echoed as it read
them) with its JSON reports. GPSD sends a TPV report after many sentences,
so one epoch gives several TPVs; they are grouped into epochs thus:

* the *echo time* is the time of day of the last RMC/GGA/GNS/GLL (or ZDA)
  echoed; an RMC/GGA/GNS/GLL without a time (Quectel modules after losing
  the fix) makes it unknown;
* a TPV with ``time`` belongs to that instant; but a no-fix TPV whose time is
  not the echo time carries a stale time (GPSD keeps the last time through
  epochs that bring none) and says nothing about that instant;
* a TPV without ``time`` (GPSD had no date yet) belongs to the echo time of
  day, and is matched to our record by time of day alone; if GPSD later
  reports the same time of day with a date, the dated epoch is the one kept.

An epoch is *fixed* in GPSD when its last TPV has mode 2 or 3 and a position:
GPSD revises its TPV as sentences arrive, and the last one is its final word.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path

from edge.nmea.assembler import GnssFix
from edge.nmea.framing import Framer
from edge.nmea.replay import CommentFilter, Pipeline, replay
from edge.nmea.sentences import BAD_CHECKSUM, NO_CHECKSUM, Gga, Gll, Gns, Rejected, Rmc, Zda
from edge.nmea.sentences import parse_sentence as parse

GPSD_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nmea" / "gpsd"
POSITION_TOLERANCE_DEG = 1e-6

#: Logs that hold no NMEA: SiRF binary (0xA0 0xA2 … 0xB0 0xB3 frames). The
#: sentences in their ``.chk`` are GPSD's own NMEA rendering of the binary
#: data, so those are what we replay for them (see ``compare``).
BINARY_LOGS = frozenset({"bu303-moving.log", "bu303-nofix.log", "bu303-stillfix.log"})

# An epoch key: an instant, or a time of day when GPSD gave no date.
EpochKey = datetime | time


@dataclass
class GpsdEpoch:
    key: EpochKey
    mode: int
    lat: float | None
    lon: float | None
    speed: float | None
    track: float | None
    alt: float | None

    @property
    def fixed(self) -> bool:
        return self.mode >= 2 and self.lat is not None and self.lon is not None


@dataclass
class Agreement:
    log: str
    source: str = "log"  # "log", or "gpsd-echo" for the binary logs
    gpsd_fixed: int = 0  # fixed epochs in GPSD's output
    matched: int = 0  # of those, fixed by us at the same instant, within tolerance
    max_error_deg: float = 0.0  # largest position difference over epochs both fixed
    max_speed_diff: float = 0.0  # m/s, over epochs where both report a speed
    max_course_diff: float = 0.0  # degrees
    max_alt_diff: float = 0.0  # metres (MSL)
    missing: list[str] = field(default_factory=list)  # GPSD fixed; we did not, or elsewhere
    extra: list[str] = field(default_factory=list)  # we fixed; GPSD did not
    mode_differs: list[str] = field(default_factory=list)  # both fixed: 2D against 3D
    our_epochs: int = 0
    our_fixed: int = 0
    undated_gpsd: int = 0  # GPSD fixed epochs reported without a date
    gpsd_sentences: int = 0  # sentences GPSD accepted (echoed in the .chk)
    our_sentences: int = 0  # lines our framing found with a valid checksum
    sentence_diff: list[str] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def ratio(self) -> float:
        return self.matched / self.gpsd_fixed if self.gpsd_fixed else 1.0


def label(t: EpochKey) -> str:
    if isinstance(t, datetime):
        return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{t.isoformat(timespec='milliseconds').replace('+00:00', '')} (no date)"


def read_chk(path: Path) -> tuple[list[GpsdEpoch], list[str]]:
    """GPSD's epochs, in order, and the sentences it echoed."""
    epochs: dict[EpochKey, GpsdEpoch] = {}
    echoed: list[str] = []
    tod: time | None = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("$", "!")):
            echoed.append(line)
            update = parse(line)
            if isinstance(update, Rmc | Gga | Gns | Gll):
                tod = update.tod
            elif isinstance(update, Zda) and update.tod is not None:
                tod = update.tod
            continue
        if not line.startswith("{"):
            continue
        report = json.loads(line)
        if report.get("class") != "TPV":
            continue
        mode = report.get("mode", 0)
        key: EpochKey | None = tod
        if "time" in report:
            key = datetime.fromisoformat(report["time"].replace("Z", "+00:00"))
            if mode < 2 and key.timetz() != tod:
                continue  # a stale time
        if key is not None:
            epochs[key] = GpsdEpoch(
                key,
                mode,
                report.get("lat"),
                report.get("lon"),
                report.get("speed"),
                report.get("track"),
                report.get("altMSL"),
            )
    dated = {k.timetz() for k, e in epochs.items() if isinstance(k, datetime) and e.fixed}
    kept = [e for k, e in epochs.items() if isinstance(k, datetime) or k not in dated]
    return kept, echoed


def checksummed_lines(data: bytes) -> list[str]:
    """The lines our framing finds whose checksum is right: what GPSD echoes."""
    lines = Framer().feed(CommentFilter().feed(data))

    def passes(line: str) -> bool:
        result = parse(line)
        return not (isinstance(result, Rejected) and result.reason in {NO_CHECKSUM, BAD_CHECKSUM})

    return [ln for ln in lines if passes(ln)]


def _diff(a: float | None, b: float | None) -> float:
    return abs(a - b) if a is not None and b is not None else 0.0


def _check_epoch(result: Agreement, ep: GpsdEpoch, mine: GnssFix | None) -> None:
    assert ep.lat is not None and ep.lon is not None
    name = label(ep.key)
    if mine is None or mine.lat is None or mine.lon is None:
        result.missing.append(f"{name}: GPSD mode {ep.mode}, ours {mine.mode if mine else '-'}")
        return
    err = max(abs(mine.lat - ep.lat), abs(mine.lon - ep.lon))
    result.max_error_deg = max(result.max_error_deg, err)
    if err > POSITION_TOLERANCE_DEG:
        result.missing.append(f"{name}: position differs by {err:.2e} deg")
        return
    result.matched += 1
    result.max_speed_diff = max(result.max_speed_diff, _diff(mine.speed_mps, ep.speed))
    result.max_course_diff = max(result.max_course_diff, _diff(mine.course_deg, ep.track))
    result.max_alt_diff = max(result.max_alt_diff, _diff(mine.alt_m, ep.alt))
    if mine.mode != ep.mode:
        result.mode_differs.append(f"{name}: GPSD mode {ep.mode}, ours {mine.mode}")


def compare(log: Path) -> Agreement:
    """Replay ``log`` and hold the result against its ``.chk``."""
    gpsd, echoed = read_chk(log.with_name(log.name + ".chk"))
    raw = log.read_bytes()
    binary = log.name in BINARY_LOGS
    data = "".join(f"{s}\r\n" for s in echoed).encode("ascii") if binary else raw
    pipeline = Pipeline()
    ours = list(replay([data], pipeline))
    result = Agreement(
        log.name, source="gpsd-echo" if binary else "log", rejected=pipeline.rejected()
    )
    result.our_epochs = len(ours)
    result.our_fixed = sum(f.fixed for f in ours)

    by_time = {f.time: f for f in ours}
    by_tod = {f.time.timetz(): f for f in ours}
    fixed_keys: set[EpochKey] = set()
    for ep in gpsd:
        if not ep.fixed:
            continue
        result.gpsd_fixed += 1
        fixed_keys.add(ep.key)
        if isinstance(ep.key, datetime):
            mine = by_time.get(ep.key)
        else:
            result.undated_gpsd += 1
            mine = by_tod.get(ep.key)
        _check_epoch(result, ep, mine if mine is not None and mine.fixed else None)
    fixed_tods = {k.timetz() if isinstance(k, datetime) else k for k in fixed_keys}
    result.extra = [
        f"{label(f.time)}: ours mode {f.mode}"
        for f in ours
        if f.fixed and f.time not in fixed_keys and f.time.timetz() not in fixed_tods
    ]

    mine_lines = checksummed_lines(raw)
    result.gpsd_sentences = len(echoed)
    result.our_sentences = len(mine_lines)
    if not binary:
        only_gpsd = Counter(echoed) - Counter(mine_lines)
        only_ours = Counter(mine_lines) - Counter(echoed)
        result.sentence_diff = [f"GPSD only: {s}" for s in only_gpsd.elements()] + [
            f"ours only: {s}" for s in only_ours.elements()
        ]
    return result


def logs() -> list[Path]:
    return sorted(GPSD_DIR.glob("*.log"))
