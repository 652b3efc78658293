"""Sentence parsing: one framed line → one typed partial update, or a reason.

The middle layer (:mod:`edge.nmea.framing` → here → :mod:`edge.nmea.assembler`).
Dispatch is one table, :data:`HANDLERS`: sentence type → (minimum number of
data fields, handler). pynmea2 splits the sentence and names its fields; the
handlers convert each field strictly (:mod:`edge.nmea.fields`) and convert
units here, once: speeds leave this module in m/s, angles in degrees,
altitudes in metres, times as UTC.

Every line ends as exactly one of: an update, or a rejection with a reason
(:data:`REASONS`):

``no_checksum``        no ``*hh`` at all (hp58534a sends none; GPSD drops them all)
``bad_checksum``       ``*hh`` does not match the XOR of the sentence
``proprietary``        ``$P…`` vendor sentences, ignored on purpose
``ignored``            a known type we do not need (:data:`IGNORED`), or ``!`` encapsulation
``unknown_talker``     a known type from a talker that is not a GNSS (:data:`TALKERS`)
``unknown_sentence``   a type we do not know at all
``too_few_fields``     fewer data fields than the table's minimum for the type
``parse_error``        a malformed address or field
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import reduce
from typing import Final

import pynmea2

from edge.nmea.fields import (
    KMH_TO_MPS,
    KNOTS_TO_MPS,
    FieldError,
    angle,
    ddmmyy,
    hhmmss,
    integer,
    make_date,
    number,
)
from edge.nmea.updates import (
    GGA_FIX_QUALITIES,
    SYSTEM_IDS,
    TALKERS,
    Gga,
    Gll,
    Gns,
    Gsa,
    Gsv,
    Rmc,
    Update,
    Vtg,
    Zda,
    faa_valid,
    gns_fixed,
)

NO_CHECKSUM: Final = "no_checksum"
BAD_CHECKSUM: Final = "bad_checksum"
PROPRIETARY: Final = "proprietary"
IGNORED_REASON: Final = "ignored"
UNKNOWN_TALKER: Final = "unknown_talker"
UNKNOWN_SENTENCE: Final = "unknown_sentence"
TOO_FEW_FIELDS: Final = "too_few_fields"
PARSE_ERROR: Final = "parse_error"
REASONS: Final = (
    NO_CHECKSUM,
    BAD_CHECKSUM,
    PROPRIETARY,
    IGNORED_REASON,
    UNKNOWN_TALKER,
    UNKNOWN_SENTENCE,
    TOO_FEW_FIELDS,
    PARSE_ERROR,
)

#: Known types we ignore on purpose: nothing in them changes a fix record.
IGNORED: Final = frozenset(
    {
        "TXT",  # text messages (antenna status, firmware banners)
        "GBS",  # satellite fault detection
        "GST",  # pseudorange error statistics
        "GRS",  # range residuals
        "DTM",  # datum reference (we assume WGS-84, as receivers default to)
        "ALM",  # almanac
        "GBQ",  # polls for other sentences
        "GLQ",
        "GNQ",
        "GPQ",
        "RLM",  # Galileo return link message
        "THS",  # true heading (dual-antenna receivers)
        "HDT",
        "ROT",
        "VLW",  # distance travelled
    }
)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    detail: str


def _raw(msg: pynmea2.NMEASentence, name: str) -> str:
    """The raw text of the field pynmea2 calls ``name`` ('' when absent)."""
    i: int = msg.name_to_idx[name]
    data: list[str] = msg.data
    return data[i] if i < len(data) else ""


def _extra(msg: pynmea2.NMEASentence, index: int) -> str:
    """A field past pynmea2's table (NMEA 4.10 additions), '' when absent."""
    data: list[str] = msg.data
    return data[index] if index < len(data) else ""


