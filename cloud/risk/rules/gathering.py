"""Gathering: several of a tenant's financed cars at one risk POI (``DOMAIN.md``).

Not a per-vehicle rule, so not in ``CATALOGUE``: the worker feeds one
:class:`GatheringState` per tenant with the POI entries its vehicles make
(:func:`visit_of` turns a ``risk_poi_visit`` OPEN signal into a
:class:`PoiVisit`) and persists the state with msgspec msgpack like a rule
state. The machine is pure: time comes from the records.

Thresholds: >= 3 distinct vehicles entering one POI within 24 h
(``DOMAIN.md``) opens ``gathering`` at WARN; it escalates to HIGH on the same
episode at >= 5 vehicles (*ours*). The episode is keyed by the POI and the
GNSS entry time of the first car of the qualifying 24 h window,
``gathering:<poi id>:<entry time>``; later entries within 24 h of the
episode's span join it (no new alert), so a POI where cars keep arriving is
one growing episode. Gatherings are facts, not states: they are not resolved.

Records come in per-tenant arrival order, which across vehicles is not GNSS
order (a car's blind-area upload arrives hours late). A late entry still
counts: windows are searched around its own time, and an entry falling within
an open episode's span joins it rather than opening a second one. Entries
older than the newest seen minus 48 h (``window_s + late_s``) are dropped and
counted; per POI at most ``max_entries`` entries (and episode vehicles) are
kept. A duplicate record (same POI, vehicle and time) changes nothing.

Replays: the same records in the same order give the same signals and keys.
Arrival order can still matter at the edges (an entry that arrives after an
episode was forgotten may key a new one), which the engine's dedupe by
episode absorbs when the window found is the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
from msgspec.structs import replace

from cloud.risk.model import Action, JsonValue, Severity, Signal
from cloud.risk.rules.region import stamp


class PoiVisit(msgspec.Struct, frozen=True, kw_only=True):
    """One vehicle's entry into one POI (GNSS time of its first fix inside)."""

    poi_id: str
    vehicle_id: int
    time: datetime
    category: str = ""
    poi_name: str = ""
    lat: float | None = None
    lon: float | None = None


class GatheringConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    min_vehicles: int = 3
    high_vehicles: int = 5
    window_s: float = 24 * 3600.0
    late_s: float = 24 * 3600.0
    categories: tuple[str, ...] = ()  # empty: every category
    max_entries: int = 1000
    max_listed: int = 50  # vehicle ids listed in evidence


class Entry(msgspec.Struct, frozen=True, array_like=True, order=True):
    time: datetime
    vehicle_id: int


class PoiLog(msgspec.Struct, frozen=True, kw_only=True):
    entries: tuple[Entry, ...] = ()  # by time, within the horizon
    episode: str = ""
    ep_start: datetime | None = None
    ep_end: datetime | None = None
    vehicles: tuple[int, ...] = ()  # distinct vehicles of the episode, sorted
    level: int = 0


class GatheringState(msgspec.Struct, frozen=True, kw_only=True):
    watermark: datetime | None = None  # newest entry time seen
    pois: dict[str, PoiLog] = {}
    next_sweep: datetime | None = None
    dropped_late: int = 0


def visit_of(signal: Signal, vehicle_id: int) -> PoiVisit | None:
    """The POI entry a ``risk_poi_visit`` OPEN signal reports, else None."""
    if signal.rule != "risk_poi_visit" or signal.action is not Action.OPEN:
        return None
    ev = signal.evidence
    poi, entered = ev.get("poi_id"), ev.get("entered_at")
    if not isinstance(poi, str) or not isinstance(entered, str):
        return None
    category, name = ev.get("category"), ev.get("poi_name")
    lat, lon = ev.get("poi_lat"), ev.get("poi_lon")
    return PoiVisit(
        poi_id=poi,
        vehicle_id=vehicle_id,
        time=datetime.fromisoformat(entered),
        category=category if isinstance(category, str) else "",
        poi_name=name if isinstance(name, str) else "",
        lat=float(lat) if isinstance(lat, int | float) else None,
        lon=float(lon) if isinstance(lon, int | float) else None,
    )


