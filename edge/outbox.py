"""The edge agent's durable outbox: every fix and event until the cloud commits it.

A record leaves the outbox only when a :class:`~protocols.messages.CommitAck`
range covers it (the cloud sends that after its database transaction
committed). A broker PUBACK means nothing here: the broker may lose anything,
and the end-to-end ack plus idempotent storage make resending harmless.

Storage is one SQLite file in WAL mode:

- ``records``: one row per fix or event, primary key ``(boot_id, seq)``, with
  its kind, GNSS time, the encoded message (msgspec JSON, exactly what goes on
  the wire), its accounted size, and ``sent_at``: ``NULL`` while pending, else
  the (monotonic) clock reading of the last send, i.e. in flight. The table is
  clustered on the primary key, and boot ids sort in boot order (see below), so
  the primary-key order *is* the send order: oldest boot first, then ``seq``.
- ``meta``: the schema version and the boot counter.

**Identity.** Each :meth:`Outbox.open` is a new boot: the persisted boot counter
is incremented and the boot id is ``<counter as 8 hex digits>-<16 random hex
digits>``, so boot ids sort in boot order and are still unique when the file is
lost or replaced (the counter restarts, the random part does not repeat).
``seq`` counts fixes and events together from 0 per boot; :meth:`Outbox.append`
stamps ``(boot_id, seq)`` into the message and inserts it in one transaction,
and the sequence only advances when that transaction committed.

**Durability: ``synchronous=FULL``.** With WAL, ``NORMAL`` only syncs the WAL
at checkpoints: a killed *process* loses nothing (the kernel still has the
writes), but a *power loss* can roll back the last transactions that had
already returned, and the very records written then (``power_lost``, the last
fixes before someone cut the supply) are the ones a lender needs most. ``FULL``
fsyncs the WAL at every commit, so an append that returned survives power
loss. It costs one fsync per append (about 2 ms on an ext4 disk); a tracker
appends a few records a second at most. Acks that are lost to a power cut only
cause a resend, which storage ignores.

**Size bound and eviction rule.** ``bytes_used`` counts each record's payload
plus :data:`RECORD_OVERHEAD` (the row and index cost), which tracks the file
size to within a few percent; the WAL (at most about 4 MiB before the
automatic checkpoint) comes on top. When an append would push ``bytes_used``
over ``max_bytes``, the oldest **fixes** are evicted first, in send order,
whether pending or in flight; **events** (rarer, and they are the alarms) are
evicted, oldest first, only when no fix is left. The record being appended is
never evicted, even if it alone exceeds the bound. Evictions are counted
(:attr:`Outbox.evicted_total`, :meth:`Outbox.pop_evicted`) so the agent can
raise an ``outbox_evicted`` event.

**Disk full.** When SQLite reports ``SQLITE_FULL`` the append is rolled back,
at least :data:`DISK_FULL_EVICT_BYTES` of the oldest records are evicted by the
same rule, the WAL is checkpointed and truncated to give its space back, and
the append is retried once. If that fails too, :class:`OutboxFullError` is
raised and nothing changed: the agent counts it and keeps running.

**Corruption.** On open, ``PRAGMA quick_check`` runs (``integrity_check``
without the index cross-checks, linear in the file size). A file SQLite
reports as corrupt, or that is not a database at all, is renamed to
``<name>.corrupt-<n>`` (with its ``-wal`` and ``-shm``) and a fresh outbox is
created; :attr:`Outbox.moved_aside` says where the old file went. Open never
fails because of a corrupt file.

**Threads.** The API is synchronous; each call is one small transaction
(a few milliseconds at most, dominated by the fsync) and is meant to be called
from the asyncio event loop thread only. The SQLite connection refuses use
from any other thread.
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

from protocols.messages import Event, Fix, SeqRange, decode, encode

Kind = Literal["fix", "event"]
KINDS: Final[tuple[Kind, ...]] = ("fix", "event")

SCHEMA_VERSION: Final = 1
# Accounted bytes per record on top of its payload: key, index entry, columns
# and b-tree cell overhead (measured: see tests/unit/test_outbox.py).
RECORD_OVERHEAD: Final = 128
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

_R = TypeVar("_R", Fix, Event)


class OutboxFullError(Exception):
    """The disk is full and evicting the oldest records did not make room."""

    reason = "outbox_full"


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One fix or event as the outbox holds it; ``payload`` is its wire JSON."""

    boot_id: str
    seq: int
    kind: Kind
    time: datetime  # GNSS time (UTC)
    payload: bytes
    size: int  # accounted bytes (payload + RECORD_OVERHEAD)

    def message(self) -> Fix | Event:
        """Decode the payload back into its message."""
        if self.kind == "fix":
            return decode(self.payload, Fix)
        return decode(self.payload, Event)


