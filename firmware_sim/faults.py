"""Faults a scenario injects into a tracker, each at a simulated time.

See :class:`firmware_sim.tracker.Tracker` for what each one does to the NMEA
and the hardware I/O signals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from firmware_sim.vehicle import Vehicle


@dataclass(frozen=True, slots=True)
class CutPower:
    at: datetime


@dataclass(frozen=True, slots=True)
class RestorePower:
    at: datetime


@dataclass(frozen=True, slots=True)
class Remove:
    at: datetime


@dataclass(frozen=True, slots=True)
class TamperWith:
    at: datetime
    source: Literal["light", "case"] = "light"


@dataclass(frozen=True, slots=True)
class Jam:
    at: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class Spoof:
    at: datetime
    until: datetime
    lon: float  # where the fake positions start
    lat: float


@dataclass(frozen=True, slots=True)
class BlindArea:
    at: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class CutAntenna:
    at: datetime
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class MoveToVehicle:
    at: datetime
    vehicle: Vehicle
    powered_after: timedelta | None = None  # rewired to the other vehicle's supply


Fault = (
    CutPower | RestorePower | Remove | TamperWith | Jam | Spoof | BlindArea | CutAntenna
) | MoveToVehicle
