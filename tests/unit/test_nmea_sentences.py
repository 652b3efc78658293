"""Sentence parsing: the dispatch table, unit conversion, and every rejection reason.

Sentences are real (GPSD regression logs) unless a comment says how one was
derived from a real one; derived sentences get a correct checksum from
:func:`nmea`, so they test the reason they are meant to.
"""

from __future__ import annotations

import math
import operator
from datetime import UTC, date, time
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.nmea.fields import KNOTS_TO_MPS
from edge.nmea.framing import Framer
from edge.nmea.sentences import (
    BAD_CHECKSUM,
    HANDLERS,
    IGNORED,
    IGNORED_REASON,
    NO_CHECKSUM,
    PARSE_ERROR,
    PROPRIETARY,
    REASONS,
    TOO_FEW_FIELDS,
    UNKNOWN_SENTENCE,
    UNKNOWN_TALKER,
    Rejected,
    SentenceParser,
    parse_sentence,
)
from edge.nmea.updates import (
    BEIDOU,
    GLONASS,
    GPS,
    Gga,
    Gll,
    Gns,
    Gsa,
    Gsv,
    Rmc,
    Vtg,
    Zda,
)


def nmea(body: str) -> str:
    """``$body*hh`` with the right checksum."""
    return f"${body}*{reduce(operator.xor, body.encode(), 0):02X}"


def reason(line: str) -> str:
    result = parse_sentence(line)
    assert isinstance(result, Rejected), result
    return result.reason


# --- the table --------------------------------------------------------------


def test_table_covers_the_fix_sentences() -> None:
    assert {"RMC", "GGA", "GNS", "GSA", "GSV", "VTG", "ZDA", "GLL"} <= set(HANDLERS)
    assert {"TXT", "GBS", "GST", "DTM"} <= IGNORED
    assert not IGNORED & set(HANDLERS)


@pytest.mark.parametrize("kind", sorted(HANDLERS))
def test_each_handler_opens_with_a_real_example_that_parses(kind: str) -> None:
    doc = HANDLERS[kind].parse.__doc__
    assert doc is not None
    example = doc.split()[0]
    assert example.startswith("$")
    assert example[3:6] == kind
    result = parse_sentence(example)
    assert not isinstance(result, Rejected), result


# --- handlers: values and units ----------------------------------------------


def test_rmc_converts_knots_to_metres_per_second() -> None:
    u = parse_sentence("$GNRMC,074155.799,A,3114.8770,N,12135.2463,E,0.30,4.94,250215,,,A*76")
    assert isinstance(u, Rmc)
    assert u.talker == "GN"
    assert u.valid
    assert u.tod == time(7, 41, 55, 799000, tzinfo=UTC)
    assert u.date == date(2015, 2, 25)
    assert u.lat == pytest.approx(31 + 14.8770 / 60)
    assert u.lon == pytest.approx(121 + 35.2463 / 60)
    assert u.speed_mps == pytest.approx(0.30 * 1852 / 3600)
    assert u.course_deg == 4.94


def test_rmc_southern_and_western_hemispheres_are_negative() -> None:
    u = parse_sentence(
        "$GPRMC,022021.00,A,3644.759368,S,17444.072860,E,0.0,301.9,071020,18.3,E,A,V*6E"
    )
    assert isinstance(u, Rmc)
    assert u.lat == pytest.approx(-36.745989467, abs=1e-9)
    u = parse_sentence(
        "$GPRMC,132820.60,A,4134.49821229,N,09345.03351845,W,3.252,92.308,180320,11.5985,E,D*1A"
    )
    assert isinstance(u, Rmc)
    assert u.lon == pytest.approx(-93.750558641, abs=1e-9)
    assert u.valid  # mode D (differential) is a fix


def test_rmc_void_has_no_position_even_with_placeholders() -> None:
    # mtk-3301: latitude 89°60' is the receiver's "nothing yet".
    u = parse_sentence("$GPRMC,081433.591,V,8960.000000,N,00000.000000,E,0.000,0.00,120180,,,N*4B")
    assert isinstance(u, Rmc)
    assert not u.valid
    assert u.lat is None
    assert u.lon is None


def test_rmc_status_a_with_mode_n_is_not_a_fix() -> None:
    # Derived from beidou-bd's first fixed RMC with the mode indicator set to N.
    u = parse_sentence(nmea("GNRMC,074155.799,A,3114.8770,N,12135.2463,E,0.30,4.94,250215,,,N"))
    assert isinstance(u, Rmc)
    assert not u.valid


