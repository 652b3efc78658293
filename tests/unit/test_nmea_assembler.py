"""Fix assembly: epochs, dates, midnight, fix/no fix, and what is counted instead of emitted.

Sentences are real (GPSD regression logs) unless built with :func:`nmea`,
which gives a made-up body the right checksum.
"""

from __future__ import annotations

import operator
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.nmea.assembler import (
    AFTER_CYCLE_END,
    NO_DATE,
    NO_TIME,
    Assembler,
    GnssFix,
    resolve_date,
)
from edge.nmea.assembler import (
    REASONS as ASSEMBLY_REASONS,
)
from edge.nmea.framing import REASONS as FRAMING_REASONS
from edge.nmea.replay import Pipeline, replay
from edge.nmea.sentences import REASONS as SENTENCE_REASONS
from edge.nmea.sentences import Rejected, parse_sentence
from edge.nmea.updates import BEIDOU, GLONASS, GPS, Update

GPSD_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nmea" / "gpsd"


def nmea(body: str) -> str:
    return f"${body}*{reduce(operator.xor, body.encode(), 0):02X}"


def upd(line: str) -> Update:
    u = parse_sentence(line)
    assert not isinstance(u, Rejected), u
    return u


def run(lines: list[str], asm: Assembler | None = None, *, flush: bool = True) -> list[GnssFix]:
    a = asm if asm is not None else Assembler()
    out = [f for line in lines for f in a.push(upd(line))]
    return out + a.flush() if flush else out


def log_fixes(name: str) -> tuple[list[GnssFix], Pipeline]:
    p = Pipeline()
    return list(replay([(GPSD_DIR / name).read_bytes()], p)), p


# --- epochs from real captures ----------------------------------------------


def test_beidou_bd_epochs_constellations_and_units() -> None:
    fixes, p = log_fixes("beidou-bd.log")
    assert [f.mode for f in fixes] == [1] * 5 + [3] * 5
    # Dated from the RMC of the first fixed epoch, back to the capture's start.
    assert fixes[0].time == datetime(2015, 2, 25, 7, 41, 50, 799000, tzinfo=UTC)
    first = fixes[5]
    assert first.time == datetime(2015, 2, 25, 7, 41, 55, 799000, tzinfo=UTC)
    assert first.lat == pytest.approx(31.24795)
    assert first.alt_m == 156.9
    assert first.speed_mps == pytest.approx(0.30 * 1852 / 3600)  # knots → m/s
    assert first.course_deg == 4.94
    assert first.hdop == 1.3
    assert first.sats == 5  # GP 25,32 + BD 02,03,04
    assert first.constellations == {GPS, BEIDOU}
    assert p.assembler.counts == {}


def test_gb_talker_capture() -> None:
    fixes, _ = log_fixes("beidou-gb.log")
    fixed = [f for f in fixes if f.fixed]
    assert fixed
    assert all(f.time.date() == datetime(2015, 3, 2, tzinfo=UTC).date() for f in fixes)


def test_gn_gsa_without_system_id_is_split_by_prn_range() -> None:
    # bu353-glonass: GNGSA lists GPS PRNs, a second GNGSA GLONASS PRNs (65-96).
    fixes, _ = log_fixes("bu353-glonass.log")
    fixed = [f for f in fixes if f.fixed]
    assert fixed[-1].constellations == {GPS, GLONASS}


def test_gsa_system_ids_deduplicate_the_gp_and_gn_lists() -> None:
    # quectel-eg25-g: GPGSA and GNGSA (system 1) list the same GPS satellites.
    fixes, _ = log_fixes("quectel-eg25-g.log")
    f = next(f for f in fixes if f.time == datetime(2022, 9, 11, 19, 15, 15, 980000, tzinfo=UTC))
    assert f.sats == 8
    assert f.constellations == {GPS, GLONASS}


def test_gga_reporting_zero_satellites_while_gsa_lists_them() -> None:
    # garmin25lp: "1,00,3.1" in GGA, three PRNs in GSA.
    fixes, _ = log_fixes("garmin25lp.log")
    f = next(f for f in fixes if f.fixed)
    assert f.time == datetime(2005, 3, 15, 12, 3, 26, tzinfo=UTC)
    assert f.sats == 3


