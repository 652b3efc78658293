"""protocols.regions: policy compilation, placement, and the hysteresis machine
driven by timed sequences of fixes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import RegionError
from protocols.geometry import GEOD, load_feature_collection
from protocols.messages import EventKind, Fix
from protocols.policy import Area, Circle, GeoJsonShape, Hysteresis, Policy
from protocols.policy_repair import repair_policy
from protocols.regions import (
    CompiledPolicy,
    RegionSignal,
    RegionState,
    compile_policy,
    distance_to_allowed_m,
    locate,
    step,
)

REGIONS = Path(__file__).parents[2].parent / "shared" / "data" / "regions"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

# The allowed test area: a 1° square; its east border is lon 119.0.
BORDER_LON, MID_LAT = 119.0, 32.5


def square(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def geo_area(area_id: str, geometry: dict[str, Any]) -> Area:
    return Area(id=area_id, shape=GeoJsonShape(geometry=geometry))


def policy(
    allowed: Iterable[Area] = (),
    forbidden: Iterable[Area] = (),
    hysteresis: Hysteresis | None = None,
) -> Policy:
    return Policy(
        policy_id="pol-1",
        version=3,
        tenant="t1",
        device_id="dev-1",
        issued_at=T0,
        allowed=list(allowed),
        forbidden=list(forbidden),
        hysteresis=hysteresis or Hysteresis(),
    )


def east_of_border(metres: float) -> tuple[float, float]:
    """(lon, lat) ``metres`` east of the border (negative: inside)."""
    lon, lat, _ = GEOD.fwd(BORDER_LON, MID_LAT, 90.0 if metres >= 0 else 270.0, abs(metres))
    return float(lon), float(lat)


def run(
    compiled: CompiledPolicy,
    points: Iterable[tuple[float, float]],
    state: RegionState | None = None,
    start: int = 0,
) -> tuple[RegionState, list[list[RegionSignal]]]:
    """Step through fixes 30 s apart; the signals of each fix, in order."""
    state = state or RegionState()
    out: list[list[RegionSignal]] = []
    for i, (lon, lat) in enumerate(points, start=start):
        fix = Fix(
            device_id="dev-1",
            boot_id="b1",
            seq=i,
            time=T0 + timedelta(seconds=30 * i),
            lat=lat,
            lon=lon,
        )
        state, signals = step(state, compiled, fix)
        out.append(signals)
    return state, out


def kinds(per_fix: list[list[RegionSignal]]) -> list[list[EventKind]]:
    return [[s.kind for s in signals] for signals in per_fix]


@pytest.fixture(scope="module")
def square_policy() -> CompiledPolicy:
    return compile_policy(policy([geo_area("home", square(118.0, 32.0, 119.0, 33.0))]))


# ---------------------------------------------------------------- placement


def test_locate_margins(square_policy: CompiledPolicy) -> None:
    inside = locate(square_policy, *east_of_border(-100.0))
    assert inside.inside_allowed is True
    assert inside.allowed_ids == {"home"}
    within = locate(square_policy, *east_of_border(4_900.0))
    assert (within.inside_allowed, within.beyond_exit_margin) == (False, False)
    beyond = locate(square_policy, *east_of_border(5_100.0))
    assert (beyond.inside_allowed, beyond.beyond_exit_margin) == (False, True)
    assert not beyond.inside_return_margin
    distance = distance_to_allowed_m(square_policy, *east_of_border(5_100.0))
    assert distance == pytest.approx(5_100.0, rel=0.002)


def test_union_of_allowed_areas() -> None:
    compiled = compile_policy(
        policy(
            [
                geo_area("west", square(118.0, 32.0, 119.0, 33.0)),
                geo_area("east", square(119.1, 32.0, 120.0, 33.0)),
            ]
        )
    )
    assert locate(compiled, 118.5, 32.5).allowed_ids == {"west"}
    assert locate(compiled, 119.5, 32.5).allowed_ids == {"east"}
    gap = locate(compiled, 119.05, 32.5)  # mid-gap, 4.7 km from both: within the margin
    assert (gap.inside_allowed, gap.beyond_exit_margin) == (False, False)
    far = locate(compiled, 121.0, 32.5)
    assert far.beyond_exit_margin


def test_province_policy_on_real_boundaries() -> None:
    features, _ = load_feature_collection((REGIONS / "cn_provinces.geojson").read_bytes())
    jiangsu = next(f for f in features if f.id == "320000")
    shape = dict(shapely.geometry.mapping(jiangsu.geometry))
    compiled = compile_policy(policy([geo_area("320000", shape)]))
    nanjing = locate(compiled, 118.7969, 32.0603)
    assert nanjing.inside_allowed is True
    shanghai = locate(compiled, 121.4737, 31.2304)  # People's Square, well past Jiangsu
    assert (shanghai.inside_allowed, shanghai.beyond_exit_margin) == (False, True)


def test_many_forbidden_zones_use_the_index() -> None:
    zones = [
        Area(id=f"poi-{i}", shape=Circle(lon=118.0 + i * 0.01, lat=32.0, radius_m=200.0))
        for i in range(50)
    ]
    compiled = compile_policy(policy(forbidden=zones, hysteresis=Hysteresis(forbidden_margin_m=50)))
    assert locate(compiled, 118.1, 32.0).forbidden_ids == {"poi-10"}
    # 240 m from the centre: outside the 200 m circle, inside its 50 m margin.
    lon, lat, _ = GEOD.fwd(118.1, 32.0, 0.0, 240.0)
    assert locate(compiled, lon, lat).forbidden_ids == {"poi-10"}
    lon, lat, _ = GEOD.fwd(118.1, 32.0, 0.0, 260.0)
    assert locate(compiled, lon, lat).forbidden_ids == frozenset()
    assert locate(compiled, 118.1, 32.0).inside_allowed is None


def test_circle_allowed_area_with_margin() -> None:
    home = Area(id="city", shape=Circle(lon=118.8, lat=32.06, radius_m=20_000.0))
    compiled = compile_policy(policy([home]))
    for metres, beyond in ((24_800.0, False), (25_200.0, True)):
        lon, lat, _ = GEOD.fwd(118.8, 32.06, 37.0, metres)
        assert locate(compiled, lon, lat).beyond_exit_margin is beyond


# ---------------------------------------------------------------- compile errors


@pytest.mark.parametrize(
    ("geometry", "reason"),
    [
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "not_polygonal"),
        ({"type": "Polygon", "coordinates": [[0, 0], [1, 1]]}, "malformed_geometry"),
        ({"type": "Polygon", "coordinates": []}, "empty_geometry"),
    ],
)
def test_compile_rejects_broken_shapes_naming_the_area(
    geometry: dict[str, Any], reason: str
) -> None:
    for pol in (
        policy([geo_area("ok", square(0, 0, 1, 1)), geo_area("bad-zone", geometry)]),
        policy(forbidden=[geo_area("bad-zone", geometry)]),
    ):
        with pytest.raises(RegionError) as err:
            compile_policy(pol)
        assert (err.value.reason, err.value.field) == (reason, "bad-zone")


def test_compile_rejects_duplicate_ids_and_reads_bowties_as_lobes() -> None:
    with pytest.raises(RegionError) as err:
        compile_policy(policy([geo_area("a", square(0, 0, 1, 1))] * 2))
    assert (err.value.reason, err.value.field) == ("duplicate_area_id", "a")
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
    compiled = compile_policy(
        policy([geo_area("bow", bowtie)], hysteresis=Hysteresis(exit_margin_m=0))
    )
    # Both lobes count (as GEOS MakeValid repairs it); the pinched-off top and bottom do not.
    assert locate(compiled, 0.5, 1.0).allowed_ids == {"bow"}
    assert locate(compiled, 1.5, 1.0).allowed_ids == {"bow"}
    assert locate(compiled, 1.0, 1.5).inside_allowed is False
    assert locate(compiled, 1.0, 0.5).inside_allowed is False


def test_repair_policy_signs_valid_shapes_and_reports_repairs() -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]}
    draft = policy(
        [geo_area("ok", square(0, 0, 1, 1)), geo_area("bow", bowtie)],
        [geo_area("zone-ok", square(0, 0, 1, 1)), geo_area("zone-bow", bowtie)],
    )
    repaired = repair_policy(draft)
    assert [area_id for area_id, _ in repaired.repairs] == ["bow", "zone-bow"]
    assert repaired.repairs[0][1].problem.startswith("Self-intersection")
    assert repaired.policy.allowed[0] is draft.allowed[0]  # valid shapes are kept as given
    fixed = repaired.policy.allowed[1].shape
    assert isinstance(fixed, GeoJsonShape)
    assert shapely.geometry.shape(fixed.geometry).is_valid
    assert repair_policy(repaired.policy).repairs == ()
    again = compile_policy(repaired.policy)
    for lon, lat in ((0.5, 1.0), (1.5, 1.0), (1.0, 1.5), (1.0, 0.5)):
        assert locate(again, lon, lat) == locate(compile_policy(draft), lon, lat)
    with pytest.raises(RegionError) as err:
        repair_policy(policy(forbidden=[geo_area("line", {"type": "LineString"})]))
    assert (err.value.reason, err.value.field) == ("not_polygonal", "line")


def test_compile_rejects_unusable_circle() -> None:
    polar = Area(id="polar", shape=Circle(lon=0.0, lat=89.99, radius_m=5_000.0))
    with pytest.raises(RegionError) as err:
        compile_policy(policy([polar]))
    assert (err.value.reason, err.value.field) == ("circle_unsupported", "polar")


# ---------------------------------------------------------------- hysteresis


def test_border_jitter_never_fires(square_policy: CompiledPolicy) -> None:
    jitter = [east_of_border(m) for m in (-80, 60, -30, 150, 4_000, -10, 4_900, 90, -200) * 4]
    state, per_fix = run(square_policy, jitter)
    assert all(signals == [] for signals in per_fix)
    assert not state.violation_active


def test_real_exit_fires_on_second_fix_beyond_margin_once(square_policy: CompiledPolicy) -> None:
    path = [east_of_border(m) for m in (-500, 1_000, 3_000, 6_000, 8_000, 12_000, 30_000, 9_000)]
    state, per_fix = run(square_policy, path)
    assert kinds(per_fix) == [[], [], [], [], [EventKind.REGION_EXIT], [], [], []]
    exit_signal = per_fix[4][0]
    assert exit_signal.area_ids == ("home",)
    assert exit_signal.time == T0 + timedelta(seconds=30 * 4)
    assert (exit_signal.lon, exit_signal.lat) == pytest.approx(east_of_border(8_000))
    assert exit_signal.detail["distance_m"] == pytest.approx(8_000, rel=0.002)
    assert exit_signal.detail["policy_id"] == "pol-1"
    assert state.violation_active
    assert state.exit_active


def test_within_margin_fixes_neither_count_nor_reset(square_policy: CompiledPolicy) -> None:
    # beyond, within, beyond: the within-margin fix is neutral, so the 2nd beyond fires.
    path = [east_of_border(m) for m in (7_000, 3_000, 7_000)]
    _, per_fix = run(square_policy, path)
    assert kinds(per_fix) == [[], [], [EventKind.REGION_EXIT]]
    # ...whereas a fix inside resets the count.
    path = [east_of_border(m) for m in (7_000, -100, 7_000)]
    _, per_fix = run(square_policy, path)
    assert kinds(per_fix) == [[], [], []]


def test_return_clears_the_exit(square_policy: CompiledPolicy) -> None:
    state, _ = run(square_policy, [east_of_border(10_000)] * 2)
    assert state.exit_active
    # Within the margin keeps the violation; one inside fix is not enough; jitter resets.
    back = [east_of_border(m) for m in (3_000, -100, 200, -100, -300, -400, 7_000, 8_000)]
    state, per_fix = run(square_policy, back, state, start=2)
    # Cleared, so the next real exit fires again.
    ret, ext = [EventKind.REGION_RETURN], [EventKind.REGION_EXIT]
    assert kinds(per_fix) == [[], [], [], [], ret, [], [], ext]
    assert per_fix[4][0].area_ids == ("home",)
    assert state.exit_active


def test_return_margin_widens_the_return_area() -> None:
    compiled = compile_policy(
        policy(
            [geo_area("home", square(118.0, 32.0, 119.0, 33.0))],
            hysteresis=Hysteresis(return_margin_m=2_000.0, consecutive_fixes=3),
        )
    )
    path = [east_of_border(m) for m in (6_000, 6_000, 6_000, 1_500, 1_500, 1_500)]
    state, per_fix = run(compiled, path)
    assert kinds(per_fix) == [[], [], [EventKind.REGION_EXIT], [], [], [EventKind.REGION_RETURN]]
    assert not state.violation_active


def test_forbidden_enter_and_leave() -> None:
    zone = Area(id="pawnshop", shape=Circle(lon=118.78, lat=32.05, radius_m=150.0))
    compiled = compile_policy(policy(forbidden=[zone]))
    inside = (118.78, 32.05)
    outside = GEOD.fwd(118.78, 32.05, 45.0, 400.0)[:2]
    path = [inside, outside, inside, inside, inside, outside, inside, outside, outside, outside]
    state, per_fix = run(compiled, path)
    enter, leave = EventKind.FORBIDDEN_ENTER, EventKind.FORBIDDEN_LEAVE
    assert kinds(per_fix) == [[], [], [], [enter], [], [], [], [], [leave], []]
    assert per_fix[3][0].area_ids == ("pawnshop",)
    assert not state.violation_active
    assert state.zones == ()


def test_violation_active_during_forbidden_stay() -> None:
    zone = Area(id="z", shape=Circle(lon=118.78, lat=32.05, radius_m=150.0))
    compiled = compile_policy(policy(forbidden=[zone]))
    state, _ = run(compiled, [(118.78, 32.05)] * 2)
    assert state.violation_active
    assert state.active_zone_ids == ("z",)


def test_old_and_duplicate_fixes_are_ignored(square_policy: CompiledPolicy) -> None:
    state, _ = run(square_policy, [east_of_border(10_000)], start=10)
    for seq in (3, 10):  # older, then the same epoch again
        late = Fix(
            device_id="dev-1",
            boot_id="b1",
            seq=seq,
            time=T0 + timedelta(seconds=30 * seq),
            lat=MID_LAT,
            lon=east_of_border(10_000)[0],
        )
        again, signals = step(state, square_policy, late)
        assert again is state
        assert signals == []
    # The next newer fix is the 2nd beyond the margin.
    _, per_fix = run(square_policy, [east_of_border(10_000)], state, start=11)
    assert kinds(per_fix) == [[EventKind.REGION_EXIT]]


def test_no_allowed_areas_never_exits() -> None:
    compiled = compile_policy(policy())
    far = [(87.6, 43.8), (121.5, 31.2), (100.0, 10.0)] * 3
    state, per_fix = run(compiled, far)
    assert all(signals == [] for signals in per_fix)
    assert not state.violation_active


def test_policy_change_clears_open_violations(square_policy: CompiledPolicy) -> None:
    zone = Area(id="z", shape=Circle(lon=121.0, lat=32.5, radius_m=500.0))
    compiled = compile_policy(policy([geo_area("home", square(118, 32, 119, 33))], [zone]))
    state, _ = run(compiled, [(121.0, 32.5)] * 2)
    assert state.exit_active
    assert state.active_zone_ids == ("z",)
    state, per_fix = run(compile_policy(policy()), [(121.0, 32.5)], state, start=5)
    assert [(s.kind, s.detail["reason"]) for s in per_fix[0]] == [
        (EventKind.REGION_RETURN, "no_region_limit"),
        (EventKind.FORBIDDEN_LEAVE, "zone_removed"),
    ]
    assert not state.violation_active


@cache
def border_zone_policy() -> CompiledPolicy:
    """The square, plus a forbidden 1 km circle on its east border."""
    zone = Area(id="z", shape=Circle(lon=BORDER_LON, lat=MID_LAT, radius_m=1_000.0))
    return compile_policy(policy([geo_area("home", square(118.0, 32.0, 119.0, 33.0))], [zone]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([-3_000, -50, 50, 3_000, 6_000, 20_000]), max_size=40))
def test_signals_alternate_whatever_the_path(offsets: list[int]) -> None:
    compiled = border_zone_policy()
    state, per_fix = run(compiled, [east_of_border(m) for m in offsets])
    exits = [
        s.kind
        for f in per_fix
        for s in f
        if s.kind in (EventKind.REGION_EXIT, EventKind.REGION_RETURN)
    ]
    zones = [s.kind for f in per_fix for s in f if s.area_ids == ("z",)]
    assert exits == [EventKind.REGION_EXIT, EventKind.REGION_RETURN] * (len(exits) // 2) + (
        [EventKind.REGION_EXIT] if len(exits) % 2 else []
    )
    assert state.exit_active is (len(exits) % 2 == 1)
    assert zones == [EventKind.FORBIDDEN_ENTER, EventKind.FORBIDDEN_LEAVE] * (len(zones) // 2) + (
        [EventKind.FORBIDDEN_ENTER] if len(zones) % 2 else []
    )
    assert state.violation_active is (len(exits) % 2 == 1 or len(zones) % 2 == 1)


def test_state_round_trips_through_json(square_policy: CompiledPolicy) -> None:
    zone = Area(id="z", shape=Circle(lon=121.0, lat=32.5, radius_m=500.0))
    compiled = compile_policy(policy([geo_area("home", square(118, 32, 119, 33))], [zone]))
    state, _ = run(compiled, [(121.0, 32.5)] * 3)
    decoded = msgspec.json.decode(msgspec.json.encode(state), type=RegionState)
    assert decoded == state
