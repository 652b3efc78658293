"""Conditions the agent infers itself: GNSS fault and suspected jamming.

Pure state machine over the agent's monotonic clock (``now_s``), because
during jamming there is no GNSS time to go by.

* ``gnss_fault``: no fix for ``fix_timeout_s`` (default 5 min, the vendors' figure).
* ``jamming_suspected``: the fix is lost while the car was moving (ignition on
  or speed above the moving threshold at the last fix) and the cellular link
  stays up, for more than ``jam_after_s`` (60 s). A car park looks similar but
  happens while parked, so it does not count.
* ``spoofing_suspected``: the fix gate has refused fixes as impossible
  (``jump_too_fast``: a teleport; ``time_in_future``) for ``spoof_after_s``
  (30 s) with no fix accepted in between. The gate keeps its last accepted fix
  as the reference, so a spoofed track never reaches the cloud as fixes: this
  event is how the cloud hears of it (``protocols/README.md`` lists its detail).
  Urban multipath jumps are refused for 1-5 s and never raise it.
Each fires once per episode and clears when a fix returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from protocols.messages import EventKind


@dataclass(frozen=True, slots=True)
class WatchRules:
    fix_timeout_s: float = 300.0
    jam_after_s: float = 60.0
    spoof_after_s: float = 30.0


@dataclass(frozen=True, slots=True)
class WatchState:
    last_fix_s: float | None = None
    lost_since_s: float | None = None
    moving_when_lost: bool = False
    ignition: bool = False
    link_up: bool = True
    antenna_ok: bool = True
    fault_raised: bool = False
    jam_raised: bool = False
    refused_reason: str | None = None  # the gate's reason for the current refusals
    refused_since_s: float | None = None
    refused: int = 0
    spoof_raised: bool = False


def on_fix(state: WatchState, now_s: float, *, moving: bool) -> tuple[WatchState, list[EventKind]]:
    """A gated fix arrived: any episode ends."""
    return (
        WatchState(
            last_fix_s=now_s,
            moving_when_lost=moving,
            ignition=state.ignition,
            link_up=state.link_up,
            antenna_ok=state.antenna_ok,
        ),
        [],
    )


def on_no_fix(
    state: WatchState, now_s: float, rules: WatchRules = WatchRules()
) -> tuple[WatchState, list[EventKind]]:
    """An epoch (or a tick) without a usable fix."""
    if state.lost_since_s is None:
        start = state.last_fix_s if state.last_fix_s is not None else now_s
        state = replace(state, lost_since_s=start)
    lost_for = now_s - (state.lost_since_s or now_s)
    out: list[EventKind] = []
    if not state.fault_raised and lost_for >= rules.fix_timeout_s:
        state = replace(state, fault_raised=True)
        out.append(EventKind.GNSS_FAULT)
    moving = state.moving_when_lost or state.ignition
    if (
        not state.jam_raised
        and moving
        and state.link_up
        and state.antenna_ok
        and lost_for >= rules.jam_after_s
    ):
        state = replace(state, jam_raised=True)
        out.append(EventKind.JAMMING_SUSPECTED)
    return state, out


SPOOF_REASONS = frozenset({"jump_too_fast", "time_in_future"})


def on_refused(
    state: WatchState, now_s: float, reason: str, rules: WatchRules = WatchRules()
) -> tuple[WatchState, list[EventKind]]:
    """The gate refused a fix as impossible (``SPOOF_REASONS``); other reasons: no change."""
    if reason not in SPOOF_REASONS:
        return state, []
    if state.refused_reason != reason or state.refused_since_s is None:
        state = replace(state, refused_reason=reason, refused_since_s=now_s, refused=0,
                        spoof_raised=False)  # fmt: skip
    state = replace(state, refused=state.refused + 1)
    assert state.refused_since_s is not None
    if state.spoof_raised or now_s - state.refused_since_s < rules.spoof_after_s:
        return state, []
    return replace(state, spoof_raised=True), [EventKind.SPOOFING_SUSPECTED]


def with_io(
    state: WatchState,
    *,
    ignition: bool | None = None,
    link_up: bool | None = None,
    antenna_ok: bool | None = None,
) -> WatchState:
    return replace(
        state,
        ignition=state.ignition if ignition is None else ignition,
        link_up=state.link_up if link_up is None else link_up,
        antenna_ok=state.antenna_ok if antenna_ok is None else antenna_ok,
    )
