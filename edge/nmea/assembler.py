"""Fix assembly: the sentences of one reporting epoch → one :class:`GnssFix`.

The last layer (:mod:`edge.nmea.framing` → :mod:`edge.nmea.sentences` → here).
A receiver reports each epoch (usually each second) as a burst of sentences:
RMC, GGA, GNS and GLL carry the UTC time of day of the epoch; GSA, GSV and
VTG carry none and belong to the epoch they arrive in.

Epoch boundaries
    An epoch ends when

    * a time-bearing sentence (RMC, GGA, GNS, GLL) brings another time of day;
    * a sentence sent once per epoch (RMC, GGA, GNS, GLL, ZDA) comes again from
      the same talker without the epoch's time: Quectel modules send GGA and
      RMC with an empty time field after losing the fix, so time alone cannot
      tell their epochs apart;
    * the receiver's cycle end arrives: the sentence that ended the two
      previous epochs (receivers keep their order) ends the epoch at once, so
      the record does not wait for the next second. A time-bearing sentence
      (or ZDA) still carrying the closed epoch's time proves that wrong: the
      learned end is forgotten, the sentence counted ``after_cycle_end``;
    * :meth:`Assembler.flush` is called (end of a capture, or the caller's
      silence timeout).

    Epochs with no time of day at all make no record (``no_time``); epochs
    with only GSA/GSV/VTG/ZDA make none either (a ZDA's date is still used).

Dates
    Only RMC (with status A) and ZDA carry a date. A receiver without a fix
    reports its clock's guess (gp-320fw says 2006-12-16 after a reboot), so an
    RMC with status V gives none, as in GPSD. The last date seen anchors the
    epochs that carry only a time of day (GGA-only epochs): the epoch gets the
    date that puts it nearest to the anchor, so 23:59:59 → 00:00:00 moves to
    the next day. Epochs before the first date are held (at most
    ``max_undated`` of them) and dated, in order, when it comes; those still
    undated at :meth:`Assembler.flush`, or pushed out of the hold, are counted
    as ``no_date``.

Fix or no fix
    RMC status V (or mode N/E/M/S), GGA quality 0 (or 6-8), GNS modes all
    ``N`` and GLL status V say no fix. The epoch has a fix when one of its
    position sentences gives one and none says there is none: a receiver
    contradicting itself within an epoch is not trusted. Mode is 3 when the
    fix has an altitude, else 2 (GSA's fix type is not used: Quectel modules
    say 2D in GSA on every epoch while measuring altitude).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Final, TypeVar

from edge.nmea.updates import (
    BEIDOU,
    GALILEO,
    GGA_FIX_QUALITIES,
    GLONASS,
    GPS,
    NAVIC,
    QZSS,
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
    gns_fixed,
)

AFTER_CYCLE_END: Final = "after_cycle_end"
NO_DATE: Final = "no_date"
NO_TIME: Final = "no_time"
REASONS: Final = (AFTER_CYCLE_END, NO_DATE, NO_TIME)

NO_FIX: Final = 1
FIX_2D: Final = 2
FIX_3D: Final = 3

#: GNS mode letters are per system, in this order (NMEA 4.10).
GNS_SYSTEMS: Final = (GPS, GLONASS, GALILEO, BEIDOU, QZSS, NAVIC)
SBAS: Final = "SBAS"
#: An epoch that never ends (a receiver sending no time at all) is cut here.
MAX_EPOCH_SENTENCES: Final = 200
#: Epochs held while waiting for the first date: 10 minutes at 1 Hz.
DEFAULT_MAX_UNDATED: Final = 600


@dataclass(frozen=True, slots=True)
class GnssFix:
    """One epoch of the receiver, in SI units; position fields only with a fix."""

    time: datetime  # UTC, tz-aware
    mode: int  # 1 no fix, 2 2D, 3 3D
    lat: float | None = None  # degrees WGS-84
    lon: float | None = None
    alt_m: float | None = None  # metres above mean sea level
    speed_mps: float | None = None  # over ground
    course_deg: float | None = None  # true, 0..360
    hdop: float | None = None
    sats: int | None = None  # satellites used
    constellations: frozenset[str] = frozenset()  # systems used: GPS, GLONASS…

    @property
    def fixed(self) -> bool:
        return self.mode >= FIX_2D


def _gn_system(prn: int) -> str | None:
    """The system of a PRN in a GN (mixed) GSA without a system ID (NMEA 4.0 ranges)."""
    if 1 <= prn <= 32:
        return GPS
    if 33 <= prn <= 64:
        return SBAS
    if 65 <= prn <= 96:
        return GLONASS
    if 193 <= prn <= 199:
        return QZSS
    if 201 <= prn <= 237:
        return BEIDOU
    if 301 <= prn <= 336:
        return GALILEO
    return None


def _fix_opinion(u: Update) -> bool | None:
    """What a position sentence says: a fix (with a position), no fix, or nothing."""
    match u:
        case Rmc(valid=ok) | Gll(valid=ok):
            return u.lat is not None if ok else False
        case Gga(quality=q):
            return u.lat is not None if q in GGA_FIX_QUALITIES else False
        case Gns(modes=modes):
            return u.lat is not None if gns_fixed(modes) else False
    return None


_T = TypeVar("_T")


def _first(items: Iterable[_T | None]) -> _T | None:
    return next((x for x in items if x is not None), None)


def _systems(gsas: list[Gsa], gnss: list[Gns], fixes: list[Update]) -> frozenset[str]:
    """Systems used: from GSA (system ID, talker, or PRN range), else GNS modes, else talkers."""
    used = {g.system if g.system is not None else _gn_system(prn) for g in gsas for prn in g.prns}
    used.discard(None)
    if not used:
        used = {
            system
            for g in gnss
            for system, mode in zip(GNS_SYSTEMS, g.modes, strict=False)
            if gns_fixed(mode)
        }
    if not used:
        used = {TALKERS.get(u.talker) for u in fixes} - {None}
    return frozenset(s for s in used if s is not None)


def _sats_used(gsas: list[Gsa], counted: list[int]) -> int | None:
    """The larger of GGA/GNS's count and the PRNs listed by GSA.

    GGA caps at 12 on many receivers, garmin25lp says 00 while fixed, and a
    GP GSA and a GN GSA with system ID may list the same satellite twice.
    """
    listed = {
        (g.system if g.system is not None else _gn_system(prn), prn) for g in gsas for prn in g.prns
    }
    if not counted and not gsas:
        return None
    return max([*counted, len(listed)])


def merge(updates: list[Update], when: datetime) -> GnssFix:
    """One epoch's updates, in arrival order, and its resolved time → the record.

    The epoch has a fix when a position sentence gives one and none says
    there is none: a receiver contradicting itself within an epoch is not
    trusted. Values come from the first sentence that has them, in the order
    GGA, GNS, RMC, GLL (GGA has the most digits on most receivers).
    """
    ggas = [u for u in updates if isinstance(u, Gga)]
    gnss = [u for u in updates if isinstance(u, Gns)]
    rmcs = [u for u in updates if isinstance(u, Rmc) and u.valid]
    gsas = [u for u in updates if isinstance(u, Gsa)]
    vtgs = [u for u in updates if isinstance(u, Vtg) and u.valid]
    hdop = _first([u.hdop for u in ggas] + [u.hdop for u in gnss] + [u.hdop for u in gsas])
    counted = [u.sats for u in ggas] + [u.sats for u in gnss]
    sats = _sats_used(gsas, [n for n in counted if n is not None])
    opinions = [(u, _fix_opinion(u)) for u in updates]
    fixes = [u for u, says in opinions if says]
    ordered = sorted(fixes, key=lambda u: _PREFERENCE.index(type(u)))
    best = ordered[0] if ordered else None
    if best is None or any(says is False for _, says in opinions):
        return GnssFix(time=when, mode=NO_FIX, hdop=hdop, sats=sats)
    assert isinstance(best, Gga | Gns | Rmc | Gll)
    alt = _first(u.alt_m for u in ordered if isinstance(u, Gga | Gns))
    return GnssFix(
        time=when,
        mode=FIX_3D if alt is not None else FIX_2D,
        lat=best.lat,
        lon=best.lon,
        alt_m=alt,
        speed_mps=_first([u.speed_mps for u in rmcs] + [u.speed_mps for u in vtgs]),
        course_deg=_first([u.course_deg for u in rmcs] + [u.course_deg for u in vtgs]),
        hdop=hdop,
        sats=sats,
        constellations=_systems(gsas, gnss, fixes),
    )


_PREFERENCE: Final = (Gga, Gns, Rmc, Gll)


def resolve_date(tod: time, anchor: datetime) -> datetime:
    """The instant with time of day ``tod`` nearest to ``anchor`` (midnight rollover)."""
    base = datetime.combine(anchor.date(), tod)
    return min(
        (base + timedelta(days=d) for d in (-1, 0, 1)),
        key=lambda t: abs(t - anchor),
    )


def _boundary_time(u: Update) -> time | None:
    if isinstance(u, Rmc | Gga | Gns | Gll):
        return u.tod
    return None


def _slot(u: Update) -> tuple[str, str] | None:
    """Sentences a receiver sends once per epoch and talker: a second one starts the next."""
    if isinstance(u, Rmc | Gga | Gns | Gll | Zda):
        return (type(u).__name__, u.talker)
    return None


EndKey = tuple[str, str, str]


def _end_key(u: Update) -> EndKey | None:
    """What identifies a sentence as a cycle end; only a GSV's last part can end one."""
    match u:
        case Gsv(part=part, parts=parts) if part != parts:
            return None
        case Gsa(system=system):
            return ("GSA", u.talker, system or "")
    return (type(u).__name__, u.talker, "")


