"""Fresh scenarios from a seed: one vehicle each, kinds drawn from a weighted mix.

The templates mirror the bundled TOML scenarios (same names, same labels) with
every parameter drawn: city, home/work, trackers, event times, durations,
places and distances. ``generate(seed, n, mix)`` is deterministic per seed.

Labels say what a lender would want to hear about each story, including its
certain consequences, and mark ``optional`` what may or may not follow from
the drawn times (a long drive home that may fall in the night, a SIM whose
address mismatches on a short trip for fewer or more than 3 sessions):

- a car that ends up in another province (a trip, a relocation, a car driven
  away with its hidden wireless unit) should raise ``region_exit``; in its own
  province nothing should;
- a wired unit unplugged and then removed, or left running on its backup
  battery on an e-bike, goes ``offline``; the e-bike's battery first runs
  ``low`` (a wired unit's battery lasts 6-12 h, the scenario days);
- a relocation is learned from 14 nights at the new place, so that scenario
  runs 30 days with the move on day 14 (16 nights after it);
- a separation is the units parting: the wired unit goes onto the decoy at
  night and the car leaves at dawn (its first trip after the swap), so the
  label's window starts when they part; a jammer's label starts with the
  jammer (the agent reports 60 s after the last good fix, up to a second
  before the jammer's start on the 1 Hz grid).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from firmware_sim.places import CITIES, RISK_KINDS
from firmware_sim.scenarios import (
    BlindAreaEvent,
    Event,
    JammingEvent,
    Label,
    MoveTrackerEvent,
    PowerCutEvent,
    RelocateEvent,
    RemovalEvent,
    Scenario,
    SpoofingEvent,
    TrackerDef,
    VehicleDef,
    VisitEvent,
    validate,
)
from firmware_sim.tracker import PROVINCE_IP_BLOCKS
from firmware_sim.vehicle import CHINA_TZ

FIRST_MONDAY = datetime(2025, 3, 3, tzinfo=CHINA_TZ)
DEFAULT_MIX: dict[str, float] = {
    "commuter": 0.35,
    "region_exit": 0.06,
    "risk_poi_stay": 0.06,
    "risk_poi_visit": 0.05,
    "unplugged": 0.06,
    "jamming": 0.06,
    "spoofing": 0.06,
    "relocation": 0.04,
    "separation": 0.06,
    "blind_area": 0.06,
    "ip_mismatch": 0.06,
    "tracker_on_ebike": 0.06,
}


def fmt_duration(d: timedelta) -> str:
    """A timedelta as the scenarios' ``1d2h3m4s`` text (whole seconds)."""
    rest = int(d.total_seconds())
    out = ""
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


@dataclass(slots=True)
class _Draft:
    """What a template fills in; :meth:`scenario` wraps it up."""

    seed: int
    index: int
    start: datetime
    rng: random.Random
    kind: str
    days: int = 3
    city: str = ""
    events: list[Event] | None = None
    labels: list[Label] | None = None
    wireless: bool = False
    wakes: int = 2
    sim_province: str | None = None

    def __post_init__(self) -> None:
        self.city = self.rng.choice(sorted(CITIES))
        self.events, self.labels = [], []

    @property
    def vehicle(self) -> str:
        return f"G{self.seed}-{self.index:04d}"

    def tracker(self, n: int) -> str:
        return f"86{self.seed % 10_000:04d}{self.index:05d}{n:04d}"

    def at(self, day: int, lo_h: float, hi_h: float) -> datetime:
        t = self.start + timedelta(days=day, hours=self.rng.uniform(lo_h, hi_h))
        return t.replace(microsecond=0)

    def span(self, lo_h: float, hi_h: float) -> str:
        return fmt_duration(timedelta(hours=self.rng.uniform(lo_h, hi_h)))

    def other_city(self, other_province: bool) -> str:
        prov = CITIES[self.city].province
        pool = [c for c in sorted(CITIES) if c != self.city]
        if other_province:
            pool = [c for c in pool if CITIES[c].province != prov]
        return self.rng.choice(pool)

    def label(self, rule: str, *, event: str, expect: str = "alert", **kw: str) -> None:
        assert self.labels is not None
        self.labels.append(
            Label(rule=rule, vehicle=self.vehicle, event=event, expect=expect, **kw)  # type: ignore[arg-type]
        )

    def scenario(self) -> Scenario:
        trackers = [TrackerDef(id=self.tracker(1), kind="wired", sim_province=self.sim_province)]
        if self.wireless:
            trackers.append(
                TrackerDef(id=self.tracker(2), kind="wireless", wakes_per_day=self.wakes)
            )
        rng = self.rng
        vehicle = VehicleDef(
            id=self.vehicle,
            home_city=self.city,
            home=rng.randrange(3),
            work=rng.randrange(3),
            trackers=trackers,
        )
        return Scenario(
            name=f"{self.kind}-{self.seed}-{self.index}",
            description=f"generated ({self.kind}) from seed {self.seed}",
            start=self.start,
            duration=f"{self.days}d",
            seed=self.seed * 100_003 + self.index,
            vehicles=[vehicle],
            events=list(self.events or []),
            labels=list(self.labels or []),
        )