def test_quectel_timeless_epochs_are_counted_not_emitted() -> None:
    # quectel.log: after losing the fix the module sends GGA and RMC with no time.
    fixes, p = log_fixes("quectel.log")
    assert p.assembler.counts[NO_TIME] == 8
    assert all(f.fixed for f in fixes)


def test_no_date_ever_means_no_record() -> None:
    lines = [
        "$GNGGA,074150.799,,,,,0,00,,,M,0.0,M,,0000,*64",
        "$GNRMC,074150.799,V,,,,,,,250215,,,N*52",  # V: its date is not trusted
        "$GNGGA,074151.799,,,,,0,00,,,M,0.0,M,,0000,*65",
        "$GNRMC,074151.799,V,,,,,,,250215,,,N*53",
    ]
    asm = Assembler()
    assert run(lines, asm) == []
    assert asm.counts == {NO_DATE: 2}


def test_undated_hold_is_bounded() -> None:
    # A receiver sending only GGA, no date, for five epochs; then a ZDA.
    lines = [nmea(f"GPGGA,0000{s:02d}.00,,,,,0,00,,,M,,M,,") for s in range(5)]
    asm = Assembler(max_undated=2)
    assert run(lines, asm, flush=False) == []
    # GGA ended two epochs, so it ends each one now: all five are closed.
    assert asm.counts == {NO_DATE: 3}
    # The ZDA's epoch has no position: no record of its own, but its date
    # releases the two held epochs when it ends.
    out = run([nmea("GPZDA,000005.00,07,04,2019,00,00")], asm)
    assert [f.time for f in out] == [datetime(2019, 4, 7, 0, 0, s, tzinfo=UTC) for s in (3, 4)]
    assert asm.counts == {NO_DATE: 3}


# --- fix or no fix -----------------------------------------------------------


def test_void_rmc_and_quality_zero_are_no_fix() -> None:
    # mtk-3301: GGA quality 0 with a position, RMC V; then a real fix.
    fixes, _ = log_fixes("mtk-3301.log")
    by_second = {f.time.second: f for f in fixes}
    assert by_second[34].mode == 1
    assert by_second[34].lat is None
    assert by_second[36].mode == 3


def test_contradicting_sentences_give_no_fix() -> None:
    fixes = run(
        [
            "$GPGGA,022038.00,3644.762563,S,17444.069733,E,1,06,1.1,53.0,M,37.0,M,,*42",
            nmea("GPRMC,022038.00,V,3644.762563,S,17444.069733,E,0.0,,071020,18.3,E,N,V"),
            "$GPRMC,022039.00,A,3644.762563,S,17444.069733,E,0.0,,071020,18.3,E,A,V*44",
        ]
    )
    assert [f.mode for f in fixes] == [1, 2]


def test_mode_is_2_without_altitude() -> None:
    # bu353-glonass starts mid-epoch: this epoch has an RMC and no GGA.
    fixes, _ = log_fixes("bu353-glonass.log")
    first = next(f for f in fixes if f.fixed)
    assert first.mode == 2
    assert first.alt_m is None


# --- dates and midnight --------------------------------------------------------


def test_midnight_rollover_carries_the_date_forward() -> None:
    fixes = run(
        [
            nmea("GPRMC,235959.00,A,3114.8770,N,12135.2463,E,0.30,4.94,311224,,,A"),
            nmea("GPGGA,235959.00,3114.8770,N,12135.2463,E,1,08,0.9,10.0,M,8.3,M,,"),
            nmea("GPGGA,000000.00,3114.8771,N,12135.2463,E,1,08,0.9,10.0,M,8.3,M,,"),
            nmea("GPGGA,000001.00,3114.8772,N,12135.2463,E,1,08,0.9,10.0,M,8.3,M,,"),
        ]
    )
    assert [f.time for f in fixes] == [
        datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC),
        datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC),
    ]


def test_midnight_with_the_new_date_in_the_epoch() -> None:
    fixes = run(
        [
            nmea("GPGGA,235959.50,3114.8770,N,12135.2463,E,1,08,0.9,10.0,M,8.3,M,,"),
            nmea("GPZDA,235959.50,28,02,2024,00,00"),
            nmea("GPGGA,000000.50,3114.8770,N,12135.2463,E,1,08,0.9,10.0,M,8.3,M,,"),
            nmea("GPZDA,000000.50,29,02,2024,00,00"),
        ]
    )
    assert [f.time.date().isoformat() for f in fixes] == ["2024-02-28", "2024-02-29"]


