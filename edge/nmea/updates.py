"""The typed partial updates that sentence handlers produce, and the GNSS vocabulary.

One frozen dataclass per sentence type, already in SI units (speeds in m/s,
angles in degrees, altitudes in metres, times of day in UTC). Fields a
sentence did not carry are ``None``; positions are ``None`` whenever the
sentence says there is no fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from typing import Final

GPS: Final = "GPS"
GLONASS: Final = "GLONASS"
GALILEO: Final = "Galileo"
BEIDOU: Final = "BeiDou"
QZSS: Final = "QZSS"
NAVIC: Final = "NavIC"

#: Talker IDs we accept → the constellation they speak for (None: several, "GN").
TALKERS: Final[Mapping[str, str | None]] = {
    "GP": GPS,
    "GL": GLONASS,
    "GA": GALILEO,
    "BD": BEIDOU,  # the Chinese TSCPB standard's ID
    "GB": BEIDOU,  # NMEA 4.x's ID for BeiDou
    "GQ": QZSS,
    "QZ": QZSS,
    "GI": NAVIC,
    "GN": None,
}

#: NMEA 4.10 GNSS system IDs (last field of GSA and GSV).
SYSTEM_IDS: Final[Mapping[int, str]] = {
    1: GPS,
    2: GLONASS,
    3: GALILEO,
    4: BEIDOU,
    5: QZSS,
    6: NAVIC,
}

#: NMEA 2.3 mode indicators that are not a GNSS fix: not valid, estimated (dead
#: reckoning), manual input, simulator. An absent indicator (NMEA 2.x) says nothing.
NOT_A_FIX: Final = frozenset("NEMS")
#: GGA qualities that are a GNSS fix: GPS, DGPS, PPS, RTK, float RTK.
#: 0 is none, 6 estimated (dead reckoning), 7 manual, 8 simulator.
GGA_FIX_QUALITIES: Final = frozenset({1, 2, 3, 4, 5})


def faa_valid(mode: str) -> bool:
    return mode[:1] not in NOT_A_FIX


def gns_fixed(modes: str) -> bool:
    """A GNS fix when at least one system's mode letter is a fix."""
    return any(m not in NOT_A_FIX for m in modes)


@dataclass(frozen=True, slots=True)
class Rmc:
    """Recommended minimum data: the only sentence with time, date and velocity."""

    talker: str
    tod: time | None  # UTC time of day
    valid: bool  # status A (and, with a mode indicator, not N)
    lat: float | None
    lon: float | None
    speed_mps: float | None
    course_deg: float | None
    date: date | None


@dataclass(frozen=True, slots=True)
class Gga:
    """Fix data: position, quality, satellites, HDOP and altitude."""

    talker: str
    tod: time | None
    quality: int  # 0 = no fix
    lat: float | None
    lon: float | None
    sats: int | None
    hdop: float | None
    alt_m: float | None  # above mean sea level


@dataclass(frozen=True, slots=True)
class Gns:
    """Multi-constellation fix data: like GGA with one mode letter per system."""

    talker: str
    tod: time | None
    modes: str  # per system, in order GPS, GLONASS, Galileo, BeiDou, QZSS, NavIC
    lat: float | None
    lon: float | None
    sats: int | None
    hdop: float | None
    alt_m: float | None


@dataclass(frozen=True, slots=True)
class Gll:
    """Position only."""

    talker: str
    tod: time | None
    valid: bool
    lat: float | None
    lon: float | None


@dataclass(frozen=True, slots=True)
class Gsa:
    """Fix type, the satellites used and the DOPs, for one system (or all)."""

    talker: str
    system: str | None  # from the NMEA 4.10 system ID, else the talker
    fix_type: int | None  # 1 none, 2 2D, 3 3D
    prns: tuple[int, ...]
    pdop: float | None
    hdop: float | None
    vdop: float | None


@dataclass(frozen=True, slots=True)
class Gsv:
    """One part of the satellites-in-view table."""

    talker: str
    parts: int
    part: int
    in_view: int | None
    prns: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Vtg:
    """Course and speed over ground."""

    talker: str
    course_deg: float | None
    speed_mps: float | None
    valid: bool


@dataclass(frozen=True, slots=True)
class Zda:
    """UTC date and time."""

    talker: str
    tod: time | None
    date: date | None


Update = Rmc | Gga | Gns | Gll | Gsa | Gsv | Vtg | Zda
