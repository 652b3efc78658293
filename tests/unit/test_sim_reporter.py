"""The protocol-level tracker firmware: a simulated world turned into the messages it sends."""

from __future__ import annotations

import asyncio
import itertools
import statistics
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware_sim.faults import CutPower, Fault, RestorePower
from firmware_sim.mqtt_device import AckBook, load_passwords
from firmware_sim.places import place
from firmware_sim.replay import ReplayPlan, build_worlds, place_before, replay
from firmware_sim.replay_cli import scenarios_for
from firmware_sim.reporter import (
    FirmwareRules,
    Outgoing,
    devices_of,
    report,
    report_tracker,
)
from firmware_sim.scenarios import build, generate, load_named
from firmware_sim.tracker import Tracker, TrackerKind, TrackerSpec, province_of_ip
from firmware_sim.vehicle import CHINA_TZ, Vehicle
from firmware_sim.world import World
from protocols.messages import (
    CommitAck,
    Event,
    EventBatch,
    EventKind,
    Fix,
    FixBatch,
    SeqRange,
    Status,
    decode,
)
from protocols.plausibility import haversine_m
from protocols.topics import Channel, parse_topic

MONDAY = datetime(2025, 3, 3, tzinfo=CHINA_TZ)
SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Rec:
    """One record as the cloud receives it."""

    record: Fix | Event
    publish_at: datetime
    backlog: bool  # the batch says: held while the link was down

    @property
    def kind(self) -> str:
        return "fix" if isinstance(self.record, Fix) else self.record.kind.value

    @property
    def event(self) -> Event:
        assert isinstance(self.record, Event)
        return self.record


@dataclass
class Report:
    world: World
    messages: list[Outgoing]

    def records(self, device: str | None = None) -> list[Rec]:
        out: list[Rec] = []
        for m in self.messages:
            if device is not None and m.device_id != device:
                continue
            parsed = parse_topic(m.topic)
            assert parsed is not None
            if parsed.channel is Channel.FIX:
                fixes = decode(m.payload, FixBatch)
                out += [Rec(f, m.publish_at, fixes.backlog) for f in fixes.fixes]
            elif parsed.channel is Channel.EVENT:
                events = decode(m.payload, EventBatch)
                out += [Rec(e, m.publish_at, events.backlog) for e in events.events]
        return out

    def fixes(self, device: str) -> list[Fix]:
        return [r.record for r in self.records(device) if isinstance(r.record, Fix)]

    def events(self, device: str, kind: EventKind | None = None) -> list[Rec]:
        return [
            r for r in self.records(device)
            if isinstance(r.record, Event) and kind in (None, r.record.kind)
        ]  # fmt: skip


def run(world: World, **kw: object) -> Report:
    return Report(world, list(report(world, **kw)))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def commuter() -> Report:
    return run(build(load_named("commuter")))


@pytest.fixture(scope="module")
def blind() -> Report:
    return run(build(load_named("blind_area")))


@pytest.fixture(scope="module")
def unplugged() -> Report:
    return run(build(load_named("unplugged")))


@pytest.fixture(scope="module")
def ip_mismatch() -> Report:
    return run(build(load_named("ip_mismatch")))


@pytest.fixture(scope="module")
def jamming() -> Report:
    return run(build(load_named("jamming")))


@pytest.fixture(scope="module")
def spoofing() -> Report:
    return run(build(load_named("spoofing")))


WIRED, WIRELESS = "860101000000001", "860101000000002"


def test_messages_are_valid_wire_messages_in_publish_order(commuter: Report) -> None:
    times = [m.publish_at for m in commuter.messages]
    assert times == sorted(times)
    channels: set[Channel] = set()
    for m in commuter.messages:
        parsed = parse_topic(m.topic)
        assert parsed is not None
        assert parsed.device_id == m.device_id
        channels.add(parsed.channel)
        if parsed.channel is Channel.STATUS:
            status = decode(m.payload, Status)
            assert m.retain
            assert m.records == 0
            assert status.device_id == m.device_id
        else:
            records: list[Fix] | list[Event] = (
                decode(m.payload, FixBatch).fixes
                if parsed.channel is Channel.FIX
                else decode(m.payload, EventBatch).events
            )
            assert m.records == len(records)
            assert m.keys == tuple((r.boot_id, r.seq) for r in records)
            assert all(r.device_id == m.device_id for r in records)
            assert all(r.time <= m.publish_at for r in records)  # GNSS time never ahead
    assert channels == {Channel.FIX, Channel.EVENT, Channel.STATUS}


