"""The edge agent's durable outbox: every fix and event until the cloud commits it.

A record leaves the outbox only when a :class:`~protocols.messages.CommitAck`
range covers it (sent by the cloud after its database transaction committed),
or when it is evicted, which is counted. A broker PUBACK means nothing here:
the broker may lose anything; the end-to-end ack and idempotent storage make
resending harmless.

Storage is one SQLite file in WAL mode:

- ``records``: one row per fix or event, primary key ``(boot_id, seq)``, with
  its kind, GNSS time, the encoded message (msgspec JSON, exactly what goes on
  the wire), its accounted size, and ``sent_at``: ``NULL`` while pending, else
  the clock reading of the last send (in flight). The table is clustered on the
  primary key and boot ids sort in boot order, so key order *is* send order.
- ``meta``: the schema version and the boot counter.

**Identity.** Each :meth:`Outbox.open` is a new boot: the persisted boot counter
goes up and the boot id is ``<counter, 8 hex digits>-<16 random hex digits>``,
so boot ids sort in boot order and stay unique if the file is lost or replaced
(the counter restarts, the random part does not repeat). ``seq`` counts fixes
and events together from 0 per boot; :meth:`Outbox.append` stamps
``(boot_id, seq)`` into the message and inserts it in one transaction, and the
sequence only advances once that transaction committed.

**Durability: ``synchronous=FULL``.** In WAL mode ``NORMAL`` syncs the WAL only
at checkpoints: a killed *process* loses nothing (the kernel still has the
writes), but a *power loss* can roll back the last transactions that had
already returned, and the records written just then (``power_lost``, the last
fixes before someone cut the supply) are the ones a lender needs most. ``FULL``
fsyncs the WAL at every commit, so an append that returned survives a power
loss. It costs one fsync per append (0.5-2 ms on an ext4 disk here); a tracker
appends a few records a second at most. A lost ack deletion only causes a
resend, which storage ignores.

**Size bound and eviction rule.** ``bytes_used`` counts each record's payload
plus :data:`RECORD_OVERHEAD` (row, key and index cost, measured), so it tracks
the database file size: within a few percent while records leave in order, up
to about 20 % over when acks leave half-empty pages behind. The WAL (about
256 KiB) and the disk-full reserve (below) come on top. When an append
would take ``bytes_used`` over ``max_bytes``, the oldest **fixes** are evicted
first, in send order, pending or in flight alike; **events** (rarer, and they
are the alarms) are evicted, oldest first, only when no fix is left. The record
being appended is never evicted, even if it alone exceeds the bound. Evictions
are counted (:attr:`Outbox.evicted_total`, :meth:`Outbox.pop_evicted`) so the
agent can raise an ``outbox_evicted`` event.

**Disk full.** A WAL database needs free disk space for any write, deletes
included, and a checkpoint may need to grow the database file: on a full disk
nothing could even be evicted. So the outbox keeps ``<name>.reserve``, a file
of :data:`RESERVE_BYTES` allocated at open. On ``SQLITE_FULL`` (in an append,
an ack or marking a batch in flight) the transaction is rolled back, the
reserve is deleted, the WAL is checkpointed (its file is kept and reused,
never truncated), and the operation is retried once; an append first evicts
at least :data:`DISK_FULL_EVICT_BYTES` of the oldest records by the rule above.
From then on the bytes held are the bound, so appends evict oldest first and
reuse the freed pages instead of growing the file: the agent keeps appending
on a full disk. Once the disk has room for the reserve twice over (checked
with ``statvfs`` before each append), the reserve is allocated again and the
bound is ``max_bytes`` again. If the retry fails too, :class:`OutboxFullError`
is raised: the record was not stored (evictions made while trying are
counted); the agent counts the error and carries on.

**Corruption.** On open, ``PRAGMA quick_check`` runs (``integrity_check``
without the index cross-checks, linear in the file size: ~30 ms for 10 MB). A
file SQLite reports as corrupt, or that is not a database at all, is renamed
to ``<name>.corrupt-<n>`` (with its ``-wal`` and ``-shm``) and a fresh outbox is
created; :attr:`Outbox.moved_aside` says where the old file went. Open never
fails because of a corrupt file.

**Threads.** The API is synchronous; each call is one small transaction (a few
milliseconds at most, dominated by the fsync) and is meant to be called from
the asyncio event loop thread only. The SQLite connection refuses use from any
other thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self, TypeVar

import msgspec

from protocols.errors import SchemaError
from protocols.messages import Event, Fix, SeqRange, decode, encode

Kind = Literal["fix", "event"]
KINDS: Final[tuple[Kind, ...]] = ("fix", "event")  # also the eviction order

SCHEMA_VERSION: Final = 1
# Accounted bytes per record on top of its payload: key, index entry, columns
# and b-tree cell overhead (measured 125-140 bytes with appends in key order).
RECORD_OVERHEAD: Final = 128
# Checkpoint every 64 WAL pages (256 KiB): bounds the WAL and how much a
# checkpoint can grow the database file, which the reserve must cover.
WAL_AUTOCHECKPOINT_PAGES: Final = 64
RESERVE_BYTES: Final = 512 * 1024
# Evicted on SQLITE_FULL before the single retry: enough to free whole pages.
DISK_FULL_EVICT_BYTES: Final = 64 * 1024

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_EVICT_CHUNK: Final = 256

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    boot_id TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL CHECK (kind IN ('fix', 'event')),
    time_us INTEGER NOT NULL,       -- GNSS time, microseconds since 1970 UTC
    payload BLOB NOT NULL,          -- msgspec JSON of the Fix / Event
    size    INTEGER NOT NULL,       -- accounted bytes: payload + RECORD_OVERHEAD
    sent_at REAL,                   -- NULL: pending; else in flight since (clock)
    PRIMARY KEY (boot_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_by_kind ON records (kind);
"""

