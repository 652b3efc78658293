"""Scenarios: who drives where, what goes wrong when, and what the system should detect.

A scenario is a TOML file (bundled ones live in ``firmware_sim/scenarios/``)
validated with msgspec; :func:`load` reports every problem with its key, e.g.
``events[2].tracker: unknown tracker 'x'``. :func:`build` turns a scenario into
a :class:`World` of planned vehicles and steppable trackers, with the label
windows resolved to times. :func:`generate` draws fresh scenarios from a seed.
Format (times are TOML offset date-times; durations are ``1d2h30m10s`` style)::

    name = "risk_poi_stay"
    start = 2025-03-03T00:00:00+08:00
    duration = "3d"
    seed = 7

    [[vehicles]]
    id = "V1"
    home_city = "shanghai"          # firmware_sim.places.CITIES
    home = 0                        # index of a home / work place (drawn when omitted)
    trackers = [{ id = "860001", kind = "wired" },
                { id = "860002", kind = "wireless", wakes_per_day = 4 }]

    [[events]]
    id = "visit"
    kind = "visit"                  # see EVENT_KINDS
    vehicle = "V1"
    at = 2025-03-04T10:00:00+08:00  # or: after = "<event id>", delay = "15m"
    place = "shanghai.second_mortgage"
    stay = "3h"

    [[labels]]
    rule = "risk_poi_stay"          # see RULES
    vehicle = "V1"
    event = "visit"                 # window from the event's resolved start + offset
    offset = "30m"                  # ... to its resolved end + grace;
    grace = "10m"                   # or absolute: start = ..., end = ...
    expect = "alert"                # alert | silent (must not fire) | optional

Events: vehicle-level ``visit`` (place, stay), ``relocate`` (city; the routine
uses the new home/work from the next day), ``jamming``, ``spoofing``
(teleported to ``to`` or ``offset_km`` away) and ``blind_area`` (every tracker
on the vehicle); tracker-level ``power_cut``, ``power_restore``, ``removal``,
``tamper``, ``antenna_cut`` and ``move_tracker`` (onto an e-bike or a parked
decoy car). ``align = "parked"`` / ``"driving"`` moves an event to the next
time the vehicle is parked / on a trip (a few minutes in). A visit's resolved
window runs from its departure to when the car leaves the place; a fault's
from ``at`` to ``at + duration``. Labels with no alert expected are implicit:
alerts that match no ``alert``/``optional`` label are false positives.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar, get_args

import msgspec
from msgspec import Meta, Struct

from firmware_sim.places import CITIES, place
from firmware_sim.tracker import PROVINCE_IP_BLOCKS

_S = TypeVar("_S", bound=Struct)

if TYPE_CHECKING:
    from firmware_sim.world import World

SCENARIO_DIR = Path(__file__).with_name("scenarios")

Rule = Literal[
    "region_exit",
    "risk_poi_visit",
    "risk_poi_stay",
    "power_cut",
    "device_removed",
    "jamming",
    "spoofing",
    "relocation",
    "device_separation",
    "blind_area",
    "gs_ip_mismatch",
    "not_home",
    "tracker_on_other_vehicle",
    "offline",
    "low_battery",
    "night_anomaly",
]
RULES: tuple[str, ...] = get_args(Rule)
Ident = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Duration = Annotated[str, Meta(pattern=r"^(?=.)(\d+d)?(\d+h)?(\d+m)?(\d+s)?$", max_length=32)]
Time = Annotated[datetime, Meta(tz=True)]
Adcode = Annotated[str, Meta(pattern=r"^\d{6}$")]
Align = Literal["none", "parked", "driving"]

_DURATION = re.compile(r"(\d+)([dhms])")
_UNIT = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """``"1d2h30m"`` -> timedelta (the schema has already checked the shape)."""
    return timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in _DURATION.findall(text)))


class ScenarioError(ValueError):
    """A scenario could not be used; ``key`` names where (``vehicles[0].home_city``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class _Strict(Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    pass


class TrackerDef(_Strict, kw_only=True, frozen=True):
    id: Ident
    kind: Literal["wired", "wireless"]
    talker: Literal["GP", "GN", "BD", "GB"] = "GN"
    sim_province: Adcode | None = None  # default: the home city's province
    wakes_per_day: Annotated[int, Meta(ge=1, le=4)] = 2
    every_hours: Annotated[float, Meta(gt=0, le=168)] | None = None
    corrupt_rate: Annotated[float, Meta(ge=0.0, le=0.5)] = 0.0


class VehicleDef(_Strict, kw_only=True, frozen=True):
    id: Ident
    home_city: str
    work_city: str | None = None
    home: Annotated[int, Meta(ge=0, le=2)] | None = None
    work: Annotated[int, Meta(ge=0, le=2)] | None = None
    trackers: Annotated[list[TrackerDef], Meta(min_length=1, max_length=4)]


class _Event(_Strict, kw_only=True, frozen=True, tag_field="kind"):
    id: Ident | None = None
    at: Time | None = None
    after: Ident | None = None  # another event's id: at = its resolved start + delay
    delay: Duration = "0s"
    align: Align = "none"


class VisitEvent(_Event, kw_only=True, frozen=True, tag="visit"):
    vehicle: Ident
    place: str
    stay: Duration


class RelocateEvent(_Event, kw_only=True, frozen=True, tag="relocate"):
    vehicle: Ident
    city: str
    home: Annotated[int, Meta(ge=0, le=2)] | None = None
    work: Annotated[int, Meta(ge=0, le=2)] | None = None


class JammingEvent(_Event, kw_only=True, frozen=True, tag="jamming"):
    vehicle: Ident
    duration: Duration


class SpoofingEvent(_Event, kw_only=True, frozen=True, tag="spoofing"):
    vehicle: Ident
    duration: Duration
    to: str | None = None  # a place reference
    offset_km: Annotated[float, Meta(gt=0, le=5000)] | None = None


class BlindAreaEvent(_Event, kw_only=True, frozen=True, tag="blind_area"):
    vehicle: Ident
    duration: Duration


class PowerCutEvent(_Event, kw_only=True, frozen=True, tag="power_cut"):
    tracker: Ident


class PowerRestoreEvent(_Event, kw_only=True, frozen=True, tag="power_restore"):
    tracker: Ident


class RemovalEvent(_Event, kw_only=True, frozen=True, tag="removal"):
    tracker: Ident


class TamperEvent(_Event, kw_only=True, frozen=True, tag="tamper"):
    tracker: Ident
    source: Literal["light", "case"] = "light"


class AntennaCutEvent(_Event, kw_only=True, frozen=True, tag="antenna_cut"):
    tracker: Ident
    duration: Duration | None = None


class MoveTrackerEvent(_Event, kw_only=True, frozen=True, tag="move_tracker"):
    tracker: Ident
    to: Literal["ebike", "parked_car"]
    rewired_after: Duration | None = None  # powered again from the other vehicle


Event = (
    VisitEvent
    | RelocateEvent
    | JammingEvent
    | SpoofingEvent
    | BlindAreaEvent
    | PowerCutEvent
    | PowerRestoreEvent
    | RemovalEvent
    | TamperEvent
    | AntennaCutEvent
    | MoveTrackerEvent
)
EVENT_KINDS = tuple(sorted(str(c.__struct_config__.tag) for c in get_args(Event)))
VEHICLE_EVENTS = (VisitEvent, RelocateEvent, JammingEvent, SpoofingEvent, BlindAreaEvent)


class Label(_Strict, kw_only=True, frozen=True):
    rule: Rule
    vehicle: Ident
    tracker: Ident | None = None
    start: Time | None = None
    end: Time | None = None
    event: Ident | None = None
    offset: Duration = "0s"
    grace: Duration = "0s"
    expect: Literal["alert", "silent", "optional"] = "alert"
    note: str = ""


class Scenario(_Strict, kw_only=True, frozen=True):
    name: Ident
    description: str = ""
    start: Time
    duration: Duration
    seed: int
    vehicles: Annotated[list[VehicleDef], Meta(min_length=1)]
    events: list[Event] = []
    labels: list[Label] = []

    @property
    def end(self) -> datetime:
        return self.start + parse_duration(self.duration)


_PATH = re.compile(r"at `\$\.?(?P<path>[^`]*)`")


def loads(text: str | bytes, *, source: str = "<scenario>") -> Scenario:
    """Decode and validate; raises ScenarioError naming the key."""
    try:
        scenario = msgspec.toml.decode(text, type=Scenario)
    except msgspec.ValidationError as exc:
        match = _PATH.search(str(exc))
        key = match.group("path") if match else "(top)"
        message = _PATH.sub("", str(exc)).rstrip(" -")
        if "matching regex '^(?=.)(" in message:
            message = "expected a duration such as `45m` or `1d2h30m`"
        raise ScenarioError(key or "(top)", message) from None
    except msgspec.DecodeError as exc:
        raise ScenarioError(source, f"not valid TOML: {exc}") from None
    validate(scenario)
    return scenario


def load(path: Path) -> Scenario:
    return loads(path.read_bytes(), source=str(path))


def bundled() -> list[str]:
    """Names of the scenarios shipped in ``firmware_sim/scenarios/``."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_named(name_or_path: str) -> Scenario:
    """A bundled scenario by name, or a file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        return load(path)
    if name_or_path not in bundled():
        raise ScenarioError("scenario", f"no file and no bundled scenario {name_or_path!r}")
    return load(SCENARIO_DIR / f"{name_or_path}.toml")


def validate(s: Scenario) -> None:
    """Cross-field checks msgspec cannot express; the first problem raises ScenarioError."""
    end = s.end
    if end <= s.start:
        raise ScenarioError("duration", "must be positive")
    owner: dict[str, str] = {}
    vehicles: set[str] = set()
    for i, v in enumerate(s.vehicles):
        _unique(vehicles, v.id, f"vehicles[{i}].id")
        for key, city in (("home_city", v.home_city), ("work_city", v.work_city)):
            if city is not None and city not in CITIES:
                raise ScenarioError(f"vehicles[{i}].{key}", f"unknown city {city!r}")
        for j, t in enumerate(v.trackers):
            if t.id in owner:
                raise ScenarioError(f"vehicles[{i}].trackers[{j}].id", f"duplicate {t.id!r}")
            owner[t.id] = v.id
            if t.sim_province is not None and t.sim_province not in PROVINCE_IP_BLOCKS:
                raise ScenarioError(
                    f"vehicles[{i}].trackers[{j}].sim_province", "not a mainland province"
                )
    ids: set[str] = set()
    for i, e in enumerate(s.events):
        _check_event(s, i, e, vehicles, owner, ids)
    for i, lab in enumerate(s.labels):
        _check_label(s, i, lab, owner, ids, end)


def _unique(seen: set[str], value: str, key: str) -> None:
    if value in seen:
        raise ScenarioError(key, f"duplicate {value!r}")
    seen.add(value)


def _check_event(
    s: Scenario, i: int, e: Event, vehicles: set[str], owner: dict[str, str], ids: set[str]
) -> None:
    key = f"events[{i}]"
    if (e.at is None) == (e.after is None):
        raise ScenarioError(f"{key}.at", "give exactly one of `at` and `after`")
    if e.after is not None and e.after not in ids:
        raise ScenarioError(f"{key}.after", f"no earlier event with id {e.after!r}")
    if e.at is not None and not s.start <= e.at < s.end:
        raise ScenarioError(f"{key}.at", "outside the scenario's time span")
    if isinstance(e, VEHICLE_EVENTS):
        if e.vehicle not in vehicles:
            raise ScenarioError(f"{key}.vehicle", f"unknown vehicle {e.vehicle!r}")
    elif e.tracker not in owner:
        raise ScenarioError(f"{key}.tracker", f"unknown tracker {e.tracker!r}")
    refs: list[tuple[str, str | None]] = []
    if isinstance(e, VisitEvent):
        refs = [("place", e.place)]
    elif isinstance(e, SpoofingEvent):
        refs = [("to", e.to)]
        if (e.to is None) == (e.offset_km is None):
            raise ScenarioError(f"{key}.to", "give exactly one of `to` and `offset_km`")
    elif isinstance(e, RelocateEvent) and e.city not in CITIES:
        raise ScenarioError(f"{key}.city", f"unknown city {e.city!r}")
    for field, ref in refs:
        if ref is not None:
            try:
                place(ref)
            except KeyError as exc:
                raise ScenarioError(f"{key}.{field}", str(exc.args[0])) from None
    if e.id is not None:
        _unique(ids, e.id, f"{key}.id")


def _check_label(
    s: Scenario, i: int, lab: Label, owner: dict[str, str], ids: set[str], end: datetime
) -> None:
    key = f"labels[{i}]"
    if lab.vehicle not in set(owner.values()):
        raise ScenarioError(f"{key}.vehicle", f"unknown vehicle {lab.vehicle!r}")
    if lab.tracker is not None and owner.get(lab.tracker) != lab.vehicle:
        raise ScenarioError(f"{key}.tracker", f"{lab.tracker!r} is not on {lab.vehicle!r}")
    if lab.event is not None:
        if lab.start is not None or lab.end is not None:
            raise ScenarioError(f"{key}.event", "give either `event` or `start` and `end`")
        if lab.event not in ids:
            raise ScenarioError(f"{key}.event", f"unknown event id {lab.event!r}")
        return
    if lab.start is None or lab.end is None:
        raise ScenarioError(f"{key}.start", "give `start` and `end`, or `event`")
    if lab.end <= lab.start:
        raise ScenarioError(f"{key}.end", "must be after start")
    if lab.start < s.start or lab.end > end + timedelta(days=1):
        raise ScenarioError(f"{key}.start", "window outside the scenario")


def generate(seed: int, n_vehicles: int, mix: dict[str, float] | None = None) -> list[Scenario]:
    """Fresh scenarios, one vehicle each, drawn from ``seed`` (see :mod:`.scenario_gen`)."""
    from firmware_sim.scenario_gen import generate as _generate

    return _generate(seed, n_vehicles, mix)


def build(s: Scenario) -> World:
    """Plan the vehicles, set up the trackers and resolve the label windows."""
    from firmware_sim.world import build_world

    return build_world(s)


__all__ = [
    "EVENT_KINDS",
    "RULES",
    "Label",
    "Scenario",
    "ScenarioError",
    "build",
    "bundled",
    "generate",
    "load",
    "load_named",
    "loads",
    "parse_duration",
]


def _shift_struct(obj: _S, delta: timedelta) -> _S:
    changes = {
        f.name: getattr(obj, f.name) + delta
        for f in msgspec.structs.fields(obj)
        if isinstance(getattr(obj, f.name), datetime)
    }
    return msgspec.structs.replace(obj, **changes) if changes else obj


def shifted(s: Scenario, days: int) -> Scenario:
    """The same scenario ``days`` whole days later (or earlier). China time of day is
    kept, so commutes and night stays happen as written; shift by a multiple of 7 to
    keep weekdays too."""
    delta = timedelta(days=days)
    return msgspec.structs.replace(
        _shift_struct(s, delta),
        events=[_shift_struct(e, delta) for e in s.events],
        labels=[_shift_struct(lab, delta) for lab in s.labels],
    )