def test_wired_reports_at_the_agents_intervals(commuter: Report) -> None:
    fixes = commuter.fixes(WIRED)
    moving = [
        (b.time - a.time).total_seconds()
        for a, b in itertools.pairwise(fixes)
        if a.ignition and b.ignition
    ]
    parked = [
        (b.time - a.time).total_seconds()
        for a, b in itertools.pairwise(fixes)
        if not a.ignition and not b.ignition and a.speed_mps < 1.5 and b.speed_mps < 1.5
    ]
    rules = FirmwareRules()
    assert len(moving) > 500
    assert len(parked) > 100
    assert min(moving) >= rules.moving_interval.total_seconds()
    assert statistics.median(moving) == rules.moving_interval.total_seconds()
    assert min(parked) >= rules.parked_interval.total_seconds()
    assert statistics.median(parked) == rules.parked_interval.total_seconds()
    beats = [r.record.time for r in commuter.events(WIRED, EventKind.HEARTBEAT)]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(beats)]
    assert statistics.median(gaps) == rules.heartbeat_interval.total_seconds()


def test_gate_keeps_car_park_fixes_out_but_heartbeats_go_on(commuter: Report) -> None:
    """HDOP in a car park (5.2-12) is above the agent's gate (5): parked there, only heartbeats."""
    vehicle = commuter.world.vehicles["SH-COMMUTER"]
    parked_env = [vehicle.state_at(f.time) for f in commuter.fixes(WIRED)]
    assert not [s for s in parked_env if not s.moving and s.environment.value == "carpark"]
    at_work = [
        r for r in commuter.events(WIRED, EventKind.HEARTBEAT)
        if vehicle.state_at(r.record.time).environment.value == "carpark"
    ]  # fmt: skip
    assert len(at_work) > 100
    # like a JT/T 808 "not positioned" report: the receiver still uses 4+ satellites there
    assert all(r.event.detail["sats"] >= 4 for r in at_work)  # type: ignore[operator]
    assert {r.event.detail["ignition"] for r in at_work} <= {True, False}


def test_fix_positions_are_the_receivers_noisy_truth(commuter: Report) -> None:
    vehicle = commuter.world.vehicles["SH-COMMUTER"]
    errors = []
    for f in commuter.fixes(WIRED):
        truth = vehicle.state_at(f.time)
        errors.append(haversine_m(f.lat, f.lon, truth.lat, truth.lon))
        assert f.hdop is not None
        assert f.hdop <= 5.0
        assert f.sats is not None
        assert f.sats >= 4
    assert statistics.median(errors) < 20.0
    assert max(errors) < 400.0  # urban-canyon jumps are 50-300 m


def test_wireless_reports_only_inside_its_wake_windows(commuter: Report) -> None:
    world = build(load_named("commuter"))  # an unstepped twin: the windows are a pure schedule
    windows = world.trackers[WIRELESS].wake_windows(world.start, world.end)
    assert len(windows) >= 7  # 2 a day for 4 days

    def window_of(t: datetime) -> int | None:
        return next((i for i, (a, b) in enumerate(windows) if a <= t < b), None)

    sent = [m for m in commuter.messages if m.device_id == WIRELESS]
    assert sent
    assert all(window_of(m.publish_at) is not None for m in sent)
    per_window: dict[int | None, list[Fix]] = defaultdict(list)
    for f in commuter.fixes(WIRELESS):
        per_window[window_of(f.time)].append(f)
    assert None not in per_window
    assert len(per_window) >= len(windows) - 2  # no fix in a car park (HDOP above the gate)
    parked = [fs for fs in per_window.values() if all(f.speed_mps < 1.5 for f in fs)]
    assert len(parked) >= 4
    assert all(3 <= len(fs) <= 7 for fs in parked)  # a few fixes per wake, a minute apart
    sessions = commuter.events(WIRELESS, EventKind.SESSION)
    assert len(sessions) == len({window_of(r.publish_at) for r in sessions}) == len(windows)


