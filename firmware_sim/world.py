"""A scenario made runnable: planned vehicles, trackers with their faults, resolved labels.

A tracker moved to an e-bike is ridden away within minutes, to the rider's place 2-6 km
off (its home from then on): a unit left on an e-bike that nobody rides until its backup
battery is flat (6-12 h) never shows that it is on another vehicle.

:func:`build_world` (also :func:`firmware_sim.scenarios.build`) resolves every
event to concrete times: ``after`` chains, ``align`` (the next parked period
or trip long enough for the event), a visit's window from the vehicle's own
plan (departure to leaving the place). Labels get absolute windows.
Everything is drawn from the scenario's seed, so a world rebuilds identically.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from firmware_sim.faults import (
    BlindArea,
    CutAntenna,
    CutPower,
    Fault,
    Jam,
    MoveToVehicle,
    Remove,
    RestorePower,
    Spoof,
    TamperWith,
)
from firmware_sim.places import CITIES, Place, PlaceKind, nearest_city, place
from firmware_sim.receiver import M_PER_DEG_LAT, Environment
from firmware_sim.scenarios import (
    VEHICLE_EVENTS,
    AntennaCutEvent,
    BlindAreaEvent,
    Event,
    JammingEvent,
    Label,
    MoveTrackerEvent,
    PowerCutEvent,
    PowerRestoreEvent,
    RelocateEvent,
    RemovalEvent,
    Scenario,
    ScenarioError,
    SpoofingEvent,
    TamperEvent,
    VisitEvent,
    parse_duration,
)
from firmware_sim.tracker import Tracker, TrackerKind, TrackerSpec
from firmware_sim.vehicle import Relocation, Vehicle, VehicleKind, Visit

Window = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class ResolvedLabel:
    rule: str
    vehicle: str
    tracker: str | None
    start: datetime
    end: datetime
    expect: str
    note: str = ""


@dataclass(slots=True)
class World:
    scenario: Scenario
    start: datetime
    end: datetime
    vehicles: dict[str, Vehicle]
    trackers: dict[str, Tracker]
    vehicle_of: dict[str, str]  # tracker id -> vehicle id
    event_windows: dict[str, Window]  # by event id, or "#<index>" for unnamed events
    labels: list[ResolvedLabel]

    def trackers_of(self, vehicle_id: str) -> list[Tracker]:
        return [t for tid, t in self.trackers.items() if self.vehicle_of[tid] == vehicle_id]


def _key(i: int, e: Event) -> str:
    return e.id if e.id is not None else f"#{i}"


def _start_of(e: Event, windows: dict[str, Window], i: int) -> datetime:
    if e.at is not None:
        return e.at
    assert e.after is not None
    if e.after not in windows:
        raise ScenarioError(f"events[{i}].after", f"{e.after!r} cannot be resolved first")
    return windows[e.after][0] + parse_duration(e.delay)


def _vehicle_plans(s: Scenario) -> tuple[dict[str, list[Visit]], dict[str, list[Relocation]]]:
    """Visits and relocations first: the vehicles' plans depend on them."""
    visits: dict[str, list[Visit]] = {v.id: [] for v in s.vehicles}
    moves: dict[str, list[Relocation]] = {v.id: [] for v in s.vehicles}
    starts: dict[str, Window] = {}
    for i, e in enumerate(s.events):
        if not isinstance(e, VisitEvent | RelocateEvent):
            continue
        at = _start_of(e, starts, i)
        starts[_key(i, e)] = (at, at)
        if isinstance(e, VisitEvent):
            visits[e.vehicle].append(Visit(at, place(e.place), parse_duration(e.stay)))
        else:
            rng = random.Random(f"{s.seed}:{e.vehicle}:relocate:{i}")
            city = CITIES[e.city]
            home = city.homes[e.home if e.home is not None else rng.randrange(len(city.homes))]
            work = city.works[e.work if e.work is not None else rng.randrange(len(city.works))]
            moves[e.vehicle].append(Relocation(at, home, work))
    return visits, moves


