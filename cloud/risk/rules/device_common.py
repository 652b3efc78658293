"""Small helpers shared by the device rules (offline, power, jamming, blind area, ...).

Episode keys are ``"<rule>:<device id>:<GNSS time, UTC, ISO 8601>"`` built from
the GNSS time the condition began, so a replay or a re-run after late data maps
onto the same alert.

A record is *late* when it was stored on the device and uploaded later: the
worker flags it :data:`cloud.risk.model.LATE_FLAG` (``received_at - time`` over
~2 min), or it is an event the edge agent raised while its link was down
(``detail["link_up"] is False``, e.g. ``gnss_fault`` in an underground car park).
Both are stored facts, so every run over the same records agrees on them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cloud.risk.model import LATE_FLAG, Device, DeviceKind, EventIn, FixIn, VehicleContext

# A fix counts as moving at or above this speed (edge/agent/reporting.py uses the same 1.5 m/s).
MOVING_MPS = 1.5
# User-equivalent range error of a consumer GNSS module: 1-sigma horizontal accuracy is
# about HDOP x UERE (5 m is a common figure for single-frequency GPS/BeiDou receivers).
UERE_M = 5.0
# HDOP assumed when a fix does not report one (DOMAIN.md: 2-5 urban).
DEFAULT_HDOP = 2.0


def stamp(t: datetime) -> str:
    """``t`` as ISO 8601 UTC with a ``Z`` (micro-seconds only when present)."""
    u = t.astimezone(UTC)
    frac = f".{u.microsecond:06d}" if u.microsecond else ""
    return f"{u:%Y-%m-%dT%H:%M:%S}{frac}Z"


def episode(rule: str, device_id: str, t: datetime, part: str = "") -> str:
    """Stable episode key of ``rule`` for one device, from the GNSS time the condition began."""
    middle = f"{device_id}:{part}:" if part else f"{device_id}:"
    return f"{rule}:{middle}{stamp(t)}"


def is_late(inp: FixIn | EventIn) -> bool:
    """Stored on the device and uploaded later (flagged late, or raised with the link down)."""
    if inp.flags and LATE_FLAG in inp.flags:
        return True
    return type(inp) is EventIn and inp.detail.get("link_up") is False


def device_of(ctx: VehicleContext, device_id: str, kind: DeviceKind) -> Device:
    """The registered device, or defaults for one the context does not list."""
    known = ctx.devices.get(device_id)
    return known if known is not None else Device(device_id, kind)


def is_moving(fix: FixIn, moving_mps: float = MOVING_MPS) -> bool:
    """Ignition on or moving at ``moving_mps`` or more (the edge agent's notion)."""
    return fix.ignition is True or fix.speed_mps >= moving_mps


def accuracy_m(hdop: float | None, uere_m: float = UERE_M) -> float:
    """1-sigma horizontal accuracy estimate of a fix: HDOP x UERE."""
    return (DEFAULT_HDOP if hdop is None else hdop) * uere_m


def seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()
