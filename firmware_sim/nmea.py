"""NMEA 0183 sentence assembly for the simulated receiver (pure: no clock, no I/O).

Each builder returns one complete line, ``$<body>*<XX>\\r\\n``, where ``XX`` is
the XOR of every byte between ``$`` and ``*`` in upper-case hex. Units are
converted here, once: positions to ``ddmm.mmmmm``, speeds from m/s to knots
(RMC, VTG) and km/h (VTG), times to ``hhmmss.ss`` UTC.

Example (an RMC as this module writes it)::

    $GNRMC,021530.00,A,3113.82400,N,12128.42200,E,12.300,87.50,030325,,,A*7A
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

KNOTS_PER_MPS = 3600.0 / 1852.0
KMH_PER_MPS = 3.6

# NMEA 4.10 GNSS system ids, used in the last field of a GN talker's GSA.
SYSTEM_ID = {"GP": 1, "GL": 2, "GA": 3, "BD": 4, "GB": 4}


def checksum(body: str) -> int:
    """XOR of the characters between ``$`` and ``*``."""
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return value


def line(body: str) -> bytes:
    """A complete sentence with checksum and CR LF."""
    return f"${body}*{checksum(body):02X}\r\n".encode("ascii")


def fmt_time(t: datetime | None) -> str:
    if t is None:
        return ""
    return f"{t.hour:02d}{t.minute:02d}{t.second:02d}.{t.microsecond // 10_000:02d}"


def fmt_date(t: datetime | None) -> str:
    return "" if t is None else f"{t.day:02d}{t.month:02d}{t.year % 100:02d}"


def _angle(value: float, deg_width: int) -> str:
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60.0
    if round(minutes, 5) >= 60.0:  # 59.999999 would print as 60.00000
        degrees, minutes = degrees + 1, 0.0
    return f"{degrees:0{deg_width}d}{minutes:08.5f}"


def fmt_lat(lat: float) -> tuple[str, str]:
    return _angle(lat, 2), "N" if lat >= 0 else "S"


def fmt_lon(lon: float) -> tuple[str, str]:
    return _angle(lon, 3), "E" if lon >= 0 else "W"


@dataclass(frozen=True, slots=True)
class Solution:
    """What one epoch's sentences report (already noisy); ``None`` position = no fix."""

    time: datetime | None  # UTC, None before the receiver knows the time
    lat: float | None
    lon: float | None
    alt_m: float = 0.0
    geoid_sep_m: float = 0.0
    speed_mps: float = 0.0
    course_deg: float = 0.0
    sats_used: int = 0
    hdop: float = 99.99
    pdop: float = 99.99
    vdop: float = 99.99

    @property
    def fixed(self) -> bool:
        return self.lat is not None and self.lon is not None


@dataclass(frozen=True, slots=True)
class SatView:
    prn: int
    elevation: int  # degrees
    azimuth: int  # degrees
    snr: int | None  # dB-Hz; None when not tracked


def rmc(talker: str, s: Solution) -> bytes:
    if not s.fixed:
        return line(f"{talker}RMC,{fmt_time(s.time)},V,,,,,,,{fmt_date(s.time)},,,N")
    assert s.lat is not None
    assert s.lon is not None
    lat, ns = fmt_lat(s.lat)
    lon, ew = fmt_lon(s.lon)
    knots = s.speed_mps * KNOTS_PER_MPS
    return line(
        f"{talker}RMC,{fmt_time(s.time)},A,{lat},{ns},{lon},{ew},"
        f"{knots:.3f},{s.course_deg % 360.0:.2f},{fmt_date(s.time)},,,A"
    )


def vtg(talker: str, s: Solution) -> bytes:
    if not s.fixed:
        return line(f"{talker}VTG,,T,,M,,N,,K,N")
    knots = s.speed_mps * KNOTS_PER_MPS
    kmh = s.speed_mps * KMH_PER_MPS
    return line(f"{talker}VTG,{s.course_deg % 360.0:.2f},T,,M,{knots:.3f},N,{kmh:.3f},K,A")


def gga(talker: str, s: Solution) -> bytes:
    if not s.fixed:
        return line(f"{talker}GGA,{fmt_time(s.time)},,,,,0,{s.sats_used:02d},,,M,,M,,")
    assert s.lat is not None
    assert s.lon is not None
    lat, ns = fmt_lat(s.lat)
    lon, ew = fmt_lon(s.lon)
    return line(
        f"{talker}GGA,{fmt_time(s.time)},{lat},{ns},{lon},{ew},1,{s.sats_used:02d},"
        f"{s.hdop:.2f},{s.alt_m:.1f},M,{s.geoid_sep_m:.1f},M,,"
    )


def gsa(talker: str, s: Solution, prns: Sequence[int], system: str | None = None) -> bytes:
    """Active satellites; ``system`` adds the NMEA 4.10 system id (for GN talkers).

    The fix mode (2D/3D) is that of the whole solution, ``s.sats_used``.
    """
    ids = [f"{p:02d}" for p in prns[:12]]
    ids += [""] * (12 - len(ids))
    tail = f",{SYSTEM_ID[system]:X}" if system is not None else ""
    if not s.fixed:
        return line(f"{talker}GSA,A,1,{','.join(ids)},,,{tail}")
    mode = 3 if s.sats_used >= 4 else 2
    return line(
        f"{talker}GSA,A,{mode},{','.join(ids)},{s.pdop:.2f},{s.hdop:.2f},{s.vdop:.2f}{tail}"
    )


def gsv(talker: str, sats: Sequence[SatView]) -> list[bytes]:
    """Satellites in view, four per sentence (one empty sentence when none)."""
    total = max(1, (len(sats) + 3) // 4)
    out: list[bytes] = []
    for i in range(total):
        chunk = sats[i * 4 : i * 4 + 4]
        fields = "".join(
            f",{v.prn:02d},{v.elevation:02d},{v.azimuth:03d},"
            + ("" if v.snr is None else f"{v.snr:02d}")
            for v in chunk
        )
        out.append(line(f"{talker}GSV,{total},{i + 1},{len(sats):02d}{fields}"))
    return out