def _position(
    msg: pynmea2.NMEASentence, *, fixed: bool = True
) -> tuple[float | None, float | None]:
    """Signed degrees; ``(None, None)`` without a fix, whatever the fields hold.

    Receivers without a fix fill the position with placeholders (mtk-3301
    sends latitude ``8960.000000``): they are not a position, so not parsed.
    """
    if not fixed:
        return None, None
    lat = angle(_raw(msg, "lat"), _raw(msg, "lat_dir"), latitude=True)
    lon = angle(_raw(msg, "lon"), _raw(msg, "lon_dir"), latitude=False)
    if (lat is None) != (lon is None):
        return None, None  # half a position is no position
    return lat, lon


def _knots(s: str) -> float | None:
    v = number(s, "speed")
    return None if v is None else v * KNOTS_TO_MPS


def _course(s: str) -> float | None:
    v = number(s, "course")
    if v is not None and not 0.0 <= v <= 360.0:
        msg = f"course {v} is outside 0..360"
        raise FieldError(msg)
    return v


def _rmc(talker: str, msg: pynmea2.NMEASentence) -> Rmc:
    """$GNRMC,074155.799,A,3114.8770,N,12135.2463,E,0.30,4.94,250215,,,A*76

    Speed comes in knots and leaves in m/s. Status ``A`` with a mode
    indicator of ``N`` (some receivers send both) counts as not valid.
    """
    status = _raw(msg, "status")
    if status not in {"A", "V", ""}:
        detail = f"RMC status {status!r}"
        raise FieldError(detail)
    valid = status == "A" and faa_valid(_raw(msg, "mode_indicator"))
    lat, lon = _position(msg, fixed=valid)
    return Rmc(
        talker=talker,
        tod=hhmmss(_raw(msg, "timestamp")),
        valid=valid,
        lat=lat,
        lon=lon,
        speed_mps=_knots(_raw(msg, "spd_over_grnd")),
        course_deg=_course(_raw(msg, "true_course")),
        date=ddmmyy(_raw(msg, "datestamp")),
    )


def _gga(talker: str, msg: pynmea2.NMEASentence) -> Gga:
    """$GPGGA,143444.28,4629.8972306,N,00734.0447003,E,1,00,,1344.99,M,45.590,M,,*49

    Altitude is above mean sea level; only metres (``M``) are accepted.
    """
    quality = integer(_raw(msg, "gps_qual"), "quality") or 0
    lat, lon = _position(msg, fixed=quality in GGA_FIX_QUALITIES)
    unit = _raw(msg, "altitude_units")
    alt = number(_raw(msg, "altitude"), "altitude")
    if alt is not None and unit not in {"M", ""}:
        detail = f"altitude unit {unit!r}"
        raise FieldError(detail)
    return Gga(
        talker=talker,
        tod=hhmmss(_raw(msg, "timestamp")),
        quality=quality,
        lat=lat,
        lon=lon,
        sats=integer(_raw(msg, "num_sats"), "satellites"),
        hdop=number(_raw(msg, "horizontal_dil"), "HDOP"),
        alt_m=alt,
    )


def _gns(talker: str, msg: pynmea2.NMEASentence) -> Gns:
    """$GNGNS,074155.799,3114.8770,N,12135.2463,E,ANNA,05,1.3,156.9,8.3,,0000*52

    One mode letter per constellation; all ``N`` (or none) means no fix.
    """
    modes = _raw(msg, "mode_indicator")
    if not modes.isalpha() and modes:
        detail = f"GNS mode {modes!r}"
        raise FieldError(detail)
    lat, lon = _position(msg, fixed=gns_fixed(modes))
    return Gns(
        talker=talker,
        tod=hhmmss(_raw(msg, "timestamp")),
        modes=modes,
        lat=lat,
        lon=lon,
        sats=integer(_raw(msg, "num_sats"), "satellites"),
        hdop=number(_raw(msg, "hdop"), "HDOP"),
        alt_m=number(_raw(msg, "altitude"), "altitude"),
    )


