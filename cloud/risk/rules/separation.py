"""``device_separation`` (子母分离): the wired and the wireless unit of one car disagree.

``DOMAIN.md``: compare fixes within +-10 min; alarm when the distance exceeds
max(2 km, 3 x combined accuracy).

- **Accuracy** of a fix: HDOP x 5 m UERE (``device_common.accuracy_m``; a fix
  without HDOP counts as HDOP 2). Combined accuracy of a pair:
  sqrt(acc_a^2 + acc_b^2).
- **Motion allowance** (ours): fixes up to 10 min apart may be that far apart
  because the car moved, so the allowed distance adds the larger of the two
  reported speeds x the time between them. A parked pair gets none.
- **Pairing**: the engine steps a vehicle in GNSS order (re-running from a
  snapshot when late data arrives), so a sparse, late wireless fix is compared
  with the wired fix just *before* it when it is stepped, and each wired fix
  *after* it within the window is compared with it as it comes. The closest
  earlier fix of the other device is always its latest one, so the bounded
  history each device keeps is exactly one fix: one distance per fix, none
  when the other device has reported nothing for the window.
- **Held position** (ours): a unit parked in a car park sends no fix at all
  (HDOP > 5: the gate drops every one) but keeps sending heartbeats, for days.
  A thief who moves the wired unit to a decoy in that car park leaves the
  cloud with the wired unit's last fix (the car park entrance) and nothing
  newer to compare with. So a unit's latest fix is *held*: each live heartbeat
  of that unit reporting the ignition off (``detail["ignition"] is False``,
  the terminal status a JT/T 808 "not positioned" report carries) and sent
  after its latest fix re-dates that fix to the heartbeat's time, at
  speed 0. The car could not have been driven with the ignition off, and had
  it left the car park the receiver would have fixed again; the 2 km floor
  covers the way from the entrance to the parking spot. A heartbeat with the
  ignition on, a late one (stored: the link was down) or one without an
  ignition reading (a wireless unit has no ignition line) holds nothing.
- **Confirmation**: one bad fix must not raise it, and a sparse wireless fix is
  compared twice (with the wired fix before and after it). So a run of
  disagreeing comparisons raises **high** (a unit left on a decoy is the classic
  trick, ``DOMAIN.md``) once it holds ``min_fixes`` (2) distinct fixes of each
  device (for a parked wireless unit: its next wake), or ``min_pairs`` (2)
  comparisons at more than ``far_factor`` (10) x the allowed distance (20 km:
  no receiver error reaches that). ``min_pairs`` agreeing comparisons in a row
  resolve it.

Key ``device_separation:<device>:<t>``: ``<device>`` is the later-reporting
(usually wireless) device of the first disagreeing pair, ``t`` the earlier GNSS
time of that pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from cloud.risk.geo import distance_m
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
from cloud.risk.rules.device_common import UERE_M, accuracy_m, episode, is_late, stamp

NAME = "device_separation"
Positive = Annotated[float, Meta(gt=0)]


class SeparationConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    window_s: Positive = 600.0
    min_distance_m: Positive = 2000.0
    sigma: Positive = 3.0
    uere_m: Positive = UERE_M
    min_pairs: Annotated[int, Meta(ge=1)] = 2
    min_fixes: Annotated[int, Meta(ge=1)] = 2
    far_factor: Positive = 10.0


class Seen(msgspec.Struct, frozen=True, gc=False, array_like=True):
    t: datetime  # GNSS time
    lat: float
    lon: float
    acc_m: float
    speed_mps: float


class SeparationState(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    latest: dict[str, Seen] = msgspec.field(default_factory=dict)  # latest fix per device
    pairs: int = 0  # disagreeing comparisons in a row
    fixes: tuple[tuple[str, datetime], ...] = ()  # distinct (device, time) fixes among them
    far: int = 0  # ... of which this many beyond far_factor x the allowed distance
    agree: int = 0  # agreeing comparisons in a row
    first: tuple[str, datetime] | None = None  # (device, time) of the first disagreeing pair
    key: str | None = None


def _confirmed(st: SeparationState, cfg: SeparationConfig) -> bool:
    if st.far >= cfg.min_pairs:
        return True
    per_device: dict[str, int] = {}
    for dev, _ in st.fixes:
        per_device[dev] = per_device.get(dev, 0) + 1
    return len(per_device) >= 2 and min(per_device.values()) >= cfg.min_fixes


def _compare(
    st: SeparationState,
    inp: FixIn,
    me: Seen,
    other_id: str,
    other: Seen,
    cfg: SeparationConfig,
    out: list[Signal],
) -> SeparationState:
    dt = abs((me.t - other.t).total_seconds())
    dist = distance_m(me.lat, me.lon, other.lat, other.lon)
    allowed = max(cfg.min_distance_m, cfg.sigma * math.hypot(me.acc_m, other.acc_m))
    allowed += max(me.speed_mps, other.speed_mps) * dt
    if dist <= allowed:
        agree = st.agree + 1
        if st.key is not None and agree >= cfg.min_pairs:
            msg = f"units agree again ({dist:.0f} m apart)"
            ev: dict[str, JsonValue] = {"distance_m": round(dist), "other_device": other_id}
            out.append(
                Signal(
                    NAME,
                    st.key,
                    inp.time,
                    Severity.HIGH,
                    Action.RESOLVE,
                    inp.device_id,
                    inp.lat,
                    inp.lon,
                    msg,
                    ev,
                )
            )
            return SeparationState(latest=st.latest, agree=agree)
        if st.key is None:
            return SeparationState(latest=st.latest, agree=agree)
        return msgspec.structs.replace(st, agree=agree)
    ids = {(inp.device_id, me.t), (other_id, other.t)}
    fixes = (*st.fixes, *sorted(ids - set(st.fixes)))[-16:]
    st = msgspec.structs.replace(
        st,
        pairs=st.pairs + 1,
        fixes=fixes,
        agree=0,
        far=st.far + (dist > cfg.far_factor * allowed),
        first=st.first or (inp.device_id, min(me.t, other.t)),
    )
    if st.key is not None or not _confirmed(st, cfg):
        return st
    assert st.first is not None
    began = st.first[1]
    key = episode(NAME, st.first[0], began)
    evidence: dict[str, JsonValue] = {
        "distance_m": round(dist),
        "allowed_m": round(allowed),
        "dt_s": round(dt),
        "other_device": other_id,
        "other_at": [other.lat, other.lon],
        "pairs": st.pairs,
        "fixes": len(st.fixes),
        "since": stamp(began),
    }
    msg = f"units {dist / 1000.0:.1f} km apart (allowed {allowed / 1000.0:.1f} km)"
    out.append(
        Signal(
            NAME,
            key,
            inp.time,
            Severity.HIGH,
            Action.OPEN,
            inp.device_id,
            inp.lat,
            inp.lon,
            msg,
            evidence,
        )
    )
    return msgspec.structs.replace(st, key=key)


def _hold(state: SeparationState, ev: EventIn) -> SeparationState:
    """A live event saying the ignition is off re-dates the unit's latest fix (module doc)."""
    seen = state.latest.get(ev.device_id)
    if seen is None or ev.time <= seen.t or ev.detail.get("ignition") is not False:
        return state
    if is_late(ev):
        return state
    held = Seen(ev.time, seen.lat, seen.lon, seen.acc_m, 0.0)
    return msgspec.structs.replace(state, latest={**state.latest, ev.device_id: held})


def step(
    state: SeparationState, inp: RuleInput, ctx: VehicleContext, cfg: SeparationConfig
) -> tuple[SeparationState, Sequence[Signal]]:
    if type(inp) is EventIn:
        return _hold(state, inp), ()
    if type(inp) is not FixIn:
        return state, ()
    t = inp.time
    me = Seen(t, inp.lat, inp.lon, accuracy_m(inp.hdop, cfg.uere_m), inp.speed_mps)
    st = state
    out: list[Signal] = []
    for other_id, other in state.latest.items():
        if other_id != inp.device_id and (t - other.t).total_seconds() <= cfg.window_s:
            st = _compare(st, inp, me, other_id, other, cfg, out)
    latest = st.latest.copy()  # faster than {**latest, id: me}, same order
    latest[inp.device_id] = me
    return msgspec.structs.replace(st, latest=latest), out


RULE: Rule[SeparationState, SeparationConfig] = Rule(
    name=NAME,
    state_type=SeparationState,
    config_type=SeparationConfig,
    step=step,
    raises=(NAME,),
    description="Wired and wireless units disagree: fixes within 10 min more than "
    "max(2 km, 3x combined accuracy) apart",
    events=frozenset({"heartbeat"}),  # the ignition-off reports that hold a fix
)
