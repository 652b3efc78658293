"""The outbox against process death, a torn last write and a full disk.

(a) **kill -9.** A child process appends in a tight loop and prints each seq
after ``append`` returned; the parent SIGKILLs it at a random moment (mostly
inside the commit's fsync, where an append spends its time) and reopens the
file: every reported seq is there, nothing else is, and the file passes
``PRAGMA integrity_check``. Five kills in a row on one file, so older boots
must survive later crashes too.

(b) **Power loss, simulated as a torn WAL write.** After a SIGKILL the test
reads the WAL (header, salts, cumulative checksums, as the SQLite file format
defines them), finds the last committed frame and cuts the file inside it, as
if the disk had written only part of the last write when the power went. On
reopen SQLite must notice the bad checksum, and the outbox must open with its
integrity intact, every record committed before the torn transaction present,
and at most that one transaction lost.

What this does *not* simulate: a real power loss also drops whatever sat in
the page cache unsynced. After SIGKILL the kernel still writes everything, so
this test cannot show that ``synchronous=FULL`` fsyncs the WAL at each commit
(that is SQLite's documented behaviour, and the reason for the setting); nor
does it reproduce a disk that reorders or lies about flushes, or tearing in
the database file during a checkpoint. Copying the database and WAL while the
writer runs was rejected as the simulation: the two copies are taken at
different moments (a checkpoint can fall between them), a state no crash
produces, so a failure would not mean anything.

(c) **Disk full.** The test mounts a 2 MB tmpfs (it needs root, as CI has),
fills it, and shows the outbox keeps appending by evicting its oldest fixes,
keeps its events, picks up again when space returns, and raises the typed
:class:`OutboxFullError` (never anything else, never corrupting the file) when
even eviction cannot make room.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.outbox import RESERVE_BYTES, Outbox, OutboxFullError
from protocols.messages import Event, EventKind, Fix

DEVICE = "860000000000001"
T0 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)

WRITER = r"""
import sys
from datetime import UTC, datetime, timedelta

from edge.outbox import Outbox
from protocols.messages import Event, EventKind, Fix

box = Outbox.open(sys.argv[1], max_bytes=1 << 30)
print(box.boot_id, flush=True)
t0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
n = 0
while True:
    t = t0 + timedelta(seconds=n)
    if n % 10 == 9:
        rec = Event(device_id="d1", boot_id="-", seq=0, time=t, kind=EventKind.HEARTBEAT)
    else:
        rec = Fix(device_id="d1", boot_id="-", seq=0, time=t, lat=31.2, lon=121.4, speed_mps=9.5)
    print(box.append(rec).seq, flush=True)
    n += 1
"""


def run_and_kill(db: Path, after: int, rng: random.Random) -> tuple[str, list[int]]:
    """Start the writer, SIGKILL it after ``after`` reported appends (+ jitter).

    Returns its boot id and every seq it reported, including lines still in
    the pipe when it died: each was printed after its append returned.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        boot_id = proc.stdout.readline().strip()
        seqs: list[int] = []
        while len(seqs) < after:
            line = proc.stdout.readline()
            assert line, f"writer died: {proc.stderr.read()}"
            seqs.append(int(line))
        time.sleep(rng.uniform(0, 0.004))
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    seqs += [int(line) for line in rest.split("\n")[:-1]]  # complete lines only
    return boot_id, seqs