def _gll(talker: str, msg: pynmea2.NMEASentence) -> Gll:
    """$GNGLL,4404.13387,N,12118.85628,W,000941.00,A,A*69"""
    valid = _raw(msg, "status") == "A" and faa_valid(_raw(msg, "faa_mode"))
    lat, lon = _position(msg, fixed=valid)
    return Gll(
        talker=talker,
        tod=hhmmss(_raw(msg, "timestamp")),
        valid=valid,
        lat=lat,
        lon=lon,
    )


_GSA_FIRST_SV: Final = 2
_GSA_SLOTS: Final = 12
_GSA_SYSTEM_ID: Final = 17


def _gsa(talker: str, msg: pynmea2.NMEASentence) -> Gsa:
    """$GNGSA,A,3,78,88,87,68,,,,,,,,,3.6,2.0,3.0,2*38

    The optional last field (NMEA 4.10) names the system; beidou-bd puts a
    number with a decimal point there, which names nothing and is let be.
    """
    fix_type = integer(_raw(msg, "mode_fix_type"), "fix type")
    if fix_type is not None and fix_type not in {1, 2, 3}:
        detail = f"GSA fix type {fix_type}"
        raise FieldError(detail)
    prns = tuple(
        p
        for p in (
            integer(_extra(msg, i), "PRN") for i in range(_GSA_FIRST_SV, _GSA_FIRST_SV + _GSA_SLOTS)
        )
        if p is not None
    )
    sys_field = _extra(msg, _GSA_SYSTEM_ID)
    system = SYSTEM_IDS.get(int(sys_field)) if sys_field.isdigit() else None
    return Gsa(
        talker=talker,
        system=system or TALKERS[talker],
        fix_type=fix_type,
        prns=prns,
        pdop=number(_raw(msg, "pdop"), "PDOP"),
        hdop=number(_raw(msg, "hdop"), "HDOP"),
        vdop=number(_raw(msg, "vdop"), "VDOP"),
    )


def _gsv(talker: str, msg: pynmea2.NMEASentence) -> Gsv:
    """$GLGSV,2,1,08,78,38,036,22,79,53,313,19,88,22,080,26,68,39,195,21,1*75

    Four fields per satellite, then (NMEA 4.10) an optional signal ID.
    """
    data: list[str] = msg.data
    blocks = data[3:]
    if len(blocks) % 4 not in {0, 1}:
        detail = f"GSV has {len(blocks)} satellite fields, not 4 per satellite"
        raise FieldError(detail)
    parts = integer(_raw(msg, "num_messages"), "GSV parts")
    part = integer(_raw(msg, "msg_num"), "GSV part")
    if parts is None or part is None or not 1 <= part <= parts:
        detail = f"GSV part {part} of {parts}"
        raise FieldError(detail)
    prns = tuple(
        p
        for p in (integer(blocks[i], "PRN") for i in range(0, len(blocks) - 3, 4))
        if p is not None
    )
    return Gsv(
        talker=talker,
        parts=parts,
        part=part,
        in_view=integer(_raw(msg, "num_sv_in_view"), "satellites in view"),
        prns=prns,
    )


def _vtg(talker: str, msg: pynmea2.NMEASentence) -> Vtg:
    """$GPVTG,154.9,T,151.3,M,2.9,N,5.4,K,A*26

    Speed from the km/h field when present (finer than knots on most
    receivers), else from knots; m/s either way.
    """
    kmh = number(_raw(msg, "spd_over_grnd_kmph"), "speed km/h")
    speed = kmh * KMH_TO_MPS if kmh is not None else _knots(_raw(msg, "spd_over_grnd_kts"))
    return Vtg(
        talker=talker,
        course_deg=_course(_raw(msg, "true_track")),
        speed_mps=speed,
        valid=faa_valid(_raw(msg, "faa_mode")),
    )