def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


class _CorruptError(Exception):
    pass


def _to_us(t: datetime) -> int:
    return (t - _EPOCH) // _MICROSECOND


def _from_us(us: int) -> datetime:
    return _EPOCH + us * _MICROSECOND


def _move_aside(path: Path) -> Path:
    n = 1
    while any(
        path.with_name(f"{path.name}.corrupt-{n}{sfx}").exists() for sfx in ("", "-wal", "-shm")
    ):
        n += 1
    target = path.with_name(f"{path.name}.corrupt-{n}")
    for sfx in ("", "-wal", "-shm"):
        src = path.with_name(path.name + sfx)
        if src.exists():
            src.rename(target.with_name(target.name + sfx))
    return target


def _connect(path: Path) -> sqlite3.Connection:
    """Open, configure and check one outbox file; raises _CorruptError."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            msg = f"cannot use WAL on {path} (journal_mode={mode})"
            raise sqlite3.OperationalError(msg)
        conn.execute("PRAGMA synchronous=FULL")
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if [r[0] for r in rows] != ["ok"]:
            raise _CorruptError("; ".join(str(r[0]) for r in rows[:5]))
        conn.executescript(_SCHEMA)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
        elif row[0] != SCHEMA_VERSION:
            raise _CorruptError(f"unknown outbox schema version {row[0]}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _is_corrupt(exc):
            raise _CorruptError(str(exc)) from exc
        raise
    except BaseException:
        conn.close()
        raise
    return conn


class Outbox:
    """The durable outbox; create with :meth:`open`. Event-loop thread only."""

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
        self._evicted_total = 0
        self._evicted_unreported = 0
        with self._transaction():
            row = conn.execute("SELECT value FROM meta WHERE key = 'boot_count'").fetchone()
            self.boot_no: int = (0 if row is None else int(row[0])) + 1
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('boot_count', ?)", (self.boot_no,)
            )
            # In-flight times come from the previous process's monotonic clock:
            # meaningless now, and nothing has been sent in this boot yet.
            conn.execute("UPDATE records SET sent_at = NULL WHERE sent_at IS NOT NULL")
        #: This run's boot id: sorts after every earlier boot of this file.
        self.boot_id: str = f"{self.boot_no:08x}-{os.urandom(8).hex()}"
        self._next_seq = 0
        self._depth = dict.fromkeys(KINDS, 0)
        self._bytes = 0
        for kind, count, size in conn.execute(
            "SELECT kind, count(*), coalesce(sum(size), 0) FROM records GROUP BY kind"
        ):
            self._depth[kind] = int(count)
            self._bytes += int(size)

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls, path: Path | str, *, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> Outbox:
        """Open (or create) the outbox at ``path`` and start a new boot.

        A corrupt file is moved aside (see :attr:`moved_aside`) and replaced by
        an empty outbox. Other errors (permissions, a missing directory) raise.
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
        """Checkpoint and close. Safe to call twice."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
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

    # --------------------------------------------------------------- append

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next append will get (fixes and events share it)."""
        return self._next_seq

    def append(self, record: _R) -> StoredRecord:
        """Store a fix or event under the next ``(boot_id, seq)`` of this boot.

        Whatever ``boot_id`` and ``seq`` the record carries are replaced. The
        stamped message is validated against the wire schema first (a record
        the cloud would reject would otherwise be resent forever): raises
        :class:`protocols.errors.SchemaError`. Raises :class:`OutboxFullError`
        when the disk is full even after evicting. Never evicts this record.
        """
        kind: Kind = "fix" if isinstance(record, Fix) else "event"
        stamped = msgspec.structs.replace(record, boot_id=self.boot_id, seq=self._next_seq)
        payload = encode(stamped)
        decode(payload, type(record))  # bounds are checked on decode only
        stored = StoredRecord(
            boot_id=self.boot_id,
            seq=self._next_seq,
            kind=kind,
            time=stamped.time,
            payload=payload,
            size=len(payload) + RECORD_OVERHEAD,
        )
        try:
            self._insert(stored)
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            self._make_room_on_full_disk()
            try:
                self._insert(stored)
            except sqlite3.OperationalError as again:
                if not _is_full(again):
                    raise
                raise OutboxFullError(f"outbox disk full at {self.path}: {again}") from again
        self._next_seq += 1
        return stored

    def _insert(self, rec: StoredRecord) -> None:
        need = self._bytes + rec.size - self.max_bytes
        with self._transaction():
            evicted = self._evict(need) if need > 0 else {}
            self._conn.execute(
                "INSERT INTO records (boot_id, seq, kind, time_us, payload, size)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (rec.boot_id, rec.seq, rec.kind, _to_us(rec.time), rec.payload, rec.size),
            )
        self._account_evictions(evicted)
        self._depth[rec.kind] += 1
        self._bytes += rec.size

    def _evict(self, need: int) -> dict[Kind, tuple[int, int]]:
        """Delete the oldest records (fixes first) until ``need`` bytes are freed.

        Runs inside the caller's transaction; returns per kind (count, bytes)
        so the caller can account for them once the transaction committed.
        """
        out: dict[Kind, tuple[int, int]] = {}
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

    def _account_evictions(self, evicted: dict[Kind, tuple[int, int]]) -> None:
        for kind, (count, size_sum) in evicted.items():
            self._depth[kind] -= count
            self._bytes -= size_sum
            self._evicted_total += count
            self._evicted_unreported += count

    def _checkpoint_truncate(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _make_room_on_full_disk(self) -> None:
        """Give the WAL's space back and evict the oldest records; best effort."""
        self._checkpoint_truncate()
        try:
            with self._transaction():
                evicted = self._evict(DISK_FULL_EVICT_BYTES)
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            return  # the retry will fail and raise OutboxFullError
        self._account_evictions(evicted)
        self._checkpoint_truncate()

    # ----------------------------------------------------------------- send

    def take_batch(self, kind: Kind, max_records: int, resend_after_s: float) -> list[StoredRecord]:
        """Records of ``kind`` due for sending, oldest first; marks them in flight.

        Due means never sent in this boot, or last sent at least
        ``resend_after_s`` ago (by the outbox's clock) without an ack since.
        Fixes and events are taken separately: events go out at once.
        """
        if kind not in KINDS:
            msg = f"unknown record kind {kind!r}"
            raise ValueError(msg)
        if max_records <= 0:
            return []
        now = self._clock()
        with self._transaction():
            rows = self._conn.execute(
                "SELECT boot_id, seq, time_us, payload, size FROM records"
                " WHERE kind = ? AND (sent_at IS NULL OR sent_at <= ?)"
                " ORDER BY boot_id, seq LIMIT ?",
                (kind, now - resend_after_s, max_records),
            ).fetchall()
            self._conn.executemany(
                "UPDATE records SET sent_at = ? WHERE boot_id = ? AND seq = ?",
                [(now, boot_id, seq) for boot_id, seq, *_ in rows],
            )
        return [
            StoredRecord(
                boot_id=boot_id,
                seq=seq,
                kind=kind,
                time=_from_us(time_us),
                payload=bytes(payload),
                size=size,
            )
            for boot_id, seq, time_us, payload, size in rows
        ]

    def ack(self, ranges: Iterable[SeqRange]) -> int:
        """Delete every record a range covers (any boot); return how many.

        Idempotent: records already acked or evicted, unknown boots and empty
        ranges (``first > last``) delete nothing.
        """
        deleted: dict[Kind, tuple[int, int]] = {}
        with self._transaction():
            for r in ranges:
                if r.first > r.last:
                    continue
                for kind, size in self._conn.execute(
                    "DELETE FROM records WHERE boot_id = ? AND seq BETWEEN ? AND ?"
                    " RETURNING kind, size",
                    (r.boot_id, r.first, r.last),
                ).fetchall():
                    count, total = deleted.get(kind, (0, 0))
                    deleted[kind] = (count + 1, total + size)
        n = 0
        for kind, (count, size_sum) in deleted.items():
            self._depth[kind] -= count
            self._bytes -= size_sum
            n += count
        return n

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

    def pop_evicted(self) -> int:
        """Evictions not yet reported, resetting the count (for ``outbox_evicted``)."""
        n, self._evicted_unreported = self._evicted_unreported, 0
        return n