def test_blind_area_is_a_late_burst_not_a_power_loss(blind: Report) -> None:
    dev = "860109000000001"
    begin, end = blind.world.event_windows["basement"]
    during = [m for m in blind.messages if m.device_id == dev and begin < m.publish_at < end]
    assert during == []  # out of coverage: nothing goes out
    late = [r for r in blind.records(dev) if begin <= r.record.time < end]
    assert late
    assert all(end <= r.publish_at <= end + 2 * SECOND for r in late)
    assert all(r.backlog for r in late)  # declared as a blind-area re-upload
    live = [r for r in blind.records(dev) if r.publish_at == late[0].publish_at and not r.backlog]
    assert {r.kind for r in live} >= {"session"}  # the reconnect itself is live
    # Backlog exactly when held: live records go out in the second they are made.
    assert all(r.backlog == (r.publish_at > r.record.time) for r in blind.records())
    kinds = {r.kind for r in late}
    assert {"heartbeat", "gnss_fault"} <= kinds
    hours = (end - begin) / timedelta(hours=1)
    assert len([r for r in late if r.kind == "heartbeat"]) >= hours * 29  # every 2 min
    assert not blind.events(dev, EventKind.POWER_LOST)
    assert not blind.events(dev, EventKind.JAMMING_SUSPECTED)  # parked when the sky went


def test_unplugged_raises_power_lost_then_falls_silent(unplugged: Report) -> None:
    dev = "860104000000001"
    cut = unplugged.world.event_windows["cut"][0]
    gone = unplugged.world.event_windows["gone"][0]
    lost = unplugged.events(dev, EventKind.POWER_LOST)
    assert len(lost) == 1
    assert cut <= lost[0].record.time < cut + SECOND
    assert lost[0].publish_at == lost[0].record.time  # link up: sent at once
    assert lost[0].event.detail == {"ext_v": 0.0}
    last = max(m.publish_at for m in unplugged.messages if m.device_id == dev)
    assert cut <= last < gone + SECOND
    after = [r.record for r in unplugged.records(dev) if r.record.time > lost[0].record.time]
    assert after  # on its backup battery until removed
    assert all(f.ext_v == 0.0 and f.ignition is False for f in after if isinstance(f, Fix))
    # The wireless unit on the same car goes on waking up.
    assert max(m.publish_at for m in unplugged.messages if m.device_id != dev) > gone


def test_seq_counts_fixes_and_events_together_per_boot(
    commuter: Report, blind: Report, unplugged: Report, jamming: Report
) -> None:
    for rep in (commuter, blind, unplugged, jamming):
        seqs: dict[tuple[str, str], list[int]] = defaultdict(list)
        for r in rep.records():
            seqs[(r.record.device_id, r.record.boot_id)].append(r.record.seq)
        for key, got in seqs.items():
            assert sorted(got) == list(range(len(got))), key
        boots = [r for r in rep.records() if r.kind == "boot"]
        assert all(r.record.seq == 0 for r in boots)
        assert len(boots) == len(seqs)


def test_session_events_carry_the_simulated_ip(ip_mismatch: Report) -> None:
    dev = "860110000000001"
    tracker = ip_mismatch.world.trackers[dev]
    sessions = ip_mismatch.events(dev, EventKind.SESSION)
    assert len(sessions) >= 4  # the first connect and a few coverage drops
    ips = [r.event.detail["ip"] for r in sessions]
    assert ips == [tracker.ip_for_session(n) for n in range(1, len(ips) + 1)]
    assert {province_of_ip(str(ip)) for ip in ips} == {"410000"}  # the SIM's, not the car's
    status_at = {m.publish_at for m in ip_mismatch.messages if m.topic.endswith("/status")}
    assert {r.publish_at for r in sessions} == status_at  # each connect: Status, then session


