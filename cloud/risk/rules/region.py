"""Region rules: leaving the loan's allowed area, and entering a forbidden zone.

Both read the loan's signed policy through ``ctx.region`` (the same geometry
code the edge agent runs, ``DESIGN.md`` contract 6) and count fixes of any of
the vehicle's devices, in GNSS-time order. A fix not newer than the last one
counted (a duplicate, or a second device's fix of the same second) does not
count again; fixes flagged ``teleport`` or ``time_ahead`` by the plausibility
stage are not positions to judge by.

**region_exit** (``DOMAIN.md``: alarm after 2 consecutive fixes outside and
more than 5 km past the border), severity HIGH (*ours*):

- a fix inside the allowed area resets the count; a fix outside but within
  the 5 km margin is neutral (neither counts nor resets), so border jitter and
  a road that grazes the border never fire. This is the edge agent's
  hysteresis (``protocols.regions``), so the two agree.
- resolved after 2 consecutive fixes back inside (``return_margin_m`` 0) *from a
  device that was seen outside during the episode*; inside fixes of the other
  devices are neutral (*ours*). The detection report showed why: a wired unit
  left on a decoy at home kept reporting inside every 10 min while the car,
  with its hidden wireless unit, stood 220 km away in another province; each
  decoy fix pair "resolved" the exit and each wireless wake opened a new one
  (six alerts for one stay). That the two units disagree is
  ``device_separation``'s business; the car has not come back until a unit
  that was out says so.
- the device's own ``region_exit`` event (raised offline by the edge agent)
  opens the episode when none is open, and is recorded as confirmation when
  one is; ``region_return`` resolves an open episode. Whichever comes first
  in GNSS order opens it, so one exit is one alert.
- episode ``region_exit:<GNSS time of the confirming fix or event>``: the
  confirming fix is the one the edge stamps on its own event, so both name
  the same instant when they saw the same fixes.

**forbidden_zone** (``DOMAIN.md``: alarm after 2 consecutive fixes inside),
severity HIGH (*ours*): 2 consecutive fixes inside the same zone open
``forbidden_zone:<zone>:<GNSS time of the first fix inside>``; 2 consecutive
fixes outside it resolve it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from msgspec.structs import replace

from cloud.risk.model import (
    Action,
    EventIn,
    FixIn,
    JsonValue,
    RuleInput,
    Severity,
    Signal,
    VehicleContext,
)
from cloud.risk.rules.base import Rule

SKIP_FLAGS = ("teleport", "time_ahead")


def flagged(flags: tuple[str, ...], skip: tuple[str, ...]) -> bool:
    """Whether a fix carries a plausibility flag that disqualifies its position."""
    return bool(flags) and any(f in skip for f in flags)


def stamp(t: datetime) -> str:
    """A GNSS time as it appears in episode keys: UTC, ISO 8601, ``Z``."""
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class RegionExitConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    consecutive_fixes: int = 2
    exit_margin_m: float = 5000.0
    return_margin_m: float = 0.0
    severity: Severity = Severity.HIGH
    skip_flags: tuple[str, ...] = SKIP_FLAGS


class RegionExitState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    last_fix: datetime | None = None  # GNSS time of the last fix counted
    run: int = 0  # fixes beyond the margin since the last one inside
    run_start: datetime | None = None
    episode: str = ""  # the open exit ("" when inside)
    opened: datetime | None = None
    max_outside_m: float = 0.0
    device_event: datetime | None = None  # the device's own region_exit for the open episode
    return_run: int = 0
    run_devices: tuple[str, ...] = ()  # devices of the fixes counted in ``run``
    out_devices: tuple[str, ...] = ()  # devices seen outside during the open episode


def _exit_evidence(s: RegionExitState, cfg: RegionExitConfig) -> dict[str, JsonValue]:
    return {
        "max_outside_m": round(s.max_outside_m),
        "threshold_m": cfg.exit_margin_m,
        "fixes": cfg.consecutive_fixes,
        "device_confirmed": s.device_event is not None,
    }


def _on_region_event(
    s: RegionExitState, ev: EventIn, cfg: RegionExitConfig
) -> tuple[RegionExitState, list[Signal]]:
    detail: dict[str, JsonValue] = {
        k: v for k, v in ev.detail.items() if isinstance(v, str | int | float | bool)
    }
    if ev.kind == "region_exit":
        if s.episode:
            if s.device_event is None:
                return replace(s, device_event=ev.time), []
            return s, []
        dist = detail.get("distance_m")
        s = RegionExitState(
            last_fix=s.last_fix,
            episode=f"region_exit:{stamp(ev.time)}",
            opened=ev.time,
            max_outside_m=float(dist) if isinstance(dist, int | float) else 0.0,
            device_event=ev.time,
            out_devices=(ev.device_id,),
        )
        evidence = _exit_evidence(s, cfg) | {"source": "device", "device": detail}
        msg = "the tracker reports leaving the allowed area"
        sig = Signal("region_exit", s.episode, ev.time, cfg.severity, Action.OPEN, ev.device_id,
                     ev.lat, ev.lon, msg, evidence)  # fmt: skip
        return s, [sig]
    if ev.kind == "region_return" and s.episode:
        evidence = _exit_evidence(s, cfg) | {"source": "device", "device": detail}
        sig = Signal("region_exit", s.episode, ev.time, cfg.severity, Action.RESOLVE,
                     ev.device_id, ev.lat, ev.lon, "the tracker reports being back inside",
                     evidence)  # fmt: skip
        return RegionExitState(last_fix=s.last_fix), [sig]
    return s, []


def step_region_exit(
    s: RegionExitState, inp: RuleInput, ctx: VehicleContext, cfg: RegionExitConfig
) -> tuple[RegionExitState, list[Signal]]:
    """Count fixes beyond the exit margin; open, confirm and resolve exits (module doc)."""
    if isinstance(inp, EventIn):
        return _on_region_event(s, inp, cfg)
    if not isinstance(inp, FixIn) or (inp.flags and flagged(inp.flags, cfg.skip_flags)):
        return s, []
    if s.last_fix is not None and inp.time <= s.last_fix:
        return s, []
    outside = ctx.region.metres_outside_allowed(inp.lat, inp.lon)
    n = cfg.consecutive_fixes
    if s.episode:
        if outside > cfg.return_margin_m:
            worst = max(s.max_outside_m, outside)
            seen = s.out_devices
            if inp.device_id not in seen:
                seen = (*seen, inp.device_id)
            return replace(
                s, last_fix=inp.time, return_run=0, max_outside_m=worst, out_devices=seen
            ), []
        if s.out_devices and inp.device_id not in s.out_devices:
            return replace(s, last_fix=inp.time), []  # a unit that never left: neutral
        if s.return_run + 1 < n:
            return replace(s, last_fix=inp.time, return_run=s.return_run + 1), []
        evidence = _exit_evidence(s, cfg) | {
            "source": "fixes",
            "opened": stamp(s.opened or inp.time),
        }
        sig = Signal("region_exit", s.episode, inp.time, cfg.severity, Action.RESOLVE,
                     inp.device_id, inp.lat, inp.lon, "back inside the allowed area",
                     evidence)  # fmt: skip
        return RegionExitState(last_fix=inp.time), [sig]
    if outside <= 0.0:
        return RegionExitState(last_fix=inp.time), []
    if outside <= cfg.exit_margin_m:
        return replace(s, last_fix=inp.time), []  # near the border: neutral
    run_start = s.run_start or inp.time
    worst = max(s.max_outside_m, outside)
    devices = s.run_devices if inp.device_id in s.run_devices else (*s.run_devices, inp.device_id)
    if s.run + 1 < n:
        return replace(
            s, last_fix=inp.time, run=s.run + 1, run_start=run_start, max_outside_m=worst,
            run_devices=devices,
        ), []  # fmt: skip
    s = RegionExitState(
        last_fix=inp.time,
        episode=f"region_exit:{stamp(inp.time)}",
        opened=inp.time,
        max_outside_m=worst,
        out_devices=devices,
    )
    evidence = _exit_evidence(s, cfg) | {
        "source": "fixes",
        "outside_m": round(outside),
        "first_outside": stamp(run_start),
    }
    msg = f"left the allowed area: {outside / 1000:.1f} km past the border"
    sig = Signal("region_exit", s.episode, inp.time, cfg.severity, Action.OPEN, inp.device_id,
                 inp.lat, inp.lon, msg, evidence)  # fmt: skip
    return s, [sig]


class ForbiddenZoneConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    consecutive_fixes: int = 2
    severity: Severity = Severity.HIGH
    skip_flags: tuple[str, ...] = SKIP_FLAGS


class ForbiddenZoneState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    last_fix: datetime | None = None
    zone: str = ""  # the zone of the open episode
    episode: str = ""
    entered: datetime | None = None
    out_run: int = 0
    candidate: str = ""  # a zone being entered, not yet confirmed
    cand_run: int = 0
    cand_start: datetime | None = None


def step_forbidden_zone(
    s: ForbiddenZoneState, inp: RuleInput, ctx: VehicleContext, cfg: ForbiddenZoneConfig
) -> tuple[ForbiddenZoneState, list[Signal]]:
    """Count consecutive fixes inside / outside a forbidden zone (module doc)."""
    if not isinstance(inp, FixIn) or (inp.flags and flagged(inp.flags, cfg.skip_flags)):
        return s, []
    if s.last_fix is not None and inp.time <= s.last_fix:
        return s, []
    zone = ctx.region.forbidden_zone_at(inp.lat, inp.lon)
    n = cfg.consecutive_fixes
    out: list[Signal] = []
    if s.zone and zone == s.zone:
        return replace(s, last_fix=inp.time, out_run=0, candidate="", cand_run=0), out
    if s.zone:
        if s.out_run + 1 < n:
            s = replace(s, out_run=s.out_run + 1)
        else:
            evidence: dict[str, JsonValue] = {
                "zone": s.zone,
                "entered": stamp(s.entered or inp.time),
            }
            out.append(Signal("forbidden_zone", s.episode, inp.time, cfg.severity, Action.RESOLVE,
                              inp.device_id, inp.lat, inp.lon, f"left forbidden zone {s.zone}",
                              evidence))  # fmt: skip
            s = replace(s, zone="", episode="", entered=None, out_run=0)
    if zone is None:
        return replace(s, last_fix=inp.time, candidate="", cand_run=0, cand_start=None), out
    start = s.cand_start if zone == s.candidate and s.cand_start is not None else inp.time
    run = s.cand_run + 1 if zone == s.candidate else 1
    if run < n or s.zone:
        return replace(s, last_fix=inp.time, candidate=zone, cand_run=run, cand_start=start), out
    episode = f"forbidden_zone:{zone}:{stamp(start)}"
    evidence = {"zone": zone, "fixes": run, "first_inside": stamp(start), "min_fixes": n}
    out.append(Signal("forbidden_zone", episode, inp.time, cfg.severity, Action.OPEN,
                      inp.device_id, inp.lat, inp.lon, f"inside forbidden zone {zone}",
                      evidence))  # fmt: skip
    s = ForbiddenZoneState(last_fix=inp.time, zone=zone, episode=episode, entered=start)
    return s, out


REGION_EXIT = Rule(
    name="region_exit",
    state_type=RegionExitState,
    config_type=RegionExitConfig,
    step=step_region_exit,
    raises=("region_exit",),
    description="Car more than 5 km outside its loan's allowed area for 2 fixes",
    events=frozenset({"region_exit", "region_return"}),
)
FORBIDDEN_ZONE = Rule(
    name="forbidden_zone",
    state_type=ForbiddenZoneState,
    config_type=ForbiddenZoneConfig,
    step=step_forbidden_zone,
    raises=("forbidden_zone",),
    description="Car inside a zone the lender forbids for 2 fixes",
    events=frozenset(),
)
