"""The edge outbox: identity, send order, resend timing, acks, eviction, corruption."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from edge.outbox import RECORD_OVERHEAD, Kind, Outbox, StoredRecord
from protocols.errors import SchemaError
from protocols.messages import Event, EventKind, Fix, SeqRange

T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
DEVICE = "860000000000001"
BIG = 1 << 30


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def a_fix(n: int = 0, **over: object) -> Fix:
    fields: dict[str, object] = {
        "device_id": DEVICE,
        "boot_id": "unassigned",
        "seq": 0,
        "time": T0 + timedelta(seconds=n),
        "lat": 31.2304,
        "lon": 121.4737,
        "speed_mps": 12.5,
        "hdop": 0.9,
        "sats": 11,
    }
    fields.update(over)
    return Fix(**fields)  # type: ignore[arg-type]


def an_event(n: int = 0, kind: EventKind = EventKind.TAMPER) -> Event:
    return Event(
        device_id=DEVICE,
        boot_id="unassigned",
        seq=0,
        time=T0 + timedelta(seconds=n),
        kind=kind,
        detail={"source": "light_sensor"},
    )


def keys(records: list[StoredRecord]) -> list[tuple[str, int]]:
    return [(r.boot_id, r.seq) for r in records]


def stored_keys(path: Path) -> list[tuple[str, int, str]]:
    """What the file holds, read independently of the Outbox object."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT boot_id, seq, kind FROM records ORDER BY boot_id, seq")
        return [(b, s, k) for b, s, k in rows]
    finally:
        conn.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite3"


@pytest.fixture
def box(db: Path, clock: FakeClock) -> Iterator[Outbox]:
    with Outbox.open(db, max_bytes=BIG, clock=clock) as ob:
        yield ob


# ------------------------------------------------------------------ identity


def test_seq_counts_fixes_and_events_together_from_zero(box: Outbox) -> None:
    a = box.append(a_fix(0))
    b = box.append(an_event(1))
    c = box.append(a_fix(2))
    assert [a.seq, b.seq, c.seq] == [0, 1, 2]
    assert {a.boot_id, b.boot_id, c.boot_id} == {box.boot_id}
    assert [a.kind, b.kind, c.kind] == ["fix", "event", "fix"]
    assert box.next_seq == 3
    # The placeholder identity is replaced in the stored message and payload.
    assert a.message.boot_id == box.boot_id
    assert b"unassigned" not in b.payload
    assert isinstance(b.message, Event)
    assert b.message.kind is EventKind.TAMPER
    assert a.time == T0
    assert a.size == len(a.payload) + RECORD_OVERHEAD


def test_boot_id_fits_the_wire_schema_and_sorts_in_boot_order(db: Path) -> None:
    ids = []
    for _ in range(3):
        with Outbox.open(db, max_bytes=BIG) as ob:
            ids.append(ob.boot_id)
            ob.append(a_fix())  # validated against the BootId pattern
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    assert all(len(i) <= 36 for i in ids)


def test_out_of_bounds_record_is_rejected_without_using_a_seq(box: Outbox) -> None:
    with pytest.raises(SchemaError) as info:
        box.append(a_fix(lat=123.0))
    assert info.value.field == "lat"
    with pytest.raises(SchemaError):
        box.append(a_fix(time=datetime(1999, 12, 31, tzinfo=UTC)))
    assert box.next_seq == 0
    assert box.depth() == 0
    assert box.append(a_fix()).seq == 0


def test_reopen_is_a_new_boot_and_keeps_old_records_ackable(db: Path, clock: FakeClock) -> None:
    with Outbox.open(db, max_bytes=BIG, clock=clock) as first:
        old = [first.append(a_fix(i)) for i in range(3)]
        first.take_batch("fix", 10, 30.0)
        old_boot = first.boot_id
    with Outbox.open(db, max_bytes=BIG, clock=clock) as second:
        assert second.boot_id != old_boot
        assert second.depth() == 3
        assert second.bytes_used() == sum(r.size for r in old)
        new = second.append(a_fix(10))
        assert new.seq == 0
        # In flight in the previous run is due again at once in this one.
        taken = second.take_batch("fix", 10, 30.0)
        assert keys(taken) == [*keys(old), (second.boot_id, 0)]
        assert second.ack([SeqRange(old_boot, 0, 2)]) == 3
        assert second.depth() == 1
    assert stored_keys(db) == [(new.boot_id, 0, "fix")]


# ------------------------------------------------------------ take_batch