def _zda(talker: str, msg: pynmea2.NMEASentence) -> Zda:
    """$GPZDA,143444.28,09,06,2005,00,00*66"""
    day = integer(_raw(msg, "day"), "day")
    month = integer(_raw(msg, "month"), "month")
    year = integer(_raw(msg, "year"), "year")
    when = None
    if day is not None and month is not None and year is not None:
        if year < 1980:
            detail = f"ZDA year {year}"
            raise FieldError(detail)
        when = make_date(year, month, day)
    return Zda(talker=talker, tod=hhmmss(_raw(msg, "timestamp")), date=when)


@dataclass(frozen=True, slots=True)
class Handler:
    min_fields: int  # data fields after the address, as counted by splitting on ','
    parse: Callable[[str, pynmea2.NMEASentence], Update]


#: The dispatch table: sentence type → minimum data fields and handler.
HANDLERS: Final[Mapping[str, Handler]] = {
    "RMC": Handler(9, _rmc),  # up to the date (NMEA 2.x has 11, 2.3 adds mode)
    "GGA": Handler(9, _gga),  # up to the altitude
    "GNS": Handler(9, _gns),  # up to the altitude
    "GLL": Handler(6, _gll),  # up to the status (NMEA 1.x had no time: useless)
    "GSA": Handler(17, _gsa),  # 12 PRN slots and three DOPs
    "GSV": Handler(3, _gsv),  # a part may list no satellite
    "VTG": Handler(7, _vtg),  # up to the km/h speed
    "ZDA": Handler(4, _zda),  # time, day, month, year
}


def _checksum_error(line: str) -> Rejected | None:
    star = line.rfind("*")
    if star < 0:
        return Rejected(NO_CHECKSUM, line[:16])
    given = line[star + 1 :]
    if len(given) != 2 or any(c not in "0123456789ABCDEFabcdef" for c in given):
        return Rejected(BAD_CHECKSUM, f"checksum field {given!r}")
    computed = reduce(operator.xor, line[1:star].encode("ascii"), 0)
    if computed != int(given, 16):
        return Rejected(BAD_CHECKSUM, f"*{given} given, {computed:02X} computed")
    return None


def parse_sentence(line: str) -> Update | Rejected:
    """One framed line (start character included, line end not) → update or reason."""
    if not line.isascii() or line[:1] not in {"$", "!"}:
        return Rejected(PARSE_ERROR, "not a sentence")
    if (bad := _checksum_error(line)) is not None:
        return bad
    if line[0] == "!":
        return Rejected(IGNORED_REASON, "encapsulated (AIS) sentence")
    address = line[1 : line.find(",")] if "," in line else line[1 : line.rfind("*")]
    if address.startswith("P"):
        return Rejected(PROPRIETARY, address)
    if len(address) != 5 or not address.isalnum() or not address.isupper():
        return Rejected(PARSE_ERROR, f"address {address!r}")
    talker, kind = address[:2], address[2:]
    if kind in IGNORED:
        return Rejected(IGNORED_REASON, address)
    handler = HANDLERS.get(kind)
    if handler is None:
        return Rejected(UNKNOWN_SENTENCE, address)
    if talker not in TALKERS:
        return Rejected(UNKNOWN_TALKER, address)
    try:
        msg = pynmea2.parse(line, check=True)
    except (pynmea2.ParseError, ValueError) as exc:
        return Rejected(PARSE_ERROR, f"{address}: {exc}")
    fields: list[str] = msg.data
    if len(fields) < handler.min_fields:
        return Rejected(TOO_FEW_FIELDS, f"{address}: {len(fields)} < {handler.min_fields}")
    try:
        return handler.parse(talker, msg)
    except FieldError as exc:
        return Rejected(PARSE_ERROR, f"{address}: {exc}")


class SentenceParser:
    """:func:`parse_sentence` with counts: ``counts`` rejections by reason,
    ``accepted`` updates by sentence type."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()

    def parse(self, line: str) -> Update | None:
        result = parse_sentence(line)
        if isinstance(result, Rejected):
            self.counts[result.reason] += 1
            return None
        self.accepted[type(result).__name__.upper()] += 1
        return result