def test_jamming_is_suspected_while_moving_with_the_link_up(jamming: Report) -> None:
    dev = "860105000000001"
    begin, end = jamming.world.event_windows["jam"]
    jams = jamming.events(dev, EventKind.JAMMING_SUSPECTED)
    assert len(jams) == 1
    # 60 s after the last fix, which came in the second before the jammer.
    assert begin + timedelta(seconds=59) <= jams[0].record.time <= begin + timedelta(seconds=62)
    assert jams[0].event.detail == {"link_up": True}
    assert jams[0].publish_at == jams[0].record.time
    fixes = [f for f in jamming.fixes(dev) if begin + SECOND < f.time < end]
    assert fixes == []
    beats = [r for r in jamming.events(dev, EventKind.HEARTBEAT) if begin < r.record.time < end]
    assert len(beats) >= 9  # heartbeats keep arriving
    assert all(r.event.detail["sats"] <= 3 for r in beats)  # type: ignore[operator]


def test_spoofed_teleport_raises_one_spoofing_suspected_with_the_refused_position(
    spoofing: Report,
) -> None:
    """The gate refuses every teleported fix (a 1000 km jump); after 30 s of that the
    firmware says so, once, with where the receiver claimed to be."""
    dev = "860106000000001"
    begin, end = spoofing.world.event_windows["spoof"]
    fixes = [f for f in spoofing.fixes(dev) if begin + SECOND < f.time < end]
    assert fixes == []  # nothing teleported reaches the cloud as a fix
    raised = spoofing.events(dev, EventKind.SPOOFING_SUSPECTED)
    assert len(raised) == 1
    ev = raised[0].event
    assert begin + timedelta(seconds=29) <= ev.time <= begin + timedelta(seconds=32)
    assert ev.detail["reason"] == "jump_too_fast"
    assert ev.lat is not None  # the last accepted fix
    assert ev.lon is not None
    lat, lon = ev.detail["rejected_lat"], ev.detail["rejected_lon"]
    assert isinstance(lat, float)
    assert isinstance(lon, float)
    assert haversine_m(ev.lat, ev.lon, lat, lon) > 900_000  # Wuhan -> Beijing
    assert spoofing.events(dev, EventKind.JAMMING_SUSPECTED) == []


def test_deterministic_for_a_seed_and_salted_boots() -> None:
    scenario = generate(11, 2)
    first = [list(report(build(s))) for s in scenario]
    again = [list(report(build(s))) for s in scenario]
    assert first == again
    salted = list(report(build(scenario[0]), boot_salt="run-2"))
    assert [m.publish_at for m in salted] == [m.publish_at for m in first[0]]
    boot_ids = {k[0] for m in first[0] for k in m.keys}
    assert boot_ids
    assert boot_ids.isdisjoint({k[0] for m in salted for k in m.keys})


def _flat_world() -> tuple[Tracker, datetime, datetime]:
    start = MONDAY
    end = start + timedelta(hours=22)
    car = Vehicle(seed=5, home=place("wuhan.home.0"), work=place("wuhan.work.0"),
                  start=start, end=end)  # fmt: skip
    faults: list[Fault] = [CutPower(start + timedelta(hours=1)),
                           RestorePower(start + timedelta(hours=20))]  # fmt: skip
    spec = TrackerSpec("860000000000042", kind=TrackerKind.WIRED, sim_province="420000")
    return Tracker(spec, car, seed=5, start=start, end=end, faults=faults), start, end


def test_a_flat_unit_reboots_when_power_returns() -> None:
    tracker, start, end = _flat_world()
    msgs = list(report_tracker(tracker, start, end, boot_salt="t", rules=FirmwareRules()))
    rep = Report(World.__new__(World), msgs)
    recs = rep.records()
    boots = sorted({r.record.boot_id for r in recs})
    assert len(boots) == 2
    second = [r for r in recs if r.record.boot_id == boots[1]]
    assert second[0].kind == "boot"
    assert second[0].record.seq == 0
    assert second[0].event.detail["reason"] == "power_restored"
    restore = start + timedelta(hours=20)
    assert restore <= second[0].record.time < restore + SECOND
    first = [r.record.time for r in recs if r.record.boot_id == boots[0]]
    cut = start + timedelta(hours=1)
    assert cut + timedelta(hours=5) < max(first) < cut + timedelta(hours=13)  # the battery ran
    assert [r for r in recs if max(first) < r.record.time < restore] == []  # flat: silence


