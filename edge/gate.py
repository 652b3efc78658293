"""The fix quality gate: which assembled fixes the agent keeps, and why it drops the rest.

A stage of its own after :mod:`edge.nmea.assembler`, written as a pure state
machine: :func:`step` takes the frozen state, one :class:`GnssFix` and the
current time, and returns the new state and a :class:`Verdict`. No clock is
read here; ``now`` comes from the caller (the agent's clock, or a test's).

Checks, in order (the first that fails names the drop):

``no_fix``          mode 1: the receiver has no position
``null_island``     0°, 0°: a receiver's placeholder, not a place
``hdop_too_high``   HDOP above ``max_hdop`` (an unknown HDOP passes)
``too_few_sats``    fewer than ``min_sats`` satellites used (an unknown count passes)
``time_in_future``  GNSS time more than ``max_future_s`` ahead of ``now``
``duplicate``       not newer than the last accepted fix
``jump_too_fast``   reaching it from the last accepted fix needs more than
                    ``max_jump_kmh`` (only for moves of ``min_jump_m`` or more:
                    closer than that, an implied speed measures noise)

Only accepted fixes become the reference for ``duplicate`` and
``jump_too_fast``, so one wild fix cannot drag the gate along with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Final

from edge.nmea.assembler import GnssFix
from protocols.plausibility import DEFAULT_LIMITS, haversine_m

NO_FIX: Final = "no_fix"
NULL_ISLAND: Final = "null_island"
HDOP_TOO_HIGH: Final = "hdop_too_high"
TOO_FEW_SATS: Final = "too_few_sats"
TIME_IN_FUTURE: Final = "time_in_future"
DUPLICATE: Final = "duplicate"
JUMP_TOO_FAST: Final = "jump_too_fast"
REASONS: Final = (
    NO_FIX,
    NULL_ISLAND,
    HDOP_TOO_HIGH,
    TOO_FEW_SATS,
    TIME_IN_FUTURE,
    DUPLICATE,
    JUMP_TOO_FAST,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class GateConfig:
    """Thresholds. The first four carry the names of ``edge.config.GateSettings``,
    so ``GateConfig(**msgspec.structs.asdict(config.gate))`` passes them through; the
    others are not settings yet."""

    max_hdop: float = 5.0
    min_sats: int = 4
    max_jump_kmh: float = 300.0
    max_future_s: float = 600.0
    min_jump_m: float = 50.0
    null_island_deg: float = DEFAULT_LIMITS.null_island_deg


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    reason: str | None = None  # one of REASONS when dropped
    detail: str = ""


ACCEPT: Final = Verdict(accepted=True)


def _no_counts() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class GateState:
    """Start with ``GateState(GateConfig(**msgspec.structs.asdict(config.gate)))``."""

    config: GateConfig = field(default_factory=GateConfig)
    last: GnssFix | None = None  # the last accepted fix
    accepted: int = 0
    dropped: Mapping[str, int] = field(default_factory=_no_counts)  # by reason


def check(config: GateConfig, last: GnssFix | None, fix: GnssFix, now: datetime) -> Verdict:
    """The verdict on ``fix`` alone; :func:`step` adds the state."""
    if not fix.fixed or fix.lat is None or fix.lon is None:
        return Verdict(False, NO_FIX, f"mode {fix.mode}")
    if abs(fix.lat) < config.null_island_deg and abs(fix.lon) < config.null_island_deg:
        return Verdict(False, NULL_ISLAND, f"{fix.lat}, {fix.lon}")
    if fix.hdop is not None and fix.hdop > config.max_hdop:
        return Verdict(False, HDOP_TOO_HIGH, f"HDOP {fix.hdop} > {config.max_hdop}")
    if fix.sats is not None and fix.sats < config.min_sats:
        return Verdict(False, TOO_FEW_SATS, f"{fix.sats} satellites < {config.min_sats}")
    ahead = (fix.time - now).total_seconds()
    if ahead > config.max_future_s:
        return Verdict(False, TIME_IN_FUTURE, f"{ahead:.0f} s ahead of the clock")
    if last is None or last.lat is None or last.lon is None:
        return ACCEPT
    dt = (fix.time - last.time).total_seconds()
    if dt <= 0:
        return Verdict(False, DUPLICATE, f"{-dt:.3f} s before the last accepted fix")
    metres = haversine_m(last.lat, last.lon, fix.lat, fix.lon)
    kmh = metres / dt * 3.6
    if metres >= config.min_jump_m and kmh > config.max_jump_kmh:
        return Verdict(False, JUMP_TOO_FAST, f"{metres:.0f} m in {dt:.1f} s = {kmh:.0f} km/h")
    return ACCEPT


def step(state: GateState, fix: GnssFix, *, now: datetime) -> tuple[GateState, Verdict]:
    """Judge one fix; return the new state and the verdict."""
    verdict = check(state.config, state.last, fix, now)
    if verdict.accepted:
        return replace(state, last=fix, accepted=state.accepted + 1), verdict
    assert verdict.reason is not None
    dropped = dict(state.dropped)
    dropped[verdict.reason] = dropped.get(verdict.reason, 0) + 1
    return replace(state, dropped=MappingProxyType(dropped)), verdict
