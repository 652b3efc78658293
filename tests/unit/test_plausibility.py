from __future__ import annotations

from datetime import UTC, datetime, timedelta

from protocols.messages import Fix
from protocols.plausibility import Strength, assess, haversine_m, rejected

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def fix(**over: object) -> Fix:
    base: dict[str, object] = {
        "device_id": "d1",
        "boot_id": "b",
        "seq": 1,
        "time": NOW - timedelta(seconds=5),
        "lat": 31.23,
        "lon": 121.47,
        "speed_mps": 10.0,
        "alt_m": 10.0,
    }
    base.update(over)
    return Fix(**base)  # type: ignore[arg-type]


def reasons(f: Fix, previous: Fix | None = None) -> dict[str, Strength]:
    return {x.reason: x.strength for x in assess(f, now=NOW, previous=previous)}


def test_ordinary_fix_is_plausible() -> None:
    assert assess(fix(), now=NOW) == []


def test_null_island_rejected() -> None:
    found = assess(fix(lat=0.0, lon=0.0), now=NOW)
    first = rejected(found)
    assert first is not None
    assert first.reason == "null_island"


def test_time_windows() -> None:
    assert reasons(fix(time=NOW + timedelta(minutes=11))) == {"time_ahead": Strength.SUSPECT}
    assert reasons(fix(time=NOW + timedelta(minutes=9))) == {}
    assert reasons(fix(time=NOW + timedelta(days=2))) == {"time_far_future": Strength.REJECT}
    assert reasons(fix(time=NOW - timedelta(days=500))) == {"time_too_old": Strength.REJECT}
    # Hours-old data from a blind area is normal, not suspect.
    assert reasons(fix(time=NOW - timedelta(hours=9))) == {}


def test_speed_and_altitude_are_suspect_not_rejected() -> None:
    assert reasons(fix(speed_mps=260 / 3.6)) == {"speed_too_high": Strength.SUSPECT}
    assert reasons(fix(speed_mps=240 / 3.6)) == {}
    assert reasons(fix(alt_m=-250.0)) == {"altitude_out_of_range": Strength.SUSPECT}
    assert reasons(fix(alt_m=6100.0)) == {"altitude_out_of_range": Strength.SUSPECT}
    assert rejected(assess(fix(speed_mps=100.0), now=NOW)) is None


def test_teleport_uses_previous_fix() -> None:
    prev = fix(time=NOW - timedelta(seconds=60), lat=31.23, lon=121.47)
    # ~10 km in 55 s = ~650 km/h.
    far = fix(time=NOW - timedelta(seconds=5), lat=31.32, lon=121.47)
    assert reasons(far, prev) == {"teleport": Strength.SUSPECT}
    near = fix(time=NOW - timedelta(seconds=5), lat=31.235, lon=121.47)
    assert reasons(near, prev) == {}


def test_haversine_known_distance() -> None:
    # Shanghai People's Square to Beijing Tiananmen: about 1,067 km.
    d = haversine_m(31.2304, 121.4737, 39.9087, 116.3975)
    assert 1_060_000 < d < 1_075_000
