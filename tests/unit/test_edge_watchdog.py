"""The agent's watchdog: spoofing_suspected after 30 s of fixes the gate refuses as impossible."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from edge.agent.watchdog import WatchState, on_fix, on_refused
from edge.gate import GateState, step
from edge.nmea.assembler import GnssFix
from protocols.messages import EventKind

T0 = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
WUHAN = GnssFix(time=T0, mode=3, lat=30.5928, lon=114.3055, alt_m=20.0, speed_mps=15.0,
                hdop=0.9, sats=12)  # fmt: skip


def at(seconds: int, lat: float, lon: float) -> GnssFix:
    return replace(WUHAN, time=T0 + timedelta(seconds=seconds), lat=lat, lon=lon)


def drive(epochs: list[GnssFix]) -> list[tuple[int, EventKind]]:
    """Gate, then watchdog, one epoch a second (the watchdog's clock = seconds since T0)."""
    gate, watch = GateState(), WatchState(last_fix_s=0.0)
    out: list[tuple[int, EventKind]] = []
    for g in epochs:
        now_s = (g.time - T0).total_seconds()
        gate, verdict = step(gate, g, now=g.time + timedelta(seconds=1))
        if verdict.accepted:
            watch, kinds = on_fix(watch, now_s, moving=True)
        else:
            assert verdict.reason is not None
            watch, kinds = on_refused(watch, now_s, verdict.reason)
        out += [(int(now_s), k) for k in kinds]
    return out


def test_a_spoofed_teleport_is_reported_once_after_30_s() -> None:
    track = [at(i, 30.5928 + i * 1e-4, 114.3055) for i in range(10)]
    spoofed = [at(i, 39.9042 + i * 1e-4, 116.4074) for i in range(10, 100)]  # Beijing
    back = [at(i, 30.5928 + i * 1e-4, 114.3055) for i in range(100, 110)]
    assert drive(track + spoofed + back) == [(40, EventKind.SPOOFING_SUSPECTED)]


def test_urban_multipath_jumps_of_a_few_seconds_never_raise_it() -> None:
    epochs = []
    for i in range(300):
        jumped = i % 60 in (20, 21, 22, 23)  # 4 s, 300 m off, once a minute
        epochs.append(at(i, 30.5928 + i * 1e-4 + (0.0027 if jumped else 0.0), 114.3055))
    assert drive(epochs) == []


def test_an_accepted_fix_ends_the_episode_and_a_new_one_can_raise_again() -> None:
    epochs = [at(0, 30.5928, 114.3055)]
    epochs += [at(i, 39.9, 116.4) for i in range(1, 40)]
    epochs += [at(40, 30.5929, 114.3055)]
    epochs += [at(i, 39.9, 116.4) for i in range(41, 80)]
    assert drive(epochs) == [(31, EventKind.SPOOFING_SUSPECTED), (71, EventKind.SPOOFING_SUSPECTED)]