def test_take_batch_oldest_first_across_boots_and_kinds(db: Path, clock: FakeClock) -> None:
    with Outbox.open(db, max_bytes=BIG, clock=clock) as first:
        for i in range(12):
            first.append(an_event(i) if i % 4 == 0 else a_fix(i))
    with Outbox.open(db, max_bytes=BIG, clock=clock) as second:
        for i in range(3):
            second.append(a_fix(100 + i))
        second.append(an_event(200))
        fixes = second.take_batch("fix", 100, 30.0)
        events = second.take_batch("event", 100, 30.0)
    assert [r.kind for r in fixes] == ["fix"] * 12
    assert [r.kind for r in events] == ["event"] * 4
    assert keys(fixes) == sorted(keys(fixes))
    assert keys(events) == sorted(keys(events))
    assert [r.seq for r in fixes[:9]] == [1, 2, 3, 5, 6, 7, 9, 10, 11]
    assert [r.seq for r in fixes[9:]] == [0, 1, 2]
    assert fixes[9].boot_id > fixes[8].boot_id


def test_take_batch_limits_marks_in_flight_and_resends_after_timeout(
    box: Outbox, clock: FakeClock
) -> None:
    for i in range(5):
        box.append(a_fix(i))
    first = box.take_batch("fix", 3, resend_after_s=30.0)
    assert [r.seq for r in first] == [0, 1, 2]
    second = box.take_batch("fix", 3, resend_after_s=30.0)
    assert [r.seq for r in second] == [3, 4]
    assert box.take_batch("fix", 3, resend_after_s=30.0) == []
    clock.now += 29.9
    assert box.take_batch("fix", 10, resend_after_s=30.0) == []
    clock.now += 0.1  # the first batch was sent 30 s ago
    again = box.take_batch("fix", 10, resend_after_s=30.0)
    assert [r.seq for r in again] == [0, 1, 2, 3, 4]
    assert again[0].payload == first[0].payload
    assert again[0].message == first[0].message
    assert box.take_batch("fix", 0, resend_after_s=30.0) == []
    assert box.take_batch("event", 10, resend_after_s=30.0) == []


def test_acked_records_are_not_resent(box: Outbox, clock: FakeClock) -> None:
    for i in range(4):
        box.append(a_fix(i))
    box.take_batch("fix", 10, 5.0)
    box.ack([SeqRange(box.boot_id, 1, 2)])
    clock.now += 10
    assert [r.seq for r in box.take_batch("fix", 10, 5.0)] == [0, 3]


def test_damaged_payload_is_dropped_and_counted(box: Outbox, db: Path) -> None:
    for i in range(3):
        box.append(a_fix(i))
    # Bit rot inside a payload: the b-tree is fine, so quick_check cannot see it.
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE records SET payload = CAST('{\"lat\":' AS BLOB) WHERE seq = 1")
        conn.execute(
            "UPDATE records SET payload = CAST(replace(payload, '\"seq\":2', '\"seq\":7') AS BLOB)"
            " WHERE seq = 2"
        )
    conn.close()
    taken = box.take_batch("fix", 10, 30.0)
    assert [r.seq for r in taken] == [0]
    assert box.corrupt_dropped_total == 2
    assert box.depth() == 1
    assert box.bytes_used() == taken[0].size


# ------------------------------------------------------------------- ack


def test_ack_ranges_partial_overlapping_unknown_and_idempotent(box: Outbox) -> None:
    recs = [box.append(a_fix(i) if i % 3 else an_event(i)) for i in range(10)]
    b = box.boot_id
    assert box.ack([SeqRange(b, 2, 4)]) == 3
    assert box.ack([SeqRange(b, 3, 6), SeqRange(b, 5, 7)]) == 3  # 5, 6, 7 once each
    assert box.ack([SeqRange(b, 2, 7)]) == 0  # idempotent
    assert box.ack([SeqRange("00000063-ffffffffffffffff", 0, 100)]) == 0  # unknown boot
    assert box.ack([SeqRange(b, 9, 8)]) == 0  # empty range
    assert box.ack([SeqRange(b, 100, 200)]) == 0  # beyond what exists
    assert box.ack([]) == 0
    left = [r for r in recs if r.seq not in range(2, 8)]
    assert box.depth() == 4
    assert box.depth("fix") == 2
    assert box.depth("event") == 2
    assert box.bytes_used() == sum(r.size for r in left)
    assert box.ack([SeqRange(b, 0, 0), SeqRange(b, 8, 2**53)]) == 3
    assert box.oldest_time() == recs[1].time
    assert box.evicted_total == 0  # acks are not evictions


