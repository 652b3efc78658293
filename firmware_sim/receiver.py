"""A GNSS receiver model: true state in, one epoch of NMEA 0183 lines out (1 Hz).

The model has no clock of its own: the caller powers it on at a simulated
time and then calls :meth:`Receiver.epoch` once per simulated second with the
true state (where the antenna really is, what the sky looks like). Every
random draw comes from the ``random.Random`` it is given, so a seed replays
exactly. Per epoch it writes RMC, VTG, GGA, GSA and GSV (in the order Quectel
modules use) with the talker of :class:`ReceiverConfig` (``GP`` GPS only,
``GN`` GPS + BeiDou, ``BD``/``GB`` BeiDou only).

Behaviour, from DOMAIN.md ("Tracker behaviour"):

- time to first fix: hot 0.2-0.95 s, warm ~N(25, 2.5) s within 20-30 s,
  cold 23-35 s; only seconds with open sky count, and a search that has not
  fixed after 5 minutes gives up (counted in ``stats.gave_up``) and starts over.
  Hot when the last fix is < 2 h old, warm when < 30 days, cold otherwise;
- no fix (RMC ``V``, GGA quality 0, 0-3 satellites) while searching, in a
  tunnel or underground (``Environment.TUNNEL``), while jammed and while the
  antenna is cut. Losing the sky while fixed starts a (hot) re-acquisition;
- fixed: satellites ~N(12, 3) (~N(8, 2) in car parks, never below 4); HDOP
  0.8-1.5 open sky, 2-5 urban, 5.2-12 in car parks, slowly varying;
- parked (true speed < 0.2 m/s): the position wanders around the truth inside
  a disc of 5-15 m, reaching 3-15 m from it; moving: correlated noise of
  ~1 m x HDOP; urban canyons: occasional 1-5 s jumps of 50-300 m
  (``jump_rate`` per urban epoch);
- ``corrupt_rate``: that share of lines is damaged on purpose (wrong checksum,
  truncated, or garbage bytes inserted), counted by kind in ``stats.corrupted``.

The epoch's state is :attr:`Receiver.last_solution` (an :class:`nmea.Solution`);
``ReceiverConfig(nmea=False)`` advances the model without rendering sentences
(the protocol-level tracker firmware of :mod:`firmware_sim.reporter` reads the
solution directly). Epochs are normally one second apart; a longer gap (that
firmware skips quiet parked periods) advances the noise processes by the
elapsed seconds in one step, so one call per second gives exactly the 1 Hz
behaviour.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal

from firmware_sim import nmea

Talker = Literal["GP", "GN", "BD", "GB"]
M_PER_DEG_LAT = 111_320.0
GIVE_UP_S = 300.0
PARKED_MPS = 0.2


class Environment(StrEnum):
    OPEN = "open"
    URBAN = "urban"
    CARPARK = "carpark"
    TUNNEL = "tunnel"  # no sky view: tunnels and underground car parks


class StartKind(StrEnum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


HDOP_RANGE: dict[Environment, tuple[float, float]] = {
    Environment.OPEN: (0.8, 1.5),
    Environment.URBAN: (2.0, 5.0),
    Environment.CARPARK: (5.2, 12.0),
}
TTFF_RANGE: dict[StartKind, tuple[float, float]] = {
    StartKind.HOT: (0.2, 0.95),
    StartKind.WARM: (20.0, 30.0),
    StartKind.COLD: (23.0, 35.0),
}


@dataclass(frozen=True, slots=True)
class TrueState:
    """Where the antenna really is and what it can see, at one epoch."""

    time: datetime  # tz-aware; NMEA carries it as UTC
    lon: float
    lat: float
    alt_m: float = 0.0
    speed_mps: float = 0.0
    course_deg: float = 0.0
    environment: Environment = Environment.URBAN
    jammed: bool = False
    antenna_ok: bool = True

    @property
    def sky(self) -> bool:
        return self.antenna_ok and not self.jammed and self.environment is not Environment.TUNNEL


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    talker: Talker = "GN"
    beidou_talker: Literal["BD", "GB"] = "BD"  # BeiDou GSV talker when ``talker`` is GN
    corrupt_rate: float = 0.0
    jump_rate: float = 1 / 3600
    hot_within: timedelta = timedelta(hours=2)
    warm_within: timedelta = timedelta(days=30)
    nmea: bool = True  # False: advance the model and set last_solution, render nothing


@dataclass(slots=True)
class ReceiverStats:
    epochs: int = 0
    fixed_epochs: int = 0
    lines: int = 0
    corrupted: dict[str, int] = field(default_factory=dict)
    ttffs: list[tuple[StartKind, float]] = field(default_factory=list)  # (kind, drawn seconds)
    gave_up: int = 0
    jumps: int = 0

    @property
    def corrupted_total(self) -> int:
        return sum(self.corrupted.values())


@dataclass(slots=True, eq=False)
class _Sat:
    prn: int
    system: Literal["GP", "BD"]
    elevation: int
    azimuth: int


def draw_ttff(rng: random.Random, kind: StartKind) -> float:
    lo, hi = TTFF_RANGE[kind]
    if kind is StartKind.WARM:
        return min(hi, max(lo, rng.gauss(25.0, 2.5)))
    return rng.uniform(lo, hi)


class Receiver:
    """One GNSS module. Call :meth:`power_on`, then :meth:`epoch` once a second."""

    def __init__(self, rng: random.Random, config: ReceiverConfig | None = None) -> None:
        self.rng = rng
        self.config = config or ReceiverConfig()
        self.stats = ReceiverStats()
        self.last_solution: nmea.Solution | None = None
        self._powered = False
        self._fixed = False
        self._last_fix: datetime | None = None
        self._last_t: datetime | None = None
        self._time_known = False
        self._kind = StartKind.COLD
        self._drawn_s = 0.0  # the time to first fix drawn for this search
        self._need_s = 0.0  # open-sky seconds still needed to fix
        self._search_s = 0.0  # seconds since the search began
        self._time_after_s = 0.0  # cold start: sky seconds until the time is decoded
        self._sky: list[_Sat] = []
        self._sky_at: datetime | None = None
        self._env: Environment | None = None
        self._hold = 0.0  # epochs (seconds) left before the sky quality is redrawn
        self._n_used = 0
        self._hdop = 1.0
        self._err = (0.0, 0.0, 0.0)  # east, north, up metres (correlated noise)
        self._wander: tuple[float, tuple[float, float], float] | None = None  # R, target, hold
        self._jump: tuple[int, float, float] = (0, 0.0, 0.0)  # epochs left, east, north

    # ------------------------------------------------------------ power

    @property
    def powered(self) -> bool:
        return self._powered

    @property
    def fixed(self) -> bool:
        return self._powered and self._fixed

    def start_kind(self, t: datetime) -> StartKind:
        if self._last_fix is None:
            return StartKind.COLD
        age = t - self._last_fix
        if age < self.config.hot_within:
            return StartKind.HOT
        return StartKind.WARM if age < self.config.warm_within else StartKind.COLD

    def power_on(self, t: datetime, start: StartKind | None = None) -> StartKind:
        kind = start or self.start_kind(t)
        self._powered = True
        self._last_t = t
        self._begin_search(kind)
        return kind

    def power_off(self) -> None:
        self._powered = False
        self._fixed = False
        self._wander = None

    def _begin_search(self, kind: StartKind) -> None:
        self._fixed = False
        self._kind = kind
        self._drawn_s = draw_ttff(self.rng, kind)
        self._need_s = self._drawn_s
        self._search_s = 0.0
        self._time_known = kind is not StartKind.COLD
        self._time_after_s = self.rng.uniform(3.0, 8.0)

    # ------------------------------------------------------------ epoch

    def epoch(self, truth: TrueState) -> list[bytes]:
        """One second of output for ``truth``; nothing when powered off (or ``nmea=False``)."""
        solution = self.advance(truth)
        if solution is None or not self.config.nmea:
            return []
        lines = self._sentences(solution)
        self.stats.lines += len(lines)
        if self.config.corrupt_rate > 0.0:
            lines = [
                self._corrupt(x) if self.rng.random() < self.config.corrupt_rate else x
                for x in lines
            ]
        return lines

    def advance(self, truth: TrueState) -> nmea.Solution | None:
        """Step the model to ``truth.time`` and return the epoch's solution (None: powered off)."""
        if not self._powered:
            return None
        dt = 0.0 if self._last_t is None else (truth.time - self._last_t).total_seconds()
        self._last_t = truth.time
        self._acquire(truth, max(0.0, dt))
        self.stats.epochs += 1
        solution = self._solution(truth, max(1.0, dt))
        self.last_solution = solution
        return solution

    def _acquire(self, truth: TrueState, dt: float) -> None:
        if self._fixed and not truth.sky:
            self._begin_search(self.start_kind(truth.time))
        if self._fixed:
            self._last_fix = truth.time
            return
        self._search_s += dt
        if truth.sky:
            self._need_s -= dt
            self._time_after_s -= dt
            self._time_known = self._time_known or self._time_after_s <= 0.0
            if self._need_s <= 0.0:
                self.stats.ttffs.append((self._kind, self._drawn_s))
                self._fixed = True
                self._time_known = True
                self._last_fix = truth.time
                return
        if self._search_s >= GIVE_UP_S:
            self.stats.gave_up += 1
            self._begin_search(self._kind)

    def _update_sky(self, truth: TrueState, n: float) -> None:
        stale = self._sky_at is None or truth.time - self._sky_at > timedelta(minutes=30)
        if stale:
            self._sky_at = truth.time
            self._sky = self._draw_sky()
            self._hold = 0
        env = truth.environment
        if env is not self._env or self._hold <= 0:
            self._env = env
            self._hold = self.rng.randint(20, 90)
            mean, sd = (8.0, 2.0) if env is Environment.CARPARK else (12.0, 3.0)
            self._n_used = round(self.rng.gauss(mean, sd))
            lo, hi = HDOP_RANGE.get(env, (2.0, 5.0))
            self._hdop = self.rng.uniform(lo, hi)
        self._hold -= n
        if self.rng.random() < (0.05 if n <= 1.0 else 1.0 - 0.95**n):
            self._n_used += self.rng.choice((-1, 1))
        self._n_used = max(4, min(self._n_used, len(self._usable())))
        lo, hi = HDOP_RANGE.get(env, (2.0, 5.0))
        self._hdop = min(hi, max(lo, self._hdop + self.rng.gauss(0.0, 0.03 * math.sqrt(n))))

    def _draw_sky(self) -> list[_Sat]:
        sats: list[_Sat] = []
        for system, pool, count in (("GP", 32, (12, 14)), ("BD", 63, (14, 18))):
            prns = self.rng.sample(range(1, pool + 1), self.rng.randint(*count))
            sats += [
                _Sat(p, system, self.rng.randint(5, 85), self.rng.randint(0, 359))  # type: ignore[arg-type]
                for p in prns
            ]
        sats.sort(key=lambda s: -s.elevation)
        return sats

    def _usable(self) -> list[_Sat]:
        talker = self.config.talker
        if talker == "GN":
            return self._sky
        system = "GP" if talker == "GP" else "BD"
        return [s for s in self._sky if s.system == system]

    def _solution(self, truth: TrueState, n: float = 1.0) -> nmea.Solution:
        """The epoch's solution; ``n``: seconds of noise evolution since the last epoch."""
        self._update_sky(truth, n)
        time = truth.time.astimezone(UTC) if self._time_known else None
        if not self._fixed:
            self._wander = None
            tracked = 0 if not truth.antenna_ok else self.rng.randint(0, 3)
            return nmea.Solution(time=time, lat=None, lon=None, sats_used=tracked)
        self.stats.fixed_epochs += 1
        east, north, up = self._error(truth, n)
        lat = truth.lat + north / M_PER_DEG_LAT
        lon = truth.lon + east / (M_PER_DEG_LAT * math.cos(math.radians(truth.lat)))
        if truth.speed_mps >= PARKED_MPS:
            speed = max(0.0, truth.speed_mps + self.rng.gauss(0.0, 0.1))
            course = (truth.course_deg + self.rng.gauss(0.0, 0.5)) % 360.0
        else:
            speed = abs(self.rng.gauss(0.0, 0.05))
            course = truth.course_deg % 360.0
        pdop = self._hdop * self.rng.uniform(1.3, 1.8)
        return nmea.Solution(
            time=time,
            lat=lat,
            lon=lon,
            alt_m=truth.alt_m + up,
            geoid_sep_m=_geoid_stand_in(truth.lat, truth.lon),
            speed_mps=speed,
            course_deg=course,
            sats_used=self._n_used,
            hdop=self._hdop,
            pdop=pdop,
            vdop=math.sqrt(pdop * pdop - self._hdop * self._hdop),
        )

    def _error(self, truth: TrueState, n: float) -> tuple[float, float, float]:
        rng = self.rng
        east, north, up = self._err
        rho = 0.95**n  # AR(1) per second; 0.95 at 1 Hz
        sd = self._hdop * math.sqrt(1 - rho * rho)
        up = rho * up + rng.gauss(0.0, 1.5 * sd)
        if truth.speed_mps < PARKED_MPS:
            east, north = self._wander_step(east, north, n)
        else:
            self._wander = None
            east = rho * east + rng.gauss(0.0, sd)
            north = rho * north + rng.gauss(0.0, sd)
        self._err = (east, north, up)
        left, j_east, j_north = self._jump
        if n > 1.0:  # the jump's epochs that passed since the last call
            left = max(0, left - int(n - 1.0))
        urban = truth.environment is Environment.URBAN
        if left == 0 and urban and rng.random() < self.config.jump_rate:
            size, bearing = rng.uniform(50.0, 300.0), rng.uniform(0.0, 2 * math.pi)
            left = rng.randint(1, 5)
            j_east, j_north = size * math.sin(bearing), size * math.cos(bearing)
            self.stats.jumps += 1
        if left > 0:
            self._jump = (left - 1, j_east, j_north)
            return east + j_east, north + j_north, up
        return east, north, up

    def _wander_step(self, east: float, north: float, n: float) -> tuple[float, float]:
        rng = self.rng
        if self._wander is None:
            self._wander = (rng.uniform(5.0, 15.0), (east, north), 0)
        radius, target, hold = self._wander
        if hold <= 0:
            r, b = rng.uniform(0.6 * radius, radius), rng.uniform(0.0, 2 * math.pi)
            target, hold = (r * math.sin(b), r * math.cos(b)), rng.randint(30, 120)
        self._wander = (radius, target, hold - n)
        de, dn = target[0] - east, target[1] - north
        dist = math.hypot(de, dn)
        step = min(dist, rng.uniform(0.05, 0.3) * n)
        if dist > 0:
            east, north = east + de / dist * step, north + dn / dist * step
        # A position already outside the disc (noise from driving) is pulled back in.
        return east, north

    # ------------------------------------------------------------ sentences

    def _sentences(self, s: nmea.Solution) -> list[bytes]:
        talker = self.config.talker
        used = self._usable()[: s.sats_used] if s.fixed else []
        out = [nmea.rmc(talker, s), nmea.vtg(talker, s), nmea.gga(talker, s)]
        if talker == "GN":
            for system in ("GP", "BD"):
                prns = [x.prn for x in used if x.system == system]
                out.append(nmea.gsa("GN", s, prns, system))
        else:
            out.append(nmea.gsa(talker, s, [x.prn for x in used]))
        views = self._views(s, used)
        if talker == "GN":
            out += nmea.gsv("GP", [v for v, sys in views if sys == "GP"])
            out += nmea.gsv(self.config.beidou_talker, [v for v, sys in views if sys == "BD"])
        else:
            out += nmea.gsv(talker, [v for v, _ in views])
        return out

    def _views(self, s: nmea.Solution, used: list[_Sat]) -> list[tuple[nmea.SatView, str]]:
        rng = self.rng
        if s.fixed:
            taken = {id(x) for x in used}
            extra = [x for x in self._usable() if id(x) not in taken][: rng.randint(0, 4)]
            seen = [(x, True) for x in used] + [(x, False) for x in extra]
        else:
            seen = [(x, True) for x in self._usable()[: s.sats_used]]
        views: list[tuple[nmea.SatView, str]] = []
        for sat, tracked in seen:
            if tracked and s.fixed:
                snr: int | None = int(min(50, max(20, 30 + sat.elevation / 5 + rng.gauss(0, 2))))
            elif tracked:
                snr = rng.randint(12, 22)
            else:
                snr = None
            views.append((nmea.SatView(sat.prn, sat.elevation, sat.azimuth, snr), sat.system))
        return views

    def _corrupt(self, good: bytes) -> bytes:
        rng = self.rng
        kind = rng.choice(("checksum", "truncated", "garbage"))
        self.stats.corrupted[kind] = self.stats.corrupted.get(kind, 0) + 1
        if kind == "checksum":
            wrong = int(good[-4:-2], 16) ^ rng.randint(1, 255)
            return good[:-4] + f"{wrong:02X}\r\n".encode("ascii")
        if kind == "truncated":  # cut before the '*', so no checksum survives
            return good[: rng.randint(1, len(good) - 6)] + b"\r\n"
        pos = rng.randint(1, len(good) - 6)
        junk = bytes(rng.randint(0x80, 0xFF) for _ in range(rng.randint(1, 8)))
        return good[:pos] + junk + good[pos:]


def _geoid_stand_in(lat: float, lon: float) -> float:
    """A smooth stand-in for the geoid separation over China (-30..+15 m); not EGM96."""
    return -7.5 + 22.5 * math.sin(math.radians(3 * (lon - 100.0))) * math.cos(math.radians(lat))