def _first_window(
    entries: tuple[Entry, ...], t: datetime, window: timedelta, need: int
) -> list[Entry] | None:
    """The earliest window of length ``window`` holding ``t`` and ``need`` distinct vehicles."""
    near = [e for e in entries if t - window <= e.time <= t + window]
    counts: dict[int, int] = {}
    j = 0
    for i, head in enumerate(near):
        if head.time > t:
            break
        while j < len(near) and near[j].time - head.time <= window:
            counts[near[j].vehicle_id] = counts.get(near[j].vehicle_id, 0) + 1
            j += 1
        if len(counts) >= need:
            return near[i:j]
        counts[head.vehicle_id] -= 1
        if not counts[head.vehicle_id]:
            del counts[head.vehicle_id]
    return None


def _signal(log: PoiLog, visit: PoiVisit, sev: Severity, cfg: GatheringConfig) -> Signal:
    n = len(log.vehicles)
    ev: dict[str, JsonValue] = {
        "poi_id": visit.poi_id,
        "poi_name": visit.poi_name,
        "category": visit.category,
        "vehicles": list(log.vehicles[: cfg.max_listed]),
        "count": n,
        "first_entry": stamp(log.ep_start) if log.ep_start else None,
        "last_entry": stamp(log.ep_end) if log.ep_end else None,
        "window_s": cfg.window_s,
        "min_vehicles": cfg.min_vehicles,
    }
    msg = f"{n} financed cars at {visit.category or 'POI'} {visit.poi_name or visit.poi_id}"
    time = log.ep_end or visit.time
    return Signal("gathering", log.episode, time, sev, Action.OPEN, None, visit.lat, visit.lon,
                  msg, ev)  # fmt: skip


def _sweep(s: GatheringState, cutoff: datetime, now: datetime) -> GatheringState:
    """Forget entries and finished episodes older than the horizon (hourly, O(POIs))."""
    pois: dict[str, PoiLog] = {}
    for pid, log in s.pois.items():
        entries = tuple(e for e in log.entries if e.time >= cutoff)
        finished = log.ep_end is not None and log.ep_end < cutoff
        if entries or (log.episode and not finished):
            pois[pid] = PoiLog(entries=entries) if finished else replace(log, entries=entries)
    return replace(s, pois=pois, next_sweep=now + timedelta(hours=1))


def step_gathering(
    s: GatheringState, visit: PoiVisit, cfg: GatheringConfig
) -> tuple[GatheringState, list[Signal]]:
    """Add one POI entry; open or escalate the POI's gathering episode (module doc)."""
    if cfg.categories and visit.category not in cfg.categories:
        return s, []
    window = timedelta(seconds=cfg.window_s)
    horizon = window + timedelta(seconds=cfg.late_s)
    mark = visit.time if s.watermark is None else max(s.watermark, visit.time)
    if visit.time < mark - horizon:
        return replace(s, dropped_late=s.dropped_late + 1), []
    log = s.pois.get(visit.poi_id, PoiLog())
    entry = Entry(visit.time, visit.vehicle_id)
    if entry in log.entries:
        return s, []
    kept = [e for e in log.entries if e.time >= mark - horizon]
    entries = tuple(sorted([*kept, entry])[-cfg.max_entries :])
    out: list[Signal] = []
    covers = (
        log.episode
        and log.ep_start is not None
        and log.ep_end is not None
        and log.ep_start - window <= visit.time <= log.ep_end + window
    )
    if covers and log.ep_start is not None and log.ep_end is not None:
        vehicles = tuple(sorted({*log.vehicles, visit.vehicle_id}))[: cfg.max_entries]
        log = replace(
            log,
            entries=entries,
            vehicles=vehicles,
            ep_start=min(log.ep_start, visit.time),
            ep_end=max(log.ep_end, visit.time),
        )
        if len(vehicles) >= cfg.high_vehicles and log.level < Severity.HIGH:
            log = replace(log, level=Severity.HIGH)
            out.append(_signal(log, visit, Severity.HIGH, cfg))
    else:
        log = PoiLog(entries=entries)
        found = _first_window(entries, visit.time, window, cfg.min_vehicles)
        if found is not None:
            vehicles = tuple(sorted({e.vehicle_id for e in found}))
            sev = Severity.HIGH if len(vehicles) >= cfg.high_vehicles else Severity.WARN
            log = replace(
                log,
                episode=f"gathering:{visit.poi_id}:{stamp(found[0].time)}",
                ep_start=found[0].time,
                ep_end=found[-1].time,
                vehicles=vehicles,
                level=sev,
            )
            out.append(_signal(log, visit, sev, cfg))
    s = replace(s, watermark=mark, pois={**s.pois, visit.poi_id: log})
    if s.next_sweep is None or mark >= s.next_sweep:
        s = _sweep(s, mark - horizon, mark)
    return s, out