def _commuter(d: _Draft) -> None:
    d.wireless = d.rng.random() < 0.5


def _region_exit(d: _Draft) -> None:
    d.days = 4
    dest = d.other_city(other_province=True)
    d.events = [
        VisitEvent(id="trip", vehicle=d.vehicle, at=d.at(1, 9, 11), place=f"{dest}.centre",
                   stay=d.span(20, 40)),
    ]  # fmt: skip
    d.label("region_exit", event="trip")
    d.label("gs_ip_mismatch", event="trip", grace="1d", expect="optional")  # SIM stays home
    d.label("night_anomaly", event="trip", grace="1d", expect="optional")  # the drive back


def _risk_poi(d: _Draft, stay_h: tuple[float, float]) -> None:
    kind = d.rng.choice(RISK_KINDS)
    d.wireless = d.rng.random() < 0.5
    d.events = [
        VisitEvent(id="poi", vehicle=d.vehicle, at=d.at(1, 9.5, 15), place=f"{d.city}.{kind}",
                   stay=d.span(*stay_h)),
    ]  # fmt: skip
    d.label("risk_poi_visit", event="poi")


def _risk_poi_stay(d: _Draft) -> None:
    _risk_poi(d, (2.5, 4.0))
    d.label("risk_poi_stay", event="poi", offset="30m", grace="10m")


def _risk_poi_visit(d: _Draft) -> None:
    _risk_poi(d, (0.25, 0.4))
    d.label("risk_poi_stay", event="poi", expect="silent")


def _unplugged(d: _Draft) -> None:
    d.wireless = d.rng.random() < 0.5
    d.events = [
        PowerCutEvent(id="cut", tracker=d.tracker(1), at=d.at(1, 21, 23.5), align="parked"),
        RemovalEvent(id="gone", tracker=d.tracker(1), after="cut", delay=d.span(0.08, 0.4)),
    ]
    d.label("power_cut", event="cut", grace="5m", tracker=d.tracker(1))
    d.label("device_removed", event="cut", grace="60m", tracker=d.tracker(1))
    d.label("offline", event="gone", grace=f"{d.days}d", tracker=d.tracker(1))


def _jamming(d: _Draft) -> None:
    lo, hi = d.rng.choice(((7.0, 8.0), (17.5, 19.0)))
    d.events = [
        JammingEvent(id="jam", vehicle=d.vehicle, at=d.at(1, lo, hi), align="driving",
                     duration=d.span(0.17, 0.5)),
    ]  # fmt: skip
    d.label("jamming", event="jam", grace="5m")  # the agent needs 60 s of it, from the last fix


def _spoofing(d: _Draft) -> None:
    d.events = [
        SpoofingEvent(id="spoof", vehicle=d.vehicle, at=d.at(1, 7, 19), align="driving",
                      duration=d.span(0.08, 0.25), offset_km=round(d.rng.uniform(300, 1500))),
    ]  # fmt: skip
    d.label("spoofing", event="spoof", grace="5m")
    d.label("region_exit", event="spoof", grace="15m", expect="optional")


def _relocation(d: _Draft) -> None:
    d.days = 30
    dest = d.other_city(other_province=False)
    d.events = [RelocateEvent(id="move", vehicle=d.vehicle, at=d.at(14, 10, 14), city=dest)]
    # It never sleeps at the old home again: not_home is due from the 3rd night on, and may
    # take longer when nights in a car park (no fixes) go unobserved.
    d.label("not_home", event="move", offset="2d", grace="17d")
    d.label("relocation", event="move", offset="3d", grace="17d")
    d.label("night_anomaly", event="move", grace="2d", expect="optional")  # a long move
    if CITIES[dest].province != CITIES[d.city].province:  # it now lives outside its area
        d.label("region_exit", event="move", grace="17d")
        d.label("gs_ip_mismatch", event="move", grace="17d")  # a home-province SIM, every day