def integrity(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()


def held(db: Path) -> list[tuple[str, int, str]]:
    """(boot_id, seq, kind) of every record in the file, in send order."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT boot_id, seq, kind FROM records ORDER BY boot_id, seq")
        return [(str(b), int(s), str(k)) for b, s, k in rows]
    finally:
        conn.close()


def seqs_of(db: Path, boot_id: str) -> list[int]:
    return [s for b, s, _ in held(db) if b == boot_id]


@pytest.fixture
def rng() -> random.Random:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"random seed {seed}")  # shown by pytest when the test fails
    return random.Random(seed)


# ------------------------------------------------------------- (a) kill -9


def test_kill_9_loses_nothing_that_append_returned(tmp_path: Path, rng: random.Random) -> None:
    db = tmp_path / "outbox.sqlite3"
    reported: dict[str, list[int]] = {}
    for _ in range(5):
        boot_id, seqs = run_and_kill(db, rng.randint(5, 150), rng)
        reported[boot_id] = seqs
        assert integrity(db) == ["ok"]
        with Outbox.open(db, max_bytes=1 << 30) as box:
            assert box.moved_aside is None
            assert box.depth() == len(held(db))
        for boot, sent in reported.items():
            present = seqs_of(db, boot)
            assert set(sent) <= set(present), f"boot {boot} lost {set(sent) - set(present)}"
            # Appends commit in order; at most one committed but not yet printed.
            assert present == list(range(len(present)))
            assert len(present) - len(sent) in (0, 1)


# ----------------------------------------------- (b) power loss: torn WAL


WAL_HEADER = 32
FRAME_HEADER = 24


@dataclass(frozen=True)
class Frame:
    offset: int
    commit: bool  # the last frame of a transaction


def _checksum(data: bytes, s0: int, s1: int, *, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum: pairs of 32-bit words, carried frame to frame."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def valid_frames(wal: Path) -> tuple[list[Frame], int]:
    """The WAL frames SQLite would replay (salts and checksum chain valid)."""
    data = wal.read_bytes()
    if len(data) < WAL_HEADER:
        return [], 0
    magic, _version, page_size, _ckpt, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
    assert magic in (0x377F0682, 0x377F0683)
    big = bool(magic & 1)
    sums = _checksum(data[:24], 0, 0, big_endian=big)
    assert sums == (c1, c2), "WAL header checksum"
    frames: list[Frame] = []
    off = WAL_HEADER
    while off + FRAME_HEADER + page_size <= len(data):
        _pgno, commit_size, s1, s2, f1, f2 = struct.unpack(">6I", data[off : off + 24])
        if (s1, s2) != (salt1, salt2):
            break
        sums = _checksum(data[off : off + 8], *sums, big_endian=big)
        sums = _checksum(data[off + 24 : off + 24 + page_size], *sums, big_endian=big)
        if sums != (f1, f2):
            break
        frames.append(Frame(off, commit_size != 0))
        off += FRAME_HEADER + page_size
    return frames, page_size


def snapshot_seqs(db: Path, boot_id: str, where: Path) -> list[int]:
    """What the file holds now, read from a copy so the original stays untouched."""
    where.mkdir()
    for suffix in ("", "-wal"):
        src = db.with_name(db.name + suffix)
        if src.exists():
            shutil.copy(src, where / (db.name + suffix))
    return seqs_of(where / db.name, boot_id)


def test_torn_last_wal_write_loses_at_most_that_transaction(
    tmp_path: Path, rng: random.Random
) -> None:
    torn_lost = 0
    for run in range(5):
        db = tmp_path / f"run{run}" / "outbox.sqlite3"
        db.parent.mkdir()
        boot_id, reported = run_and_kill(db, rng.randint(20, 150), rng)
        wal = db.with_name(db.name + "-wal")
        frames, page_size = valid_frames(wal)
        commits = [f for f in frames if f.commit]
        before = snapshot_seqs(db, boot_id, tmp_path / f"snap{run}")
        assert set(reported) <= set(before)
        if not commits:
            # Killed just after a checkpoint restarted the WAL (new header,
            # no frame yet): everything is in the database file already.
            assert seqs_of(db, boot_id) == before
            continue
        # Tear the last committed frame: the disk kept only its first ``keep``
        # bytes (part of the header, part of the page, or all but the last
        # byte); the rest is either missing (short file) or never written (zeros).
        last = commits[-1]
        frame = FRAME_HEADER + page_size
        keep = rng.choice(
            [rng.randint(1, FRAME_HEADER), rng.randint(FRAME_HEADER + 1, frame - 2), frame - 1]
        )
        if rng.random() < 0.5:
            os.truncate(wal, last.offset + keep)
        else:
            with wal.open("r+b") as f:
                f.seek(last.offset + keep)
                f.write(bytes(frame - keep))
        assert integrity(db) == ["ok"]
        with Outbox.open(db, max_bytes=1 << 30) as box:
            assert box.moved_aside is None
        after = seqs_of(db, boot_id)
        assert after == list(range(len(after)))
        lost = set(before) - set(after)
        assert lost <= {before[-1]}, f"lost more than the torn transaction: {sorted(lost)}"
        assert set(reported) - set(after) <= {before[-1]}
        torn_lost += len(lost)
    # Unless the last commit happened to be checkpointed already, the tear bites.
    assert torn_lost >= 1


# --------------------------------------------------------- (c) disk full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, mounted for the test and unmounted afterwards."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        pytest.fail(f"the disk-full test needs mount(8) to make a 2 MB tmpfs: {exc}")
    if done.returncode != 0:
        pytest.fail(
            "the disk-full test mounts a 2 MB tmpfs and must run as root "
            f"(euid {os.geteuid()}); mount said: {done.stderr.strip()}"
        )
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def fill(disk: Path, name: str, *, leave: int = 0) -> int:
    """Write a file until the disk has at most ``leave`` bytes free; return its size."""
    stat = os.statvfs(disk)
    left = stat.f_bavail * stat.f_frsize - leave
    written = 0
    fd = os.open(disk / name, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while left > 0:
            n = os.write(fd, b"\0" * min(left, 64 * 1024))
            left -= n
            written += n
    except OSError:
        pass  # ENOSPC: full
    finally:
        os.close(fd)
    return written


def free_bytes(disk: Path) -> int:
    stat = os.statvfs(disk)
    return stat.f_bavail * stat.f_frsize


def a_fix(n: int) -> Fix:
    return Fix(
        device_id=DEVICE,
        boot_id="-",
        seq=0,
        time=T0 + timedelta(seconds=n),
        lat=31.2304 + (n % 1000) * 1e-5,
        lon=121.4737,
        speed_mps=13.9,
        hdop=0.9,
        sats=12,
    )


def an_event(n: int) -> Event:
    return Event(
        device_id=DEVICE, boot_id="-", seq=0, time=T0 + timedelta(seconds=n), kind=EventKind.TAMPER
    )


def test_full_disk_evicts_oldest_fixes_and_keeps_appending(small_disk: Path) -> None:
    db = small_disk / "outbox.sqlite3"
    with Outbox.open(db, max_bytes=64 * 1024 * 1024) as box:
        assert (small_disk / "outbox.sqlite3.reserve").stat().st_size == RESERVE_BYTES
        events = [box.append(an_event(n)) for n in range(0, 1000, 100)]
        for n in range(1000):
            if n % 100:
                box.append(a_fix(n))
        depth_at_fill = box.depth()
        assert fill(small_disk, "filler") > 0
        assert free_bytes(small_disk) == 0
        for n in range(1000, 4000):
            box.append(a_fix(n))  # never raises: oldest fixes make room
        assert box.evicted_total > 0
        assert box.evicted_total == box.pop_evicted()
        assert box.depth() + box.evicted_total == 10 + 990 + 3000
        assert box.depth() > depth_at_fill * 0.7  # evicts what it must, not more
        boot = box.boot_id
        last = box.next_seq - 1
    assert integrity(db) == ["ok"]
    rows = held(db)
    fixes = [s for b, s, k in rows if k == "fix" and b == boot]
    assert fixes[-1] == last
    # Oldest first: what is left of the fixes is an unbroken run of the newest.
    assert fixes == list(range(fixes[0], last + 1))
    assert {(e.boot_id, e.seq) for e in events} <= {(b, s) for b, s, _ in rows}

    # A restart on the still-full disk works, and so do appends.
    with Outbox.open(db, max_bytes=64 * 1024 * 1024) as box:
        assert box.depth() == len(rows)
        for n in range(4000, 7000):
            box.append(a_fix(n))
        assert box.evicted_total > 0
        assert box.depth() > len(rows) * 0.7
        # Space comes back: the reserve returns at the next append, and
        # eviction stops.
        (small_disk / "filler").unlink()
        evicted = box.evicted_total
        for n in range(7000, 7300):
            box.append(a_fix(n))
        assert (small_disk / "outbox.sqlite3.reserve").stat().st_size == RESERVE_BYTES
        assert box.evicted_total == evicted
    assert integrity(db) == ["ok"]
    # Still fixes first, across boots: the first boot's events outlived its fixes.
    rows = held(db)
    assert {(e.boot_id, e.seq) for e in events} <= {(b, s) for b, s, _ in rows}
    assert [k for b, _, k in rows if b == boot] == ["event"] * len(events)


def test_no_room_at_all_raises_outbox_full_and_recovers(small_disk: Path) -> None:
    # Nothing fits, not even the file: open says so with the typed error.
    fill(small_disk, "filler", leave=8 * 1024)
    with pytest.raises(OutboxFullError):
        Outbox.open(small_disk / "nope.sqlite3", max_bytes=64 * 1024 * 1024)
    for leftover in small_disk.glob("nope.sqlite3*"):
        leftover.unlink()
    (small_disk / "filler").unlink()

    # Too little room for a reserve, the WAL and eviction to work with.
    fill(small_disk, "filler", leave=200 * 1024)
    db = small_disk / "outbox.sqlite3"
    with Outbox.open(db, max_bytes=64 * 1024 * 1024) as box:
        assert not (small_disk / "outbox.sqlite3.reserve").exists()
        stored: list[int] = []
        failures = 0
        for n in range(300):
            seq = box.next_seq
            try:
                stored.append(box.append(a_fix(n)).seq)
            except OutboxFullError:
                failures += 1
                assert box.next_seq == seq  # a failed append uses no seq
        assert stored
        assert failures > 0
        assert stored == list(range(len(stored)))
        assert box.depth() + box.evicted_total == len(stored)
        # The agent carries on; once space is back, appends work again and
        # nothing more is evicted.
        (small_disk / "filler").unlink()
        evicted = box.evicted_total
        after = [box.append(a_fix(n)).seq for n in range(300, 350)]
        assert after == list(range(len(stored), len(stored) + 50))
        assert box.evicted_total == evicted
        boot = box.boot_id
    assert integrity(db) == ["ok"]
    present = seqs_of(db, boot)
    assert len(present) + evicted == len(stored) + 50
    assert present[-50:] == after
