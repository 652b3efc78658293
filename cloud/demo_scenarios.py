"""The demo's fleet: labelled scenarios that start now and misbehave within minutes.

Pure: ``demo_fleet(seed, n, start)`` draws one scenario per vehicle from the
simulator's event kinds (``firmware_sim.scenarios``), with the faults moved to
the first minutes so that a person watching the map sees alerts soon after the
fleet is up. This compression is for the demo only; the detection report
(``bench/detection.py``) runs the generated scenarios with their realistic
timing. Tracker ids are Luhn-valid IMEIs, so the registry provisions them like
any installed unit.

Kinds (minutes after the vehicle's start -> alerts expected):

- ``drive``: a trip across its city at 0.5-15 -> none;
- ``parked``: its routine (at home in the evening) -> none;
- ``power_cut``: wired unit unplugged at 0.5-3, battery pulled 8-15 later -> ``power_cut``,
  then ``device_removed``;
- ``tamper``: case opened at 0.5-3 -> ``tamper`` (a rule with no label kind);
- ``jamming``: a trip across town at 0.5-2, jammer on for 2 min a few minutes in -> ``jamming``;
- ``spoofing``: the same trip, positions jump 300-1,500 km for 3 min -> ``spoofing``;
- ``risk_poi``: to a pawnshop, second-mortgage lender, used-car market... at 0.5-3, stays
  1-2 h -> ``risk_poi_visit``, ``risk_poi_stay``;
- ``region_exit``: leaves for a city in another province at 0.5-5 (hours away) -> ``region_exit``;
- ``blind_area``: parks in a basement (no sky, no network) at 2-5 for 20-40 min -> ``blind_area``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud.registry.ids import luhn_check_digit
from firmware_sim.places import CITIES, RISK_KINDS
from firmware_sim.receiver import Environment
from firmware_sim.scenarios import (
    BlindAreaEvent,
    Event,
    JammingEvent,
    Label,
    PowerCutEvent,
    RemovalEvent,
    Scenario,
    SpoofingEvent,
    TamperEvent,
    TrackerDef,
    VehicleDef,
    VisitEvent,
    validate,
)

DEMO_MIX: dict[str, float] = {
    "drive": 0.40,
    "parked": 0.12,
    "power_cut": 0.08,
    "tamper": 0.05,
    "jamming": 0.08,
    "spoofing": 0.07,
    "risk_poi": 0.10,
    "region_exit": 0.04,
    "blind_area": 0.06,
}
# Kinds every fleet of at least this many vehicles contains once, whatever the draw, so a
# small demo (the tests') still shows alerts: the quickest ones first.
GUARANTEED = ("power_cut", "tamper", "jamming", "drive", "risk_poi", "spoofing")

PLATE_PREFIX = {
    "shanghai": "沪A",
    "beijing": "京A",
    "guangzhou": "粤A",
    "shenzhen": "粤B",
    "chengdu": "川A",
    "nanjing": "苏A",
    "hangzhou": "浙A",
    "wuhan": "鄂A",
}
_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


@dataclass(frozen=True, slots=True)
class DemoVehicle:
    """One vehicle of the demo fleet: its scenario and how the registry knows it."""

    scenario: Scenario
    kind: str
    name: str
    city: str
    plate: str
    vin: str
    contract_id: str
    tracker_id: str


def chase_candidate(fleet: Sequence[DemoVehicle]) -> DemoVehicle:
    """The vehicle the demo's recovery case is about: one that only drives about, parked at
    home in the open or in the street (a car park's sky stops every fix at the gate, and a
    chase shows nothing there until the car comes out)."""
    for v in fleet:
        home = CITIES[v.city].homes[v.scenario.vehicles[0].home or 0]
        if v.kind == "drive" and home.environment is not Environment.CARPARK:
            return v
    return fleet[0]


def imei(prefix: str, n: int) -> str:
    """A Luhn-valid 15-digit IMEI: ``prefix`` (digits), ``n`` zero-padded, check digit."""
    body = f"{prefix}{n:0{14 - len(prefix)}d}"
    if len(body) != 14 or not body.isdigit():
        raise ValueError(f"IMEI body {body!r} is not 14 digits")
    return body + str(luhn_check_digit(body))


def vin_for(name: str) -> str:
    """A stable 17-character VIN (ISO 3779 alphabet) for a simulated vehicle."""
    digest = hashlib.sha256(name.encode()).digest()
    return "".join(_VIN_CHARS[b % len(_VIN_CHARS)] for b in digest[:17])


def _kinds(rng: random.Random, n: int, mix: dict[str, float], first: Sequence[str]) -> list[str]:
    names = sorted(mix)
    weights = [mix[k] for k in names]
    drawn = [rng.choices(names, weights)[0] for _ in range(n)]
    for i, kind in enumerate(first[:n]):
        drawn[i] = kind
    return drawn


def _minutes(rng: random.Random, start: datetime, lo: float, hi: float) -> datetime:
    return (start + timedelta(minutes=rng.uniform(lo, hi))).replace(microsecond=0)


def _span(rng: random.Random, lo_min: float, hi_min: float) -> str:
    return f"{round(rng.uniform(lo_min, hi_min))}m"


def _other_place(rng: random.Random, city: str, home: int, *, far: bool = False) -> str:
    """A catalogue place of ``city`` other than the home; ``far``: the farthest from home."""
    c = CITIES[city]
    pool = {f"{city}.work.{i}": p for i, p in enumerate(c.works)}
    pool |= {f"{city}.home.{i}": p for i, p in enumerate(c.homes) if i != home}
    pool[f"{city}.centre"] = c.centre
    if far:
        h = c.homes[home]
        return max(pool, key=lambda k: (pool[k].lat - h.lat) ** 2 + (pool[k].lon - h.lon) ** 2)
    return rng.choice(sorted(pool))


def _events(
    kind: str, rng: random.Random, v: str, tid: str, city: str, home: int, start: datetime
) -> tuple[list[Event], list[Label]]:
    def trip(
        at_lo: float, at_hi: float, stay: tuple[float, float], far: bool = False
    ) -> VisitEvent:
        return VisitEvent(id="trip", vehicle=v, at=_minutes(rng, start, at_lo, at_hi),
                          place=_other_place(rng, city, home, far=far),
                          stay=_span(rng, *stay))  # fmt: skip

    def label(rule: str, event: str, **kw: str) -> Label:
        return Label(rule=rule, vehicle=v, event=event, **kw)  # type: ignore[arg-type]

    if kind == "drive":
        return [trip(0.5, 15, (20, 90))], []
    if kind == "power_cut":
        return [
            PowerCutEvent(id="cut", tracker=tid, at=_minutes(rng, start, 0.5, 3)),
            RemovalEvent(id="gone", tracker=tid, after="cut", delay=_span(rng, 8, 15)),
        ], [
            label("power_cut", "cut", grace="5m", tracker=tid),
            label("device_removed", "cut", grace="45m", tracker=tid),
        ]
    if kind == "tamper":
        return [TamperEvent(id="tamper", tracker=tid, at=_minutes(rng, start, 0.5, 3),
                            source="case")], []  # fmt: skip
    if kind == "jamming":
        return [
            trip(0.5, 2, (60, 120), far=True),
            JammingEvent(id="jam", vehicle=v, at=_minutes(rng, start, 2.5, 4), align="driving",
                         duration="2m"),
        ], [label("jamming", "jam", grace="5m")]  # fmt: skip
    if kind == "spoofing":
        return [
            trip(0.5, 2, (60, 120), far=True),
            SpoofingEvent(id="spoof", vehicle=v, at=_minutes(rng, start, 2.5, 4), align="driving",
                          duration="3m", offset_km=round(rng.uniform(300, 1500))),
        ], [label("spoofing", "spoof", grace="5m"),
            label("region_exit", "spoof", grace="15m", expect="optional")]  # fmt: skip
    if kind == "risk_poi":
        risk = rng.choice(RISK_KINDS).value
        return [
            VisitEvent(id="poi", vehicle=v, at=_minutes(rng, start, 0.5, 3),
                       place=f"{city}.{risk}", stay=_span(rng, 60, 120)),
        ], [label("risk_poi_visit", "poi"),
            label("risk_poi_stay", "poi", offset="30m", grace="10m")]  # fmt: skip
    if kind == "region_exit":
        prov = CITIES[city].province
        dest = rng.choice(sorted(c for c in CITIES if CITIES[c].province != prov))
        return [
            VisitEvent(id="away", vehicle=v, at=_minutes(rng, start, 0.5, 5),
                       place=f"{dest}.centre", stay="12h"),
        ], [label("region_exit", "away")]  # fmt: skip
    if kind == "blind_area":
        return [
            BlindAreaEvent(id="basement", vehicle=v, at=_minutes(rng, start, 2, 5),
                           align="parked", duration=_span(rng, 20, 40)),
        ], [label("blind_area", "basement", grace="1h")]  # fmt: skip
    if kind != "parked":
        raise ValueError(f"unknown kind {kind!r} (kinds: {', '.join(sorted(DEMO_MIX))})")
    return [], []  # parked: its own routine


def demo_fleet(
    seed: int,
    n_vehicles: int,
    start: datetime,
    *,
    duration: timedelta = timedelta(days=1),
    imei_prefix: str = "8688",
    name_prefix: str = "DEMO",
    mix: dict[str, float] | None = None,
    first: Sequence[str] = GUARANTEED,
) -> list[DemoVehicle]:
    """``n_vehicles`` one-vehicle scenarios starting at ``start`` (deterministic per seed):
    kinds drawn from ``mix`` (default :data:`DEMO_MIX`), the first ones set to ``first``."""
    rng = random.Random(f"demo:{seed}")  # noqa: S311 - a seeded simulation, not a secret
    start = start.replace(microsecond=0)
    cities = sorted(CITIES)
    out: list[DemoVehicle] = []
    for i, kind in enumerate(_kinds(rng, n_vehicles, mix or DEMO_MIX, first)):
        vrng = random.Random(f"demo:{seed}:{i}")  # noqa: S311 - as above
        city = vrng.choice(cities)
        home = vrng.randrange(len(CITIES[city].homes))
        name = f"{name_prefix}-{i:04d}"
        tid = imei(imei_prefix, i)
        events, labels = _events(kind, vrng, name, tid, city, home, start)
        vehicle = VehicleDef(id=name, home_city=city, home=home,
                             work=vrng.randrange(len(CITIES[city].works)),
                             trackers=[TrackerDef(id=tid, kind="wired")])  # fmt: skip
        scenario = Scenario(
            name=f"demo-{kind}-{i}", description=f"demo {kind}", start=start,
            duration=f"{max(1, int(duration.total_seconds()))}s", seed=seed * 100_003 + i,
            vehicles=[vehicle], events=events, labels=labels,
        )  # fmt: skip
        validate(scenario)
        plate = f"{PLATE_PREFIX[city]}{name_prefix[0]}{i:04d}"
        out.append(DemoVehicle(scenario, kind, name, city, plate, vin_for(f"{name_prefix}:{i}"),
                               f"C-{name}", tid))  # fmt: skip
    return out