def test_gga_fields() -> None:
    u = parse_sentence(
        "$GPGGA,143444.28,4629.8972306,N,00734.0447003,E,1,00,,1344.99,M,45.590,M,,*49"
    )
    assert isinstance(u, Gga)
    assert (u.quality, u.sats, u.hdop, u.alt_m) == (1, 0, None, 1344.99)
    assert u.lat == pytest.approx(46.498287177, abs=1e-9)


def test_gga_quality_zero_has_no_position() -> None:
    u = parse_sentence(
        "$GPGGA,081434.590,5212.978993,N,00653.097906,E,0,3,,102.907,M,47.093,M,,*42"
    )
    assert isinstance(u, Gga)
    assert u.quality == 0
    assert u.lat is None


def test_gns_with_beidou_and_gps_modes() -> None:
    u = parse_sentence("$GNGNS,074155.799,3114.8770,N,12135.2463,E,ANNA,05,1.3,156.9,8.3,,0000*52")
    assert isinstance(u, Gns)
    assert u.modes == "ANNA"
    assert (u.sats, u.hdop, u.alt_m) == (5, 1.3, 156.9)


def test_gns_all_n_is_no_fix() -> None:
    u = parse_sentence("$GNGNS,191434.96,,,,,NNN,,,,,,*36")
    assert isinstance(u, Gns)
    assert u.lat is None
    assert u.tod == time(19, 14, 34, 960000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "talker", "system", "prns"),
    [
        ("$BDGSA,A,3,02,03,04,,,,,,,,,,5.1,1.3,4.9,3.3*2F", "BD", BEIDOU, (2, 3, 4)),
        ("$GNGSA,A,3,78,88,87,68,,,,,,,,,3.6,2.0,3.0,2*38", "GN", GLONASS, (78, 88, 87, 68)),
        ("$GNGSA,A,3,23,09,16,07,26,03,27,22,,,,,1.71,1.01,1.38*1B", "GN", None, None),
        ("$GPGSA,A,3,07,30,11,15,19,,,,,,,,2.88,1.20,2.62,1*10", "GP", GPS, (7, 30, 11, 15, 19)),
    ],
)
def test_gsa_system_from_id_or_talker(
    line: str, talker: str, system: str | None, prns: tuple[int, ...] | None
) -> None:
    u = parse_sentence(line)
    assert isinstance(u, Gsa)
    assert u.talker == talker
    assert u.system == system  # GN without a system ID: decided by PRN in the assembler
    assert u.fix_type == 3
    if prns is not None:
        assert u.prns == prns


def test_gb_talker_is_accepted() -> None:
    u = parse_sentence("$GBGSV,2,1,05,201,00,000,44,202,14,089,35,204,00,000,42,205,27,091,*66")
    assert isinstance(u, Gsv)
    assert u.talker == "GB"
    assert u.prns == (201, 202, 204, 205)


def test_gsv_with_signal_id() -> None:
    u = parse_sentence("$GLGSV,2,2,08,70,09,333,,69,56,281,,87,12,033,,81,11,130,,1*7D")
    assert isinstance(u, Gsv)
    assert (u.parts, u.part, u.in_view, u.prns) == (2, 2, 8, (70, 69, 87, 81))


def test_vtg_prefers_kmh_and_converts() -> None:
    u = parse_sentence("$GPVTG,154.9,T,151.3,M,2.9,N,5.4,K,A*26")
    assert isinstance(u, Vtg)
    assert u.speed_mps == pytest.approx(5.4 / 3.6)
    assert u.course_deg == 154.9
    assert u.valid


def test_zda_and_gll() -> None:
    z = parse_sentence("$GPZDA,143444.28,09,06,2005,00,00*66")
    assert isinstance(z, Zda)
    assert z.date == date(2005, 6, 9)
    g = parse_sentence("$GNGLL,4404.13387,N,12118.85628,W,000941.00,A,A*69")
    assert isinstance(g, Gll)
    assert g.valid
    assert g.lon == pytest.approx(-(121 + 18.85628 / 60))


def test_knots_constant() -> None:
    assert math.isclose(KNOTS_TO_MPS, 0.514444, rel_tol=1e-6)


# --- every rejection reason, from a real input --------------------------------


def test_no_checksum() -> None:
    # hp58534a.log sends no checksums; GPSD ignores all of it, and so do we.
    assert reason("$GPGGA,222449,3349.0337,S,01843.9282,E,1,07,02.31,000115.4,M,0033.3,M,,") == (
        NO_CHECKSUM
    )
    # ublox-8.log's last line, cut off before its checksum.
    assert reason("$GNRMC,001053.00,A,4404.14083,N,12118.85886,W,0.") == NO_CHECKSUM