def _align(vehicle: Vehicle, at: datetime, how: str, need: timedelta) -> datetime:
    if how == "parked":
        fallback: datetime | None = None
        for stay in vehicle.stays:
            begin = max(stay.start + timedelta(minutes=5), at)
            if stay.end <= at or begin >= vehicle.end:
                continue
            if stay.end - begin >= need:
                return begin
            if fallback is None and stay.end - begin >= timedelta(minutes=10):
                fallback = begin
        return fallback or at
    if how == "driving":
        for trip in vehicle.trips:
            begin = max(trip.depart + timedelta(minutes=2), at)
            if trip.arrive - begin >= min(need, timedelta(minutes=10)) and trip.arrive > at:
                return begin
    return at


def _visit_window(vehicle: Vehicle, visit: Visit, end: datetime) -> Window:
    for n, trip in enumerate(vehicle.trips):
        if trip.dest.id == visit.place.id and trip.depart >= visit.at - timedelta(seconds=1):
            leave = vehicle.trips[n + 1].depart if n + 1 < len(vehicle.trips) else end
            return trip.depart, leave
    return visit.at, visit.at + visit.stay


def _pickup(vehicle: Vehicle, at: datetime, name: str) -> Place:
    st = vehicle.state_at(at)
    env = Environment.URBAN if st.environment is Environment.TUNNEL else st.environment
    city = nearest_city(st.lon, st.lat).id
    return Place(name, PlaceKind.OTHER, st.lon, st.lat, st.alt_m, city, env)


def _offset(lon: float, lat: float, km: float, rng: random.Random) -> tuple[float, float]:
    bearing = rng.uniform(0.0, 2 * math.pi)
    north, east = km * 1000.0 * math.cos(bearing), km * 1000.0 * math.sin(bearing)
    lat2 = max(-80.0, min(80.0, lat + north / M_PER_DEG_LAT))
    return lon + east / (M_PER_DEG_LAT * math.cos(math.radians(lat))), lat2


def _vehicles(
    s: Scenario, visits: dict[str, list[Visit]], moves: dict[str, list[Relocation]]
) -> dict[str, Vehicle]:
    vehicles: dict[str, Vehicle] = {}
    for v in s.vehicles:
        rng = random.Random(f"{s.seed}:{v.id}:places")
        home_city, work_city = CITIES[v.home_city], CITIES[v.work_city or v.home_city]
        vehicles[v.id] = Vehicle(
            seed=f"{s.seed}:{v.id}",
            home=home_city.homes[v.home if v.home is not None else rng.randrange(3)],
            work=work_city.works[v.work if v.work is not None else rng.randrange(3)],
            start=s.start,
            end=s.end,
            visits=visits[v.id],
            relocations=moves[v.id],
        )
    return vehicles


def _faults(
    s: Scenario, i: int, e: Event, vehicle: Vehicle, at: datetime, until: datetime
) -> list[Fault]:
    """The faults one (non-visit) event injects, for each tracker it concerns."""
    if isinstance(e, JammingEvent):
        return [Jam(at, until)]
    if isinstance(e, BlindAreaEvent):
        return [BlindArea(at, until)]
    if isinstance(e, SpoofingEvent):
        if e.to is not None:
            target = place(e.to)
            return [Spoof(at, until, target.lon, target.lat)]
        here = vehicle.state_at(at)
        rng = random.Random(f"{s.seed}:event:{i}")
        lon, lat = _offset(here.lon, here.lat, e.offset_km or 500.0, rng)
        return [Spoof(at, until, lon, lat)]
    if isinstance(e, PowerCutEvent):
        return [CutPower(at)]
    if isinstance(e, PowerRestoreEvent):
        return [RestorePower(at)]
    if isinstance(e, RemovalEvent):
        return [Remove(at)]
    if isinstance(e, TamperEvent):
        return [TamperWith(at, e.source)]
    if isinstance(e, AntennaCutEvent):
        return [CutAntenna(at, until if e.duration is not None else None)]
    if isinstance(e, MoveTrackerEvent):
        spot = _pickup(vehicle, at, f"{e.tracker}.pickup")
        home, visits = spot, []
        if e.to == "ebike":  # ridden away at once, to where the rider lives: 2-6 km off
            rng = random.Random(f"{s.seed}:event:{i}:ride")
            lon, lat = _offset(spot.lon, spot.lat, rng.uniform(2.0, 6.0), rng)
            home = Place(f"{e.tracker}.rider", PlaceKind.OTHER, lon, lat, spot.alt_m, spot.city,
                         Environment.URBAN)  # fmt: skip
            ride = at + timedelta(minutes=rng.uniform(2.0, 10.0))
            visits = [Visit(ride, home, timedelta(hours=rng.uniform(1.0, 3.0)))]
        other = Vehicle(
            seed=f"{s.seed}:{e.tracker}:other",
            home=home,
            work=home,
            start=at,
            end=s.end,
            kind=VehicleKind.EBIKE if e.to == "ebike" else VehicleKind.STATIC,
            visits=visits,
            start_at=spot,
        )
        after = parse_duration(e.rewired_after) if e.rewired_after else None
        return [MoveToVehicle(at, other, after)]
    return []  # relocations shape the vehicle's plan only