_T = TypeVar("_T")
_Removed = dict[Kind, tuple[int, int]]  # per kind: (records, accounted bytes)


class OutboxFullError(Exception):
    """The disk is full and making room did not help: the write did not happen."""

    reason = "outbox_full"


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One fix or event as the outbox holds it."""

    message: Fix | Event  # with its (boot_id, seq) stamped
    payload: bytes  # its wire JSON, as stored
    size: int  # accounted bytes (payload + RECORD_OVERHEAD)

    @property
    def kind(self) -> Kind:
        return "fix" if isinstance(self.message, Fix) else "event"

    @property
    def boot_id(self) -> str:
        return self.message.boot_id

    @property
    def seq(self) -> int:
        return self.message.seq

    @property
    def time(self) -> datetime:
        """GNSS time (UTC)."""
        return self.message.time


class _CorruptError(Exception):
    pass


def _decode_stored(payload: bytes, kind: Kind) -> Fix | Event | None:
    try:
        return decode(payload, Fix) if kind == "fix" else decode(payload, Event)
    except SchemaError:
        return None


def _code(exc: sqlite3.Error) -> int:
    """The primary result code (extended codes carry it in the low byte)."""
    return int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _is_full(exc: sqlite3.Error) -> bool:
    return _code(exc) == sqlite3.SQLITE_FULL


def _to_us(t: datetime) -> int:
    return (t - _EPOCH) // _MICROSECOND


def _from_us(us: int) -> datetime:
    return _EPOCH + us * _MICROSECOND


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _move_aside(path: Path) -> Path:
    n = 1
    while any(_sibling(path, f".corrupt-{n}{s}").exists() for s in ("", "-wal", "-shm")):
        n += 1
    target = _sibling(path, f".corrupt-{n}")
    for s in ("", "-wal", "-shm"):
        if _sibling(path, s).exists():
            _sibling(path, s).rename(_sibling(target, s))
    return target


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        msg = f"cannot use WAL for {path} (journal_mode={mode})"
        raise sqlite3.OperationalError(msg)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
    if rows != ["ok"]:
        raise _CorruptError("; ".join(rows[:5]))
    conn.executescript(_SCHEMA)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
    elif row[0] != SCHEMA_VERSION:
        raise _CorruptError(f"unknown outbox schema version {row[0]}")


def _connect(path: Path) -> sqlite3.Connection:
    """Open, configure and check one outbox file; raises _CorruptError."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        _configure(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _code(exc) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise _CorruptError(str(exc)) from exc
        # No room for the WAL, or for the shared-memory index next to it.
        if _is_full(exc) or getattr(exc, "sqlite_errorcode", 0) == sqlite3.SQLITE_IOERR_SHMSIZE:
            raise OutboxFullError(f"disk full under {path}: {exc}") from exc
        raise
    except BaseException:
        conn.close()
        raise
    return conn