@pytest.mark.parametrize("name", ["unplugged", "jamming"])
def test_skipping_quiet_seconds_keeps_the_records(name: str) -> None:
    """Coarse stepping vs one tick a second: the same records at the same times."""

    def window(world: World) -> tuple[World, datetime, datetime]:
        at = next(iter(world.event_windows.values()))[0]
        for tracker in world.trackers.values():  # no urban-canyon jumps: the gate would
            rx = tracker.receiver  # drop them at 1 Hz and shift a report by a second
            rx.config = replace(rx.config, jump_rate=0.0)
        return world, at - timedelta(hours=2), at + timedelta(hours=1)

    got: list[list[tuple[str, str, int, datetime, datetime]]] = []
    for coarse in (True, False):
        world, start, end = window(build(load_named(name)))
        out = []
        for dev, tracker in world.trackers.items():
            msgs = report_tracker(tracker, start, end, boot_salt="x", rules=FirmwareRules(),
                                  coarse=coarse)  # fmt: skip
            rep = Report(world, list(msgs))
            out += [(dev, r.kind, r.record.seq, r.record.time, r.publish_at)
                    for r in rep.records()]  # fmt: skip
        got.append(out)
    assert len(got[0]) > 100
    assert got[0] == got[1]


# ---------------------------------------------------------------- replay (no broker)


def test_place_before_ends_within_the_day_before_keeping_china_time() -> None:
    scenario = load_named("unplugged")
    now = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    moved = place_before(scenario, now)
    assert now - timedelta(days=1) < moved.end <= now
    assert moved.start.astimezone(CHINA_TZ).time() == scenario.start.astimezone(CHINA_TZ).time()
    world = build_worlds([scenario], now)[0]
    assert world.end == moved.end
    assert all(e.at is None or e.at < now for e in moved.events)


def test_replay_refuses_a_world_ending_in_the_future() -> None:
    world = build(load_named("ip_mismatch"))
    with pytest.raises(ValueError, match="future"):
        asyncio.run(replay([world], ReplayPlan(), now=world.end - timedelta(hours=1)))


def test_devices_and_scenario_choices() -> None:
    worlds = [build(s) for s in scenarios_for("separation", 2, seed=4)]
    devices = devices_of(worlds)
    assert {d.kind for d in devices} == {"wired", "wireless"}
    assert {d.wakes_per_day for d in devices} == {None, 4.0}  # separation: 4 wakes a day
    assert all(d.vehicle_id in worlds[0].vehicles or d.vehicle_id in worlds[1].vehicles
               for d in devices)  # fmt: skip
    assert len(scenarios_for("mix", 5, seed=4)) == 5
    assert [s.name for s in scenarios_for("bundled:jamming", 5, seed=4)] == ["jamming"]
    assert len(scenarios_for("bundled", 1, seed=4)) >= 11
    with pytest.raises(ValueError, match="no bundled"):
        scenarios_for("bundled:nope", 1, seed=1)
    with pytest.raises(ValueError, match="more than one"):
        devices_of([build(load_named("jamming")), build(load_named("jamming"))])


def test_passwords_from_a_directory_or_a_file(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "860000000000001").write_text("s3cret\n")
    assert load_passwords(creds) == {"860000000000001": "s3cret"}
    listing = tmp_path / "passwords.txt"
    listing.write_text("# device:password\n860000000000001:a:b\n\n860000000000002: x \n")
    assert load_passwords(listing) == {"860000000000001": "a:b", "860000000000002": "x"}
    listing.write_text("no-colon\n")
    with pytest.raises(ValueError, match="device_id:password"):
        load_passwords(listing)


def test_ack_book_covers_committed_records() -> None:
    book = AckBook()
    book.add(CommitAck(v=1, device_id="d", ranges=[SeqRange("b1", 0, 4), SeqRange("b2", 0, 0)]))
    assert book.covers([("b1", 0), ("b1", 4), ("b2", 0)])
    assert not book.covers([("b1", 5)])
    assert book.changed.is_set()
    assert len(book) == 6