def build_world(s: Scenario) -> World:
    visits, moves = _vehicle_plans(s)
    vehicles = _vehicles(s, visits, moves)
    vehicle_of = {t.id: v.id for v in s.vehicles for t in v.trackers}
    faults: dict[str, list[Fault]] = {tid: [] for tid in vehicle_of}
    windows: dict[str, Window] = {}
    for i, e in enumerate(s.events):
        vid = e.vehicle if isinstance(e, VEHICLE_EVENTS) else vehicle_of[e.tracker]
        vehicle = vehicles[vid]
        at = _start_of(e, windows, i)
        if isinstance(e, VisitEvent):  # planned with the vehicle, never re-aligned
            visit = next(x for x in visits[vid] if x.at == at and x.place.id == e.place)
            windows[_key(i, e)] = _visit_window(vehicle, visit, s.end)
            continue
        text = getattr(e, "duration", None)
        duration = parse_duration(text) if isinstance(text, str) else None
        if not isinstance(e, RelocateEvent):
            at = _align(vehicle, at, e.align, duration or timedelta(minutes=30))
        until = at + duration if duration is not None else at
        if isinstance(e, BlindAreaEvent):  # the car drives out of the car park: blind area ends
            stay_end = next((st.end for st in vehicle.stays if st.start <= at < st.end), until)
            until = min(until, stay_end - timedelta(minutes=2))
        windows[_key(i, e)] = (at, until)
        concerned = [e.tracker] if not isinstance(e, VEHICLE_EVENTS) else [
            tid for tid, owner in vehicle_of.items() if owner == vid
        ]  # fmt: skip
        for fault in _faults(s, i, e, vehicle, at, until):
            for tid in concerned:
                faults[tid].append(fault)
    trackers: dict[str, Tracker] = {}
    for v in s.vehicles:
        for t in v.trackers:
            spec = TrackerSpec(
                device_id=t.id,
                kind=TrackerKind(t.kind),
                talker=t.talker,
                sim_province=t.sim_province or CITIES[v.home_city].province,
                wakes_per_day=t.wakes_per_day,
                every_hours=t.every_hours,
                corrupt_rate=t.corrupt_rate,
            )
            trackers[t.id] = Tracker(
                spec, vehicles[v.id], seed=s.seed, start=s.start, end=s.end, faults=faults[t.id]
            )
    labels = [_resolve_label(lab, windows) for lab in s.labels]
    return World(s, s.start, s.end, vehicles, trackers, vehicle_of, windows, labels)


def _resolve_label(lab: Label, windows: dict[str, Window]) -> ResolvedLabel:
    if lab.event is not None:
        ev_start, ev_end = windows[lab.event]
        begin = ev_start + parse_duration(lab.offset)
        finish = max(ev_end + parse_duration(lab.grace), begin + timedelta(seconds=1))
    else:
        assert lab.start is not None
        assert lab.end is not None
        begin, finish = lab.start, lab.end
    return ResolvedLabel(lab.rule, lab.vehicle, lab.tracker, begin, finish, lab.expect, lab.note)