@dataclass
class _Epoch:
    updates: list[Update] = field(default_factory=list)
    tod: time | None = None
    slots: set[tuple[str, str]] = field(default_factory=set)
    positioned: bool = False  # has an RMC, GGA, GNS or GLL

    def starts_next(self, update: Update, tod: time | None) -> bool:
        """Whether ``update`` cannot belong to this epoch."""
        if tod is not None and self.tod is not None and tod != self.tod:
            return True
        slot = _slot(update)
        if slot is None or slot not in self.slots:
            return False
        # The same sentence again: a new epoch, unless it repeats this one's time.
        own = update.tod if isinstance(update, Rmc | Gga | Gns | Gll | Zda) else None
        return own is None or own != self.tod


class Assembler:
    """Feeds on updates, returns the records of the epochs they close.

    ``counts`` holds what was dropped, by reason (:data:`REASONS`); ``epochs``
    the number of records made. Epochs without any time of day (Quectel
    modules send empty GGA and RMC after losing the fix) make no record and
    are counted as ``no_time``.
    """

    def __init__(self, *, max_undated: int = DEFAULT_MAX_UNDATED) -> None:
        self.counts: Counter[str] = Counter()
        self.epochs = 0
        self.max_undated = max_undated
        self._undated: deque[_Epoch] = deque()
        self._epoch = _Epoch()
        self._anchor: datetime | None = None  # last known date, with its time
        self._ender: EndKey | None = None
        self._ender_candidate: EndKey | None = None
        self._closed_tod: time | None = None  # of an epoch closed by its cycle end

    def push(self, update: Update) -> list[GnssFix]:
        out: list[GnssFix] = []
        tod = _boundary_time(update)
        own_tod = update.tod if isinstance(update, Zda) else tod
        if own_tod is not None and own_tod == self._closed_tod:
            # The epoch was closed too early: the learned cycle end is wrong.
            self.counts[AFTER_CYCLE_END] += 1
            self._ender = self._ender_candidate = None
            return out
        if tod is not None:
            self._closed_tod = None
        if self._epoch.starts_next(update, tod):
            self._learn_end()
            out.extend(self._close())
        epoch = self._epoch
        if tod is not None:
            epoch.tod = tod
        epoch.updates.append(update)
        if (slot := _slot(update)) is not None:
            epoch.slots.add(slot)
            epoch.positioned |= not isinstance(update, Zda)
        ends = self._ender is not None and epoch.tod is not None and _end_key(update) == self._ender
        if ends or len(epoch.updates) >= MAX_EPOCH_SENTENCES:
            self._closed_tod = epoch.tod
            out.extend(self._close())
        return out

    def flush(self) -> list[GnssFix]:
        """End the open epoch now (end of input, or the receiver went quiet)."""
        self._closed_tod = self._epoch.tod
        out = self._close()
        if self._undated:
            self.counts[NO_DATE] += len(self._undated)
            self._undated.clear()
        return out

    def _learn_end(self) -> None:
        last = _end_key(self._epoch.updates[-1]) if self._epoch.updates else None
        if last is not None and last == self._ender_candidate:
            self._ender = last
        self._ender_candidate = last

    def _close(self) -> list[GnssFix]:
        epoch, self._epoch = self._epoch, _Epoch()
        self._take_date(epoch)
        out = self._release_undated()
        if not epoch.positioned:
            return out  # GSA/GSV/VTG/ZDA only: nothing to report (a ZDA's date is kept)
        if epoch.tod is None:
            self.counts[NO_TIME] += 1
            return out
        if self._anchor is None:
            self._undated.append(epoch)
            if len(self._undated) > self.max_undated:
                self._undated.popleft()
                self.counts[NO_DATE] += 1
            return out
        out.append(self._record(epoch, self._anchor))
        self._anchor = out[-1].time
        return out

    def _release_undated(self) -> list[GnssFix]:
        """The held epochs, dated, once a date is known."""
        anchor = self._anchor
        if anchor is None or not self._undated:
            return []
        out = [self._record(e, anchor) for e in self._undated]
        self._undated.clear()
        return out

    def _take_date(self, epoch: _Epoch) -> None:
        """Anchor on the epoch's own date (RMC with status A, or ZDA), if any."""
        for u in epoch.updates:
            trusted = isinstance(u, Zda) or (isinstance(u, Rmc) and u.valid)
            if trusted and isinstance(u, Rmc | Zda) and u.date and u.tod:
                self._anchor = datetime.combine(u.date, u.tod)

    def _record(self, epoch: _Epoch, anchor: datetime) -> GnssFix:
        assert epoch.tod is not None
        self.epochs += 1
        return merge(epoch.updates, resolve_date(epoch.tod, anchor))