def test_counters_and_oldest_time_match_the_file_after_reopen(db: Path) -> None:
    with Outbox.open(db, max_bytes=BIG) as ob:
        assert ob.oldest_time() is None
        assert ob.depth() == 0
        assert ob.bytes_used() == 0
        recs = [ob.append(a_fix(i) if i % 2 else an_event(i)) for i in range(7)]
        ob.ack([SeqRange(ob.boot_id, 0, 1)])
        depth, used, oldest = ob.depth(), ob.bytes_used(), ob.oldest_time()
    assert oldest == recs[2].time
    with Outbox.open(db, max_bytes=BIG) as again:
        assert (again.depth(), again.bytes_used(), again.oldest_time()) == (depth, used, oldest)
        assert again.depth("fix") == 2
        assert again.depth("event") == 3


# -------------------------------------------------------------- eviction


def test_eviction_takes_oldest_fixes_before_any_event(db: Path) -> None:
    with Outbox.open(db, max_bytes=BIG) as probe:
        fix_size = probe.append(a_fix(0)).size
        event_size = probe.append(an_event(1)).size
    db.unlink()
    bound = 3 * event_size + 4 * fix_size
    with Outbox.open(db, max_bytes=bound) as ob:
        e = [ob.append(an_event(i)) for i in range(3)]
        f = [ob.append(a_fix(10 + i)) for i in range(4)]
        assert ob.evicted_total == 0
        assert ob.bytes_used() <= bound
        newer = [ob.append(a_fix(20 + i)) for i in range(2)]  # evicts f[0], f[1]
        assert ob.evicted_total == 2
        held = {(r.boot_id, r.seq) for r in [*e, *f[2:], *newer]}
        assert {(b, s) for b, s, _ in stored_keys(db)} == held
        assert ob.pop_evicted() == 2
        assert ob.pop_evicted() == 0
        # Events and newer fixes held: the fixes still go first.
        ob.append(an_event(30))
        assert (f[2].boot_id, f[2].seq, "fix") not in stored_keys(db)
        assert all((r.boot_id, r.seq, "event") in stored_keys(db) for r in e)
        # Once no fix is left, the oldest events go.
        for i in range(6):
            ob.append(an_event(40 + i))
        kinds = [k for _, _, k in stored_keys(db)]
        assert kinds == ["event"] * len(kinds)
        assert (e[0].boot_id, e[0].seq, "event") not in stored_keys(db)
        assert ob.bytes_used() <= bound
        assert ob.evicted_total == ob.pop_evicted() + 2


def test_never_evicts_the_record_being_appended(db: Path) -> None:
    with Outbox.open(db, max_bytes=100) as ob:  # smaller than any record
        ob.append(a_fix(0))
        ob.append(an_event(1))
        last = ob.append(a_fix(2))
        assert ob.depth() == 1
        assert ob.evicted_total == 2
        assert keys(ob.take_batch("fix", 10, 1.0)) == [(last.boot_id, last.seq)]


def test_bytes_used_tracks_the_database_file_size(db: Path) -> None:
    with Outbox.open(db, max_bytes=BIG) as ob:
        for i in range(1000):
            ob.append(a_fix(i, alt_m=12.5, course_deg=271.0, ignition=True, batt_v=4.1))
        used = ob.bytes_used()
    size = db.stat().st_size  # the WAL was checkpointed on close
    assert 0.85 < size / used < 1.2


# ------------------------------------------------------------ corruption


def test_garbage_file_is_moved_aside_and_a_fresh_outbox_created(db: Path) -> None:
    garbage = os.urandom(3 * 4096)
    db.write_bytes(garbage)
    with Outbox.open(db, max_bytes=BIG) as ob:
        assert ob.moved_aside == db.with_name(db.name + ".corrupt-1")
        assert ob.depth() == 0
        assert ob.append(a_fix()).seq == 0
    assert ob.moved_aside.read_bytes() == garbage
    db.write_bytes(b"SQLite format 3\x00" + garbage)
    with Outbox.open(db, max_bytes=BIG) as again:
        assert again.moved_aside == db.with_name(db.name + ".corrupt-2")
    with Outbox.open(db, max_bytes=BIG) as fine:
        assert fine.moved_aside is None


def test_damaged_page_is_detected_by_the_quick_check(db: Path) -> None:
    with Outbox.open(db, max_bytes=BIG) as ob:
        for i in range(300):
            ob.append(a_fix(i))
    pages = db.stat().st_size // 4096
    assert pages > 8
    with db.open("r+b") as f:  # overwrite whole b-tree pages in the middle
        f.seek(4 * 4096)
        f.write(os.urandom(3 * 4096))
    with Outbox.open(db, max_bytes=BIG) as fresh:
        assert fresh.moved_aside is not None
        assert fresh.depth() == 0


