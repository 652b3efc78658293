"""What the rules read and what they raise.

Inputs are stored records as the risk engine replays them per vehicle, in
GNSS-time order: :class:`FixIn`, :class:`EventIn`, and :class:`Tick` (time
passing with no data, for rules that fire on silence). Rules answer with
:class:`Signal` values. Everything here is immutable and clock-free: a rule's
notion of "now" is the time of the input it is stepping.

Lookups a rule needs beyond its own state (the loan's policy, POIs, the
province of a point or of an IP address) come through :class:`VehicleContext`,
whose members are protocols so rules can be tested with small fakes and the
worker can plug in the real spatial indexes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Literal, Protocol

DeviceKind = Literal["wired", "wireless"]
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


class Severity(IntEnum):
    INFO = 1
    WARN = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class FixIn:
    """A stored fix of one of the vehicle's devices."""

    time: datetime
    device_id: str
    device_kind: DeviceKind
    seq: int
    lat: float
    lon: float
    speed_mps: float = 0.0
    course_deg: float | None = None
    alt_m: float | None = None
    mode: str = "3d"
    hdop: float | None = None
    sats: int | None = None
    ignition: bool | None = None
    ext_v: float | None = None
    batt_v: float | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventIn:
    """A stored device event (``protocols.messages.EventKind`` values, plus ``session``)."""

    time: datetime
    device_id: str
    device_kind: DeviceKind
    seq: int
    kind: str
    lat: float | None = None
    lon: float | None = None
    detail: Mapping[str, str | int | float | bool | None] = field(default_factory=dict)
    flags: tuple[str, ...] = ()  # e.g. LATE_FLAG, as on FixIn


# Flag the worker adds to a FixIn's or EventIn's ``flags`` when the record reached the
# cloud well after its GNSS time (``received_at - time`` above ~2 min): it was stored on
# the device and uploaded later (blind area, link drop). A stored fact, so replays agree.
LATE_FLAG = "late"


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passes with no new record (live: the wall clock; replay: the fleet's GNSS watermark)."""

    time: datetime


RuleInput = FixIn | EventIn | Tick


class Action(StrEnum):
    OPEN = "open"  # open the episode's alert, or update it (severity may rise)
    RESOLVE = "resolve"  # the condition has ended: auto-resolve the episode's alert


@dataclass(frozen=True, slots=True)
class Signal:
    """A rule's verdict about one episode of one condition.

    ``episode`` is stable for the same condition whatever order or how many
    times data arrives (e.g. ``"region_exit:2025-03-04T10:00:00Z"``, built from
    the GNSS time the condition began), so replays and late data map onto the
    same alert instead of raising a new one.
    """

    rule: str
    episode: str
    time: datetime  # GNSS time at which the rule had the evidence
    severity: Severity
    action: Action = Action.OPEN
    device_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    message: str = ""
    evidence: Mapping[str, JsonValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: DeviceKind
    heartbeat_s: int = 120  # wired: expected heartbeat period
    wakes_per_day: float = 2.0  # wireless: scheduled reports per day


@dataclass(frozen=True, slots=True)
class Poi:
    id: str
    # second_mortgage | pawnshop | used_car_market | registration_office | tow_yard | private
    category: str
    name: str
    lat: float
    lon: float
    radius_m: float


class RegionLookup(Protocol):
    """The loan's signed policy as the cloud evaluates it (same geometry code as the edge)."""

    def metres_outside_allowed(self, lat: float, lon: float) -> float:
        """0 inside an allowed area (or with no allowed areas), else metres past its border."""
        ...

    def forbidden_zone_at(self, lat: float, lon: float) -> str | None:
        """Name of the forbidden zone containing the point, if any."""
        ...


class PlaceLookup(Protocol):
    """Reference data: administrative regions, risk POIs, IP ranges."""

    def province_of(self, lat: float, lon: float) -> str | None:
        """Six-digit adcode of the province containing the point."""
        ...

    def city_of(self, lat: float, lon: float) -> str | None:
        """Six-digit adcode of the prefecture-level city containing the point."""
        ...

    def pois_near(self, lat: float, lon: float, radius_m: float) -> Sequence[Poi]:
        """Risk POIs whose area (centre + radius) is within ``radius_m`` of the point."""
        ...

    def ip_province(self, ip: str) -> str | None:
        """Province adcode of a public address; None when unknown or not province-resolved."""
        ...

    def ip_is_foreign_or_hosting(self, ip: str) -> bool:
        """Outside mainland China, or a hosting / data-centre range: strong evidence."""
        ...


@dataclass(frozen=True, slots=True)
class VehicleContext:
    """Everything a rule may consult besides its own state; immutable for a run."""

    tenant_id: str
    vehicle_id: int
    devices: Mapping[str, Device]
    region: RegionLookup
    places: PlaceLookup
    declared_lat: float | None = None  # the loan's declared address, when geocoded
    declared_lon: float | None = None
    loan_status: str = "current"  # current | overdue | default | closed
    loan_id: int | None = None


class NoRegion:
    """A loan without a signed policy: nothing is outside, nothing forbidden."""

    def metres_outside_allowed(self, lat: float, lon: float) -> float:
        return 0.0

    def forbidden_zone_at(self, lat: float, lon: float) -> str | None:
        return None


class NoPlaces:
    """Reference data not loaded: no regions, no POIs, no IP ranges."""

    source = "none"

    def province_of(self, lat: float, lon: float) -> str | None:
        return None

    def city_of(self, lat: float, lon: float) -> str | None:
        return None

    def pois_near(self, lat: float, lon: float, radius_m: float) -> Sequence[Poi]:
        return ()

    def ip_province(self, ip: str) -> str | None:
        return None

    def ip_is_foreign_or_hosting(self, ip: str) -> bool:
        return False
