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
from edge.nmea.sentences import BAD_CHECKSUM, NO_CHECKSUM, Rejected
from edge.nmea.sentences import parse_sentence as parse
from edge.nmea.updates import Gga, Gll, Gns, Rmc, Zda

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
            # An RMC/GGA/GNS/GLL without time makes the echo time unknown.
            if isinstance(update, Rmc | Gga | Gns | Gll) or (
                isinstance(update, Zda) and update.tod is not None
            ):
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
    assert ep.lat is not None
    assert ep.lon is not None
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


# --- what we know and explain -------------------------------------------------

#: Every disagreement we keep, by log and epoch: why it is GPSD's quirk or our
#: choice. The golden test fails on any disagreement not listed here, and on
#: any listed one that has gone away.
KNOWN_EXTRA: dict[str, dict[str, str]] = {
    "quectel.log": {
        "2020-10-07T02:20:38.000Z": (
            "GPSD reports this epoch fixed three times (after its GGA, RMC and GSA), then "
            "sends a no-fix TPV with the same time. That TPV comes from the next epoch's "
            "`$GPGSA,A,1`: the module has lost the fix and sends sentences without any time "
            "(empty GGA and RMC), so GPSD files them under the last time it saw. We close the "
            "epoch at its last GSV (the learned cycle end) and count the timeless epochs that "
            "follow as `no_time`."
        ),
    },
}
KNOWN_MISSING: dict[str, dict[str, str]] = {}
#: Mode 2 against 3 on epochs both fix; ours is 3 exactly when the epoch has an altitude.
KNOWN_MODE: dict[str, dict[str, str]] = {
    "bu353-glonass.log": {
        "2014-05-26T08:14:11.000Z": (
            "The capture starts mid-epoch: this epoch has an RMC but no GGA, so no altitude "
            "and mode 2 for us; GPSD keeps mode 3 from the GSA sentences before it."
        ),
    },
    "garmin25lp.log": {
        "2005-03-15T12:03:26.000Z": (
            "The GSA says 2D (`$GPGSA,A,2,…`) while the GGA carries an altitude; GPSD takes "
            "the mode from GSA, we from the altitude (the quectel logs show GSA saying 2 "
            "with a measured altitude on every epoch, where GPSD itself reports 3)."
        ),
    },
    "mtk-3301.log": {
        "08:14:36.000 (no date)": (
            "GPSD's only report on this epoch is the undated TPV after its GGA, with mode 2 "
            "(three satellites); the GGA has an altitude, so ours is 3."
        ),
    },
}

LOG_NOTES: dict[str, str] = {
    "beidou-bd.log": (
        "BD talker (TSCPB). GPSD takes a date only from an RMC with status A; here the "
        "first fixed epoch's GGA and GNS come before that RMC, so GPSD reports that epoch "
        "without a time: it is matched by time of day. The five no-fix epochs before it "
        "are held and dated from the same RMC. `$PSRF…` are proprietary."
    ),
    "beidou-gb.log": (
        "GB talker (NMEA 4.x BeiDou), GN GSA. Same first-epoch pattern as beidou-bd."
    ),
    "bu303-moving.log": (
        "**Not NMEA**: SiRF binary frames (0xA0 0xA2 … 0xB0 0xB3). Our framing finds no "
        "sentence in it and counts the bytes as garbage, as it should. The sentences in "
        "the `.chk` are GPSD's own NMEA rendering of the binary data; the row compares our "
        "decoding of that rendering with GPSD's TPVs (source `gpsd-echo`)."
    ),
    "bu303-nofix.log": (
        "**Not NMEA** (SiRF binary; see bu303-moving). GPSD's rendering has only RMC with "
        "status V, whose dates we do not trust: all 7 epochs are counted `no_date`."
    ),
    "bu303-stillfix.log": "**Not NMEA** (SiRF binary; see bu303-moving).",
    "bu353-glonass.log": "GN RMC and GSA (GSA without system ID: split by PRN range).",
    "garmin25lp.log": ("NMEA 2.0. The GGA reports 00 satellites while fixed; the GSA lists 3."),
    "gp-320fw-2019-04-07-coldboot.log": (
        "Cold boot with broken and glued sentences. The first epoch (00:03:43.03) comes "
        "before any date: GPSD reports it undated, we hold it until the RMC of 00:03:45.03 "
        "dates it. After the reboot nothing is fixed. The ZDA then says 1999-08-22 (a GPS "
        "week-rollover bug in the receiver); GPSD corrects its no-fix TPVs to 2019-04-07, "
        "we keep the receiver's date (those epochs have no fix). Sentences counted "
        "`after_cycle_end`: while the stream was broken only RMC survived per epoch, so RMC "
        "was learned as the cycle end, until the first healthy epochs proved it wrong."
    ),
    "hp58534a.log": (
        "No checksums at all: GPSD accepts none of it and neither do we (`no_checksum`)."
    ),
    "mtk-3301.log": (
        "MTK: `$POLYN` without checksum, `$PMTK…` proprietary. At 08:14:34.590 the GGA has "
        "a position with quality 0 and the RMC says V: GPSD's TPV after the GGA shows a "
        "position with mode 2, its final word after the RMC is mode 1; ours is no fix."
    ),
    "navika-100-fix.log": "NMEA 4.10 (GSA/GSV with system and signal IDs).",
    "nmea-fuzzy-cases.log": "Trimble RTK: 8-decimal minutes, qualities 2 and 4, GP/GN mixed.",
    "quectel-L70.log": "`$GPGST` and `$GPGRS` ignored on purpose; `$PMTK`, `$PQVERNO` proprietary.",
    "quectel-eg25-g.log": (
        "Cold start: until the fix only GNS carries a time (GGA and RMC are empty); those "
        "epochs are held and dated when the first RMC with status A arrives. `$PQGSV` is "
        "proprietary."
    ),
    "quectel.log": "Loses the fix mid-capture and then sends sentences without time.",
    "skytraq.log": (
        "Cold start, no fix: 17 epochs, all mode 1. `$GPGST` ignored, `$PSTI` proprietary."
    ),
    "ublox-8.log": (
        "UBX binary before the first sentence (garbage); the last line is cut off before "
        "its checksum (`no_checksum`)."
    ),
}