# ------------------------------------------------ model-based (hypothesis)


@dataclass
class Held:
    kind: Kind
    size: int
    sent_at: float | None = None


class OutboxMachine(RuleBasedStateMachine):
    """Random appends, takes, acks, clock steps and reopens against a model.

    Invariant: every appended record is held, or was acked, or was evicted and
    counted; what is held and the send order match the model exactly, and the
    model evicts by the documented rule (oldest fixes first, then events).
    """

    MAX_BYTES = 2200

    def __init__(self) -> None:
        super().__init__()
        base = "/dev/shm" if Path("/dev/shm").is_dir() else None  # fsync is free there
        self.dir = Path(tempfile.mkdtemp(prefix="outbox-", dir=base))
        self.path = self.dir / "o.sqlite3"
        self.clock = FakeClock()
        self.box = Outbox.open(self.path, max_bytes=self.MAX_BYTES, clock=self.clock)
        self.held: dict[tuple[str, int], Held] = {}
        self.appended: set[tuple[str, int]] = set()
        self.acked: set[tuple[str, int]] = set()
        self.evicted: set[tuple[str, int]] = set()
        self.evicted_counted = 0
        self.boots = [self.box.boot_id]
        self.n = 0

    def teardown(self) -> None:
        self.box.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _model_evict(self, need: int) -> None:
        freed = 0
        for kind in ("fix", "event"):
            for key in sorted(k for k, h in self.held.items() if h.kind == kind):
                if freed >= need:
                    return
                freed += self.held.pop(key).size
                self.evicted.add(key)

    @rule(is_event=st.booleans(), extra=st.integers(0, 3))
    def append(self, is_event: bool, extra: int) -> None:
        self.n += 1
        detail_len = extra * 40
        rec = (
            an_event(self.n)
            if is_event
            else a_fix(self.n, alt_m=float(detail_len), course_deg=float(extra))
        )
        before = sum(h.size for h in self.held.values())
        stored = self.box.append(rec)
        key = (stored.boot_id, stored.seq)
        assert key not in self.appended
        need = before + stored.size - self.MAX_BYTES
        if need > 0:
            self._model_evict(need)
        self.held[key] = Held(stored.kind, stored.size)
        self.appended.add(key)

    @rule(kind=st.sampled_from(["fix", "event"]), limit=st.integers(1, 6))
    def take(self, kind: Kind, limit: int) -> None:
        resend = 10.0
        now = self.clock.now
        due = sorted(
            k
            for k, h in self.held.items()
            if h.kind == kind and (h.sent_at is None or h.sent_at <= now - resend)
        )[:limit]
        got = self.box.take_batch(kind, limit, resend)
        assert keys(got) == due
        for k in due:
            self.held[k].sent_at = now

    @rule(step=st.sampled_from([0.5, 5.0, 10.0, 30.0]))
    def tick(self, step: float) -> None:
        self.clock.now += step

    @precondition(lambda self: bool(self.appended))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        ranges = []
        for _ in range(data.draw(st.integers(1, 3))):
            boot = data.draw(st.sampled_from(self.boots))
            first = data.draw(st.integers(0, max(self.n, 1)))
            last = data.draw(st.integers(max(first - 1, 0), first + 5))
            ranges.append(SeqRange(boot, first, last))
        covered = {
            k
            for k in self.held
            if any(k[0] == r.boot_id and r.first <= k[1] <= r.last for r in ranges)
        }
        assert self.box.ack(ranges) == len(covered)
        for k in covered:
            del self.held[k]
        self.acked |= covered

    @rule()
    def reopen(self) -> None:
        self.evicted_counted += self.box.pop_evicted()
        self.box.close()
        self.box = Outbox.open(self.path, max_bytes=self.MAX_BYTES, clock=self.clock)
        self.boots.append(self.box.boot_id)
        for h in self.held.values():
            h.sent_at = None

    @invariant()
    def accounted_for(self) -> None:
        held = set(self.held)
        assert held | self.acked | self.evicted == self.appended
        assert not held & self.acked
        assert not held & self.evicted
        assert not self.acked & self.evicted
        assert self.evicted_counted + self.box.evicted_total == len(self.evicted)
        on_disk = stored_keys(self.path)
        assert [(b, s) for b, s, _ in on_disk] == sorted(held)
        assert self.box.depth() == len(held)
        assert self.box.bytes_used() == sum(h.size for h in self.held.values())
        assert self.box.bytes_used() <= self.MAX_BYTES


TestOutboxMachine = OutboxMachine.TestCase
TestOutboxMachine.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