def _separation(d: _Draft) -> None:
    d.days = 4
    d.wireless, d.wakes = True, 4
    dest = d.other_city(other_province=False)
    d.events = [
        MoveTrackerEvent(id="swap", tracker=d.tracker(1), to="parked_car", at=d.at(1, 22, 23.9),
                         align="parked", rewired_after=d.span(0.15, 0.5)),
        VisitEvent(id="away", vehicle=d.vehicle, at=d.at(2, 5.5, 7.2), place=f"{dest}.centre",
                   stay=d.span(24, 36)),  # at dawn: the car's first trip after the swap
    ]  # fmt: skip
    d.label("device_separation", event="away", grace="6h")  # from departure: they part
    d.label("power_cut", event="swap", grace="5m", tracker=d.tracker(1))
    if CITIES[dest].province != CITIES[d.city].province:  # the car (and its wireless) left
        d.label("region_exit", event="away", grace="1h")
        d.label("gs_ip_mismatch", event="away", grace="1d", expect="optional")
    d.label("not_home", event="away", expect="optional")
    d.label("night_anomaly", event="away", grace="1d", expect="optional")


def _blind_area(d: _Draft) -> None:
    d.events = [
        BlindAreaEvent(id="basement", vehicle=d.vehicle, at=d.at(1, 9.5, 10), align="parked",
                       duration=d.span(4, 9)),
    ]  # fmt: skip
    d.label("blind_area", event="basement", grace="1h")
    d.label("device_removed", event="basement", grace="2h", expect="silent")
    d.label("power_cut", event="basement", grace="2h", expect="silent")


def _ip_mismatch(d: _Draft) -> None:
    home = CITIES[d.city].province
    d.sim_province = d.rng.choice([p for p in sorted(PROVINCE_IP_BLOCKS) if p != home])
    d.events = []
    assert d.labels is not None
    d.labels.append(
        Label(rule="gs_ip_mismatch", vehicle=d.vehicle, start=d.start,
              end=d.start + timedelta(days=d.days))
    )  # fmt: skip


def _tracker_on_ebike(d: _Draft) -> None:
    d.events = [
        MoveTrackerEvent(id="swap", tracker=d.tracker(1), to="ebike", at=d.at(1, 5.5, 7),
                         align="parked"),
    ]  # fmt: skip
    d.label("tracker_on_other_vehicle", event="swap", grace="1d")
    d.label("power_cut", event="swap", grace="5m")
    d.label("device_removed", event="swap", grace="1d", expect="optional")
    d.label("low_battery", event="swap", grace="1d")  # on its backup battery: 6-12 h
    d.label("offline", event="swap", grace=f"{d.days}d")  # ... then flat


TEMPLATES: dict[str, Callable[[_Draft], None]] = {
    "commuter": _commuter,
    "region_exit": _region_exit,
    "risk_poi_stay": _risk_poi_stay,
    "risk_poi_visit": _risk_poi_visit,
    "unplugged": _unplugged,
    "jamming": _jamming,
    "spoofing": _spoofing,
    "relocation": _relocation,
    "separation": _separation,
    "blind_area": _blind_area,
    "ip_mismatch": _ip_mismatch,
    "tracker_on_ebike": _tracker_on_ebike,
}


def generate(
    seed: int,
    n_vehicles: int,
    mix: dict[str, float] | None = None,
    *,
    start: datetime | None = None,
) -> list[Scenario]:
    """``n_vehicles`` scenarios; kinds drawn with weights ``mix`` (template name -> weight)."""
    mix = DEFAULT_MIX if mix is None else mix
    unknown = sorted(set(mix) - set(TEMPLATES))
    if unknown or not any(w > 0 for w in mix.values()) or any(w < 0 for w in mix.values()):
        raise ValueError(
            f"mix: weights must be >= 0, not all 0, over {sorted(TEMPLATES)} (unknown: {unknown})"
        )
    rng = random.Random(f"generate:{seed}")
    if start is None:
        start = FIRST_MONDAY + timedelta(weeks=rng.randint(0, 40))
    names = sorted(mix)
    weights = [mix[n] for n in names]
    out: list[Scenario] = []
    for i in range(n_vehicles):
        kind = rng.choices(names, weights)[0]
        draft = _Draft(seed, i, start, random.Random(f"generate:{seed}:{i}"), kind)
        TEMPLATES[kind](draft)
        scenario = draft.scenario()
        validate(scenario)
        out.append(scenario)
    return out