def _cell(x: float) -> str:
    return f"{x:.1e}" if x else "0"


def render_markdown(results: list[Agreement]) -> str:
    """``docs/gpsd-agreement.md``, from the results of :func:`compare` over all logs."""
    out = [
        "# Agreement with GPSD on its regression logs",
        "",
        "Generated by `.venv/bin/python scripts/gpsd_agreement.py` from the logs in",
        "`../shared/data/nmea/gpsd/` and GPSD's decoding of them (`.chk`); checked by",
        "`tests/golden/test_gpsd_golden.py`, which fails when a number here changes.",
        "Do not edit by hand: change the code or the explanations in",
        "`tests/golden/gpsd_compare.py`, rerun the script, and say why in the commit.",
        "",
        "How GPSD's TPV reports are grouped into epochs, and when an epoch counts as",
        "fixed in GPSD, is described in `tests/golden/gpsd_compare.py`. *Matched* means we",
        f"fix the same epoch with a position within {POSITION_TOLERANCE_DEG:g}° in latitude",
        "and longitude. *Extra* are epochs we fix and GPSD does not. Speed, course and",
        "altitude differences are over matched epochs where both report the value (GPSD",
        "prints 3 decimals). *Sentences* compares the lines GPSD accepted (echoed in the",
        "`.chk`) with the lines our framing finds with a valid checksum.",
        "",
        "## Summary",
        "",
        "| log | source | GPSD fixed | matched | agreement | max pos. error (°) "
        "| we fix | extra | mode differs | sentences GPSD / ours |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        sentences = (
            "n/a (binary)"
            if r.source != "log"
            else f"{r.gpsd_sentences} / {r.our_sentences}"
            + ("" if not r.sentence_diff else f" ({len(r.sentence_diff)} differ)")
        )
        agreement = f"{r.ratio:.0%}" if r.gpsd_fixed else "n/a"
        out.append(
            f"| {r.log} | {r.source} | {r.gpsd_fixed} | {r.matched} | {agreement} "
            f"| {_cell(r.max_error_deg)} | {r.our_fixed} | {len(r.extra)} | {len(r.mode_differs)} "
            f"| {sentences} |"
        )
    for r in results:
        out += [
            "",
            f"## {r.log}",
            "",
            LOG_NOTES.get(r.log, ""),
            "",
            "| measure | value |",
            "|---|---|",
            "| compared with | "
            + ("the log" if r.source == "log" else "GPSD's NMEA rendering of the binary")
            + " |",
            f"| GPSD fixed epochs (of them undated) | {r.gpsd_fixed} ({r.undated_gpsd}) |",
            f"| matched | {r.matched}" + (f" ({r.ratio:.0%})" if r.gpsd_fixed else "") + " |",
            f"| our records / with a fix | {r.our_epochs} / {r.our_fixed} |",
            f"| max position error | {_cell(r.max_error_deg)}° |",
            f"| max speed / course / altitude difference | {r.max_speed_diff:.4f} m/s / "
            f"{r.max_course_diff:.4f}° / {r.max_alt_diff:.3f} m |",
            f"| rejected by us | {_counts(r.rejected)} |",
        ]
        explained = [
            *(("missing", k, v) for k, v in KNOWN_MISSING.get(r.log, {}).items()),
            *(("extra", k, v) for k, v in KNOWN_EXTRA.get(r.log, {}).items()),
            *(("mode", k, v) for k, v in KNOWN_MODE.get(r.log, {}).items()),
        ]
        if explained:
            out += ["", "Disagreements:", ""]
            out += [f"- {kind} at {when}: {why}" for kind, when, why in explained]
    return "\n".join(out) + "\n"


def _counts(c: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "nothing"