class Outbox:
    """The durable outbox; create it with :meth:`open`. Event-loop thread only."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        path: Path,
        max_bytes: int,
        clock: Callable[[], float],
        moved_aside: Path | None,
    ) -> None:
        self._conn = conn
        self.path = path
        self.max_bytes = max_bytes
        self._clock = clock
        #: Where a corrupt file found at open was moved, else None.
        self.moved_aside = moved_aside
        self._reserve = _sibling(path, ".reserve")
        self._reserve_ok = False
        self._disk_cap: int | None = None  # bound learned from a full disk
        self._evicted_total = 0
        self._evicted_unreported = 0
        self._corrupt_dropped_total = 0
        self._next_seq = 0
        self._depth = dict.fromkeys(KINDS, 0)
        self._bytes = 0
        for kind, count, size in conn.execute(
            "SELECT kind, count(*), coalesce(sum(size), 0) FROM records GROUP BY kind"
        ):
            self._depth[kind] = int(count)
            self._bytes += int(size)
        self._ensure_reserve()
        self.boot_no: int = self._write(self._start_boot, evict=False)
        #: This run's boot id: sorts after the boot id of every earlier run.
        self.boot_id: str = f"{self.boot_no:08x}-{os.urandom(8).hex()}"

    def _start_boot(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'boot_count'").fetchone()
        boot_no = (0 if row is None else int(row[0])) + 1
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('boot_count', ?)", (boot_no,))
        # In-flight times come from the previous run's monotonic clock: they
        # mean nothing now, and nothing has been sent in this boot yet.
        self._conn.execute("UPDATE records SET sent_at = NULL WHERE sent_at IS NOT NULL")
        return boot_no

    @classmethod
    def open(
        cls, path: Path | str, *, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> Outbox:
        """Open (or create) the outbox at ``path`` and start a new boot.

        A corrupt file is moved aside (see :attr:`moved_aside`) and replaced by
        an empty outbox. Raises :class:`OutboxFullError` if the disk is too full
        to set up the file or record the boot; other errors (permissions, a
        missing directory) raise as they are.
        """
        if max_bytes <= 0:
            msg = "max_bytes must be positive"
            raise ValueError(msg)
        path = Path(path)
        moved: Path | None = None
        try:
            conn = _connect(path)
        except _CorruptError:
            moved = _move_aside(path)
            conn = _connect(path)
        try:
            return cls(conn, path=path, max_bytes=max_bytes, clock=clock, moved_aside=moved)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        """Close the database (SQLite checkpoints the WAL). Safe to call twice."""
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---------------------------------------------------------- transactions

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.rollback()
            raise

    def _write(self, op: Callable[[], _T], *, evict: bool) -> _T:
        """Run ``op`` in one transaction; on a full disk make room and retry once."""
        try:
            with self._transaction():
                return op()
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
        self._make_room(evict=evict)
        try:
            with self._transaction():
                return op()
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            raise OutboxFullError(f"disk full under {self.path}: {exc}") from exc

    def _make_room(self, *, evict: bool) -> None:
        """Disk full: release the reserve, checkpoint and (for appends) evict."""
        with contextlib.suppress(FileNotFoundError):
            self._reserve.unlink()
        self._reserve_ok = False
        self._checkpoint()
        if evict:
            try:
                with self._transaction():
                    evicted = self._evict(DISK_FULL_EVICT_BYTES)
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
            else:
                self._account(evicted, evicted=True)
                self._checkpoint()
        # What fits on this disk: stay under it, so that later appends reuse
        # freed pages instead of growing the file into the space just released.
        self._disk_cap = self._bytes

    def _checkpoint(self) -> None:
        # PASSIVE, not TRUNCATE: the WAL file's space is kept and reused.
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _try_reserve(self) -> None:
        """Re-create the reserve once the disk has room for it twice over."""
        try:
            st = os.statvfs(self._reserve.parent)
        except OSError:
            return
        if st.f_bavail * st.f_frsize >= 2 * RESERVE_BYTES:
            self._ensure_reserve()

    def _ensure_reserve(self) -> None:
        """(Re)allocate the reserve; once it fits again, lift the disk-full cap."""
        try:
            fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError:
            # A partial reserve would eat the slack the database now lives on.
            with contextlib.suppress(OSError):
                self._reserve.unlink()
            self._reserve_ok = False
        else:
            self._reserve_ok = True
            self._disk_cap = None

    def _account(self, removed: _Removed, *, evicted: bool) -> int:
        n = 0
        for kind, (count, size_sum) in removed.items():
            self._depth[kind] -= count
            self._bytes -= size_sum
            n += count
        if evicted:
            self._evicted_total += n
            self._evicted_unreported += n
        return n

    # --------------------------------------------------------------- append

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next append will get (fixes and events share it)."""
        return self._next_seq

    def append(self, record: Fix | Event) -> StoredRecord:
        """Store a fix or event under the next ``(boot_id, seq)`` of this boot.

        Whatever ``boot_id`` and ``seq`` the record carries are replaced. The
        stamped message is validated against the wire schema first (a record
        the cloud rejects would be resent forever): raises
        :class:`protocols.errors.SchemaError`. Raises :class:`OutboxFullError`
        when the disk is full even after evicting. Never evicts this record.
        """
        if not self._reserve_ok:
            self._try_reserve()
        stamped = msgspec.structs.replace(record, boot_id=self.boot_id, seq=self._next_seq)
        payload = encode(stamped)
        decode(payload, Fix if isinstance(record, Fix) else Event)  # bounds: on decode only
        rec = StoredRecord(message=stamped, payload=payload, size=len(payload) + RECORD_OVERHEAD)
        kind = rec.kind

        def insert() -> _Removed:
            cap = self._disk_cap
            bound = self.max_bytes if cap is None else min(self.max_bytes, cap)
            need = self._bytes + rec.size - bound
            evicted = self._evict(need) if need > 0 else {}
            self._conn.execute(
                "INSERT INTO records (boot_id, seq, kind, time_us, payload, size)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (rec.boot_id, rec.seq, kind, _to_us(rec.time), payload, rec.size),
            )
            return evicted

        self._account(self._write(insert, evict=True), evicted=True)
        self._depth[kind] += 1
        self._bytes += rec.size
        self._next_seq += 1
        return rec

    def _evict(self, need: int) -> _Removed:
        """Delete the oldest records, fixes first, until ``need`` bytes are freed.

        Runs inside the caller's transaction; the caller accounts for the
        result once that transaction committed.
        """
        out: _Removed = {}
        freed = 0
        for kind in KINDS:
            count = size_sum = 0
            while freed < need:
                rows = self._conn.execute(
                    "SELECT boot_id, seq, size FROM records WHERE kind = ?"
                    " ORDER BY boot_id, seq LIMIT ?",
                    (kind, _EVICT_CHUNK),
                ).fetchall()
                if not rows:
                    break
                keys: list[tuple[str, int]] = []
                for boot_id, seq, size in rows:
                    keys.append((boot_id, seq))
                    count += 1
                    size_sum += size
                    freed += size
                    if freed >= need:
                        break
                self._conn.executemany("DELETE FROM records WHERE boot_id = ? AND seq = ?", keys)
            if count:
                out[kind] = (count, size_sum)
        return out

    # ----------------------------------------------------------------- send

    def take_batch(self, kind: Kind, max_records: int, resend_after_s: float) -> list[StoredRecord]:
        """Records of ``kind`` due for sending, oldest first; marks them in flight.

        Due: never sent in this boot, or last sent at least ``resend_after_s``
        ago (by the outbox's clock) and not acked since. Fixes and events are
        taken separately (events go out at once). A stored payload that no
        longer decodes to its own record (bit rot that ``quick_check`` cannot
        see) is deleted and counted in :attr:`corrupt_dropped_total` instead
        of being resent forever. On a disk too full even to mark them, the
        records are returned unmarked: they may be taken again before
        ``resend_after_s``, and a duplicate is harmless.
        """
        if kind not in KINDS:
            msg = f"unknown record kind {kind!r}"
            raise ValueError(msg)
        if max_records <= 0:
            return []
        now = self._clock()
        rows = self._conn.execute(
            "SELECT boot_id, seq, payload, size FROM records"
            " WHERE kind = ? AND (sent_at IS NULL OR sent_at <= ?)"
            " ORDER BY boot_id, seq LIMIT ?",
            (kind, now - resend_after_s, max_records),
        ).fetchall()
        good: list[StoredRecord] = []
        bad: list[tuple[str, int]] = []
        bad_bytes = 0
        for boot_id, seq, blob, size in rows:
            payload = bytes(blob)
            message = _decode_stored(payload, kind)
            if message is None or (message.boot_id, message.seq) != (boot_id, seq):
                bad.append((boot_id, seq))
                bad_bytes += size
            else:
                good.append(StoredRecord(message=message, payload=payload, size=size))

        def mark() -> None:
            self._conn.executemany(
                "UPDATE records SET sent_at = ? WHERE boot_id = ? AND seq = ?",
                [(now, r.boot_id, r.seq) for r in good],
            )
            self._conn.executemany("DELETE FROM records WHERE boot_id = ? AND seq = ?", bad)

        if rows:
            try:
                self._write(mark, evict=False)
            except OutboxFullError:
                pass  # unmarked (see above); corrupt ones are found again next time
            else:
                self._account({kind: (len(bad), bad_bytes)}, evicted=False)
                self._corrupt_dropped_total += len(bad)
        return good

    def ack(self, ranges: Iterable[SeqRange]) -> int:
        """Delete every record the ranges cover (any boot); return how many.

        Idempotent: records already acked or evicted, unknown boots and empty
        ranges (``first > last``) delete nothing. Raises
        :class:`OutboxFullError` if the disk is too full even to delete (the
        records stay and are sent again).
        """
        wanted = [(r.boot_id, r.first, r.last) for r in ranges if r.first <= r.last]

        def delete() -> _Removed:
            out: _Removed = {}
            for key in wanted:
                for kind, size in self._conn.execute(
                    "DELETE FROM records WHERE boot_id = ? AND seq BETWEEN ? AND ?"
                    " RETURNING kind, size",
                    key,
                ).fetchall():
                    count, total = out.get(kind, (0, 0))
                    out[kind] = (count + 1, total + size)
            return out

        if not wanted:
            return 0
        return self._account(self._write(delete, evict=False), evicted=False)

    # ---------------------------------------------------------------- state

    def depth(self, kind: Kind | None = None) -> int:
        """Records held (of one kind, or all)."""
        if kind is None:
            return sum(self._depth.values())
        return self._depth[kind]

    def bytes_used(self) -> int:
        """Accounted bytes held: payloads plus RECORD_OVERHEAD each."""
        return self._bytes

    def oldest_time(self) -> datetime | None:
        """GNSS time of the oldest record held (first in send order), or None."""
        row = self._conn.execute(
            "SELECT time_us FROM records ORDER BY boot_id, seq LIMIT 1"
        ).fetchone()
        return None if row is None else _from_us(row[0])

    @property
    def evicted_total(self) -> int:
        """Records evicted (size bound or full disk) since this boot's open."""
        return self._evicted_total

    @property
    def corrupt_dropped_total(self) -> int:
        """Records dropped since open because their stored payload was damaged."""
        return self._corrupt_dropped_total

    def pop_evicted(self) -> int:
        """Evictions not yet reported, resetting the count (for ``outbox_evicted``)."""
        n, self._evicted_unreported = self._evicted_unreported, 0
        return n