def test_bad_checksum() -> None:
    # gp-320fw: bytes lost mid-sentence, the checksum of the original kept.
    assert reason("$GPRMC,000344.03,A,4808.9992,N,4,02.3*05") == BAD_CHECKSUM
    assert reason("$GPGGA,235955.00,0000.0000,N,00000.0000,E,0,00,0.0,,M,,,,,,,,,,,*1E") == (
        BAD_CHECKSUM
    )


def test_proprietary() -> None:
    assert reason("$PSRFEPE,074155.799,A,1.3,10.59,52.97,0.6,180.0*16") == PROPRIETARY
    assert reason("$PQGSV,4,4,15,28,08,040,,29,,,,30,21,144,,0,4*63") == PROPRIETARY


def test_ignored() -> None:
    assert reason("$GPGST,150122.000,004.0,008.5,004.6,131.7,006.6,007.0,00013*76") == (
        IGNORED_REASON
    )
    assert reason("$GPGRS,150122.000,1,-0.59,-2.63,-0.82,1.10,-3.18,7.97,-11.7,7.04,,,,*50") == (
        IGNORED_REASON
    )


def test_unknown_sentence() -> None:
    # NMEA 0183 AAM (waypoint arrival alarm): a real type, not a GNSS one.
    assert reason(nmea("GPAAM,A,A,0.10,N,WPTNME")) == UNKNOWN_SENTENCE


def test_unknown_talker() -> None:
    # ublox-8's GGA as an integrated instrument ("II") would send it.
    line = nmea("IIGGA,000941.00,4404.13387,N,12118.85628,W,1,12,1.01,1145.0,M,-21.4,M,,")
    assert reason(line) == UNKNOWN_TALKER


def test_too_few_fields() -> None:
    # quectel.log's GGA cut after the fix quality.
    assert reason(nmea("GPGGA,022025.00,3644.759385,S,17444.072857,E,1")) == TOO_FEW_FIELDS


def test_parse_error() -> None:
    # gp-320fw: "Malformed sentence with good checksum".
    assert reason("$GPGSV,3,3,12,2,40,16,00,090,*72") == PARSE_ERROR
    # gp-320fw's "$GPN,…" (a GGA that lost bytes) with a checksum that fits.
    assert reason(nmea("GPN,00000.0000,E,0,00,0.0,,M,,M,,")) == PARSE_ERROR
    # beidou-bd's RMC with minutes of 60 or more.
    assert reason(nmea("GNRMC,074155.799,A,3174.8770,N,12135.2463,E,0.30,4.94,250215,,,A")) == (
        PARSE_ERROR
    )


def test_parser_counts_by_reason_and_type() -> None:
    p = SentenceParser()
    for line in [
        "$PSRFEPE,074155.799,A,1.3,10.59,52.97,0.6,180.0*16",
        "$GPRMC,000344.03,A,4808.9992,N,4,02.3*05",
        "$GNGGA,074155.799,3114.8770,N,12135.2463,E,1,05,1.3,156.9,M,8.3,M,,0000,4.9*77",
    ]:
        p.parse(line)
    assert p.counts == {PROPRIETARY: 1, BAD_CHECKSUM: 1}
    assert p.accepted == {"GGA": 1}


# --- nothing raises -----------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1500))
def test_framing_then_parsing_arbitrary_bytes_never_raises(data: bytes) -> None:
    framer = Framer()
    for line in framer.feed(data):
        result = parse_sentence(line)
        assert not isinstance(result, Rejected) or result.reason in REASONS


FIELD = st.text(alphabet="0123456789.-+NSEWAVMKTDP ", max_size=12)


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(sorted(HANDLERS)),
    st.sampled_from(["GP", "GN", "BD"]),
    st.lists(FIELD, max_size=22),
)
def test_checksummed_nonsense_reaches_the_handlers_and_is_rejected_not_raised(
    kind: str, talker: str, fields: list[str]
) -> None:
    result = parse_sentence(nmea(",".join([talker + kind, *fields])))
    if isinstance(result, Rejected):
        assert result.reason in {TOO_FEW_FIELDS, PARSE_ERROR}
    else:
        for value in (getattr(result, "lat", None), getattr(result, "lon", None)):
            assert value is None or math.isfinite(value)
        speed = getattr(result, "speed_mps", None)
        assert speed is None or math.isfinite(speed)