def test_resolve_date_picks_the_nearest_day() -> None:
    anchor = datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)
    late = datetime(2024, 12, 31, 23, 59, 58, tzinfo=UTC)
    assert resolve_date(late.timetz(), anchor) == late


# --- cycle end -----------------------------------------------------------------

L70 = [  # quectel-L70.log, three epochs
    "$GPZDA,150122.000,09,03,2022,,*5B",
    "$GPRMC,150122.000,A,5104.0860,N,11405.7388,W,0.03,194.17,090322,,,D*74",
    "$GPGGA,150122.000,5104.0860,N,11405.7388,W,2,8,0.94,1102.3,M,-17.5,M,,*59",
    "$GPGSA,A,3,04,09,16,26,07,03,27,02,,,,,1.21,0.94,0.76*01",
    "$GPZDA,150123.000,09,03,2022,,*5A",
    "$GPRMC,150123.000,A,5104.0859,N,11405.7388,W,0.08,194.17,090322,,,D*74",
    "$GPGGA,150123.000,5104.0859,N,11405.7388,W,2,8,0.94,1102.3,M,-17.5,M,,*52",
    "$GPGSA,A,3,04,09,16,26,07,03,27,02,,,,,1.21,0.94,0.75*02",
    "$GPZDA,150124.000,09,03,2022,,*5D",
    "$GPRMC,150124.000,A,5104.0859,N,11405.7388,W,0.04,194.17,090322,,,D*7F",
    "$GPGGA,150124.000,5104.0859,N,11405.7388,W,2,8,0.94,1102.3,M,-17.5,M,,*55",
    "$GPGSA,A,3,04,09,16,26,07,03,27,02,,,,,1.21,0.94,0.76*01",
]


def test_learned_cycle_end_emits_without_waiting_for_the_next_epoch() -> None:
    asm = Assembler()
    emitted_at = [i for i, line in enumerate(L70) for _ in asm.push(upd(line))]
    # Epochs 1 and 2 close when the next one starts (at its ZDA: one per
    # epoch); by then GSA has ended two epochs, so epoch 3 closes at its GSA.
    assert emitted_at == [4, 8, 11]
    assert asm.flush() == []


def test_a_late_sentence_after_the_cycle_end_is_counted_and_unlearns_it() -> None:
    asm = Assembler()
    run(L70, asm, flush=False)
    late = nmea("GPGLL,5104.0859,N,11405.7388,W,150124.000,A,D")
    assert asm.push(upd(late)) == []
    assert asm.counts == {AFTER_CYCLE_END: 1}
    nxt = [line.replace("150124", "150125") for line in L70[8:]]
    out = [f for line in nxt for f in asm.push(upd(nmea(line[1 : line.index("*")])))]
    assert out == []  # no longer closes at GSA
    assert [f.time.second for f in asm.flush()] == [25]


def test_only_satellite_sentences_make_no_record() -> None:
    asm = Assembler()
    assert run(["$GLGSV,2,2,08,70,09,333,,69,56,281,,87,12,033,,81,11,130,,1*7D"], asm) == []
    assert asm.counts == {}


# --- nothing raises, end to end ---------------------------------------------------

_REAL = [
    line.decode() + "\r\n"
    for name in ("quectel-eg25-g.log", "gp-320fw-2019-04-07-coldboot.log")
    for line in (GPSD_DIR / name).read_bytes().splitlines()[:120]
    if line.startswith(b"$") and line.isascii()
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_REAL), st.binary(max_size=40)), max_size=80))
def test_real_sentences_mixed_with_noise_never_raise(parts: list[str | bytes]) -> None:
    p = Pipeline()
    data = b"".join(x.encode() if isinstance(x, str) else x for x in parts)
    fixes = list(replay([data], p))
    for f in fixes:
        assert f.time.tzinfo is not None
        assert f.mode in {1, 2, 3}
        assert (f.lat is None) == (f.mode == 1)
    assert set(p.rejected()) <= {*FRAMING_REASONS, *SENTENCE_REASONS, *ASSEMBLY_REASONS}
