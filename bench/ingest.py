"""Ingest benchmark: end-to-end fixes/s against the raw broker and COPY limits, on this machine.

Run as ``python -m bench.ingest`` (``make bench-ingest``). One run starts its own
private Mosquitto and PostgreSQL+TimescaleDB (``cloud.localsvc``), measures, prints a
table on stdout, writes it to ``docs/bench-ingest.md`` and ends with one ``key=value``
line. Progress goes to stderr. Everything it starts is stopped and every temporary
directory removed, also on Ctrl-C, SIGTERM or failure. It never asserts timings.

Measured, in this order:

1. **trials**: short windows (default ~9 s each) of the real pipeline for a few
   (workers x fixes-per-message) configurations; the fastest is kept;
2. **ingest**: the kept configuration, sized for ``--seconds`` of load: separate
   processes for the load generator (``vgr sim load``) and each worker
   (``vgr cloud ingest``); fixes/s = rows committed / wall time of the load run;
   p50/p99 latency publish -> CommitAck (as the load generator reports it);
   lost and duplicated rows against what was sent;
3. **broker limit**: ``mosquitto_pub -l`` -> broker -> ``mosquitto_sub -C`` at QoS 1
   with real FixBatch payloads of the kept batch size;
4. **COPY limit**: plain binary ``COPY fixes … FROM STDIN`` (psycopg 3, one connection)
   into a fresh migrated database;
5. **client choice**: receive rate of paho-mqtt 2 (threaded loop) and aiomqtt on the
   same QoS 1 stream.

Also used internally: ``python -m bench.ingest --client {paho,aiomqtt} …`` is the
receiver process of step 5.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version as dist_version
from itertools import pairwise
from pathlib import Path
from types import FrameType
from typing import IO, Any

import psycopg

from cloud.config import IngestSettings
from cloud.localsvc import PrivateMosquitto, PrivatePostgres
from cloud.storage.migrate import migrate
from protocols.messages import SCHEMA_VERSION, Fix, FixBatch, encode

REPO = Path(__file__).resolve().parent.parent
DOCS_OUT = REPO / "docs" / "bench-ingest.md"
TENANT = "bench-finance"
DEVICE_PREFIX = "86000000"
DEVICE_WIDTH = 7
TARGET_FIXES_PER_S = 30_000
TARGET_SHARE = 0.5

_STARTED = time.monotonic()


def say(msg: str) -> None:
    """Progress on stderr, with seconds since start."""
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


class Children:
    """Every child process this run starts; :meth:`close` ends those still running."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self,
        argv: Sequence[str],
        *,
        stdin: int | IO[bytes] | None = subprocess.DEVNULL,
        stdout: int | IO[bytes] | None = subprocess.DEVNULL,
        stderr: int | IO[bytes] | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        # Own session: a terminal's Ctrl-C reaches only us; we stop children in order.
        proc = subprocess.Popen(
            list(argv), stdin=stdin, stdout=stdout, stderr=stderr, env=env, start_new_session=True
        )
        self._procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
        """SIGTERM, wait, SIGKILL after ``timeout``; returns the exit code."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)  # in case it was frozen
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def finish(self, proc: subprocess.Popen[bytes], timeout: float) -> int:
        """Wait up to ``timeout`` for ``proc`` to exit by itself, then :meth:`stop` it."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        return self.stop(proc)

    def close(self) -> None:
        for proc in reversed(self._procs):
            self.stop(proc, timeout=5.0)
        self._procs.clear()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    """First stop signal: unwind (every ``finally`` tears down); later ones are ignored."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


# --------------------------------------------------------------------------- machine


@dataclass(frozen=True, slots=True)
class Machine:
    background_cores: float  # machine CPU busy before we started anything
    cores: int
    cpu: str
    python: str
    mosquitto: str
    postgres: str
    timescaledb: str
    libs: str


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _mosquitto_version() -> str:
    for binary in ("mosquitto", "/usr/sbin/mosquitto"):
        with contextlib.suppress(OSError):
            out = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
            m = re.search(r"mosquitto version (\S+)", out.stdout + out.stderr)
            if m:
                return m.group(1)
    return "unknown"


def background_cores(seconds: float = 1.0) -> float:
    """Cores busy on this machine over ``seconds``, before the benchmark starts anything."""
    b0, _ = _machine_busy_idle_s()
    time.sleep(seconds)
    b1, _ = _machine_busy_idle_s()
    return (b1 - b0) / seconds


def machine_info(dsn: str, background: float) -> Machine:
    with psycopg.connect(dsn) as conn:
        pg = conn.execute("SHOW server_version").fetchone()
        ts = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
    libs = ", ".join(
        f"{name} {dist_version(name)}" for name in ("paho-mqtt", "aiomqtt", "psycopg", "msgspec")
    )
    return Machine(
        background_cores=background,
        cores=os.cpu_count() or 0,
        cpu=_cpu_model(),
        python=platform.python_version(),
        mosquitto=_mosquitto_version(),
        postgres=str(pg[0]).split()[0] if pg else "unknown",
        timescaledb=str(ts[0]) if ts else "unknown",
        libs=libs,
    )


# --------------------------------------------------------------------------- CPU accounting


def _proc_cpu_s(pid: int, *, with_reaped_children: bool = False) -> float:
    """utime+stime (all threads) of ``pid`` in seconds; 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _children_of(parent: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rfind(")") + 2 :].split()[1]) == parent:
            found.append(int(entry.name))
    return found


def _machine_busy_idle_s() -> tuple[float, float]:
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(x) for x in first]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK"), idle / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class CpuSample:
    at: float
    groups: dict[str, float]
    busy: float
    idle: float


def cpu_sample(groups: dict[str, list[int]], postmaster: int | None) -> CpuSample:
    out = {name: sum(_proc_cpu_s(p) for p in pids) for name, pids in groups.items()}
    if postmaster is not None:
        backends = _children_of(postmaster)
        out["postgres"] = _proc_cpu_s(postmaster, with_reaped_children=True) + sum(
            _proc_cpu_s(p) for p in backends
        )
    busy, idle = _machine_busy_idle_s()
    return CpuSample(time.monotonic(), out, busy, idle)


OTHER_CPU = "other (softirq, bench, rest)"


class CpuMeter:
    """Cores used by processes other than ``pids``, PostgreSQL's and this one since creation.

    ``pids`` may grow after creation (processes started later); read :meth:`other`
    before reaping any of them.
    """

    def __init__(self, pids: list[int], postmaster: int | None = None) -> None:
        self._groups = {"ours": pids}
        self._postmaster = postmaster
        self._first = self._sample()

    def _sample(self) -> CpuSample:
        return cpu_sample({"ours": [*self._groups["ours"], os.getpid()]}, self._postmaster)

    def other(self) -> float:
        return cpu_split(self._first, self._sample())[OTHER_CPU]


def cpu_split(a: CpuSample, b: CpuSample) -> dict[str, float]:
    """Cores used by each group between two samples (1.0 = one core busy all the time)."""
    wall = max(b.at - a.at, 1e-9)
    used = {k: (b.groups.get(k, 0.0) - v) / wall for k, v in a.groups.items()}
    busy = (b.busy - a.busy) / wall
    used[OTHER_CPU] = busy - sum(used.values())
    used["machine busy"] = busy
    used["machine idle"] = (b.idle - a.idle) / wall
    return used


# --------------------------------------------------------------------------- database


def device_ids(n: int) -> list[str]:
    """The ids ``vgr sim load --prefix 86000000 --width 7`` generates."""
    return [f"{DEVICE_PREFIX}{i:0{DEVICE_WIDTH}d}" for i in range(n)]


def fresh_db(pg: PrivatePostgres, name: str, ids: Sequence[str]) -> str:
    """A new migrated database with the bench tenant and ``ids`` registered."""
    pg.drop_database(name)
    dsn = pg.create_database(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    migrate(dsn)
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO tenants (id, name) VALUES (%s, 'Bench Finance')", (TENANT,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO devices (id, tenant_id, kind) VALUES (%s, %s, 'wired')",
                [(d, TENANT) for d in ids],
            )
    return dsn


def stored_counts(dsn: str) -> tuple[int, int]:
    """(rows, distinct (device_id, boot_id, seq)) in ``fixes``."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, boot_id, seq)) FROM fixes"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


# --------------------------------------------------------------------------- loadgen-like fixes


def sample_fixes(
    n: int, *, device_id: str, boot_id: str, seq0: int, rng: random.Random
) -> list[Fix]:
    """``n`` fixes shaped as the load generator makes them (full-precision random walk)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    lat, lon = 31.2304 + rng.uniform(-0.2, 0.2), 121.4737 + rng.uniform(-0.2, 0.2)
    out = []
    for i in range(n):
        lat += rng.uniform(-1e-4, 1e-4)
        lon += rng.uniform(-1e-4, 1e-4)
        out.append(
            Fix(
                device_id=device_id,
                boot_id=boot_id,
                seq=seq0 + i,
                time=start + timedelta(seconds=seq0 + i),
                lat=lat,
                lon=lon,
                speed_mps=max(0.0, rng.gauss(12.0, 4.0)),
                course_deg=rng.uniform(0, 360),
                alt_m=20.0,
                hdop=round(rng.uniform(0.7, 1.6), 1),
                sats=rng.randint(8, 18),
            )
        )
    return out


def fixbatch_payload(batch: int) -> bytes:
    rng = random.Random(7)
    fixes = sample_fixes(
        batch, device_id=device_ids(1)[0], boot_id=uuid.uuid4().hex[:12], seq0=0, rng=rng
    )
    return encode(FixBatch(v=SCHEMA_VERSION, fixes=fixes))


# --------------------------------------------------------------------------- 1. broker limit


@dataclass(frozen=True, slots=True)
class BrokerResult:
    messages: int
    received: int
    seconds: float
    payload_bytes: int
    batch: int
    other_cores: float = 0.0  # CPU of processes outside the measurement

    @property
    def msgs_per_s(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    @property
    def fixes_per_s(self) -> float:
        return self.msgs_per_s * self.batch


def _feed_lines(proc: subprocess.Popen[bytes], line: bytes, count: int) -> threading.Thread:
    """Write ``count`` copies of ``line`` to ``proc``'s stdin from a thread, then close it."""

    def feed() -> None:
        stdin = proc.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError, ValueError, OSError):
            chunk = line * max(1, min(count, (1 << 20) // len(line)))
            per_chunk = chunk.count(b"\n")
            left = count
            while left >= per_chunk:
                stdin.write(chunk)
                left -= per_chunk
            stdin.write(line * left)
        with contextlib.suppress(BrokenPipeError, OSError):
            stdin.close()

    t = threading.Thread(target=feed, name="feed-mosquitto_pub", daemon=True)
    t.start()
    return t


def _retain_ready(children: Children, broker: PrivateMosquitto, topic: str) -> None:
    pub = children.spawn(
        ["mosquitto_pub", "-h", broker.host, "-p", str(broker.plain_port), "-q", "1", "-r",
         "-t", topic, "-m", "ready"]
    )  # fmt: skip
    if children.finish(pub, timeout=10) != 0:
        raise RuntimeError("mosquitto_pub could not publish the retained ready message")


def broker_limit(
    children: Children, broker: PrivateMosquitto, payload: bytes, batch: int, count: int
) -> BrokerResult:
    """mosquitto_pub -l (QoS 1) -> broker -> mosquitto_sub -C (QoS 1): messages/s."""
    topic = f"bench/raw/{uuid.uuid4().hex[:8]}"
    ready = f"{topic}/ready"
    _retain_ready(children, broker, ready)
    host, port = broker.host, str(broker.plain_port)
    # -F .: one short line per message, so the pipe to us costs nothing; the first line
    # is the retained ready message, which says the subscription is in place.
    sub = children.spawn(
        ["mosquitto_sub", "-h", host, "-p", port, "-q", "1", "-t", ready, "-t", topic,
         "-C", str(count + 1), "-F", "."],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out = sub.stdout
    assert out is not None
    if not out.readline():
        raise RuntimeError("mosquitto_sub exited before subscribing")
    ours = [sub.pid, broker.pid or 0]
    meter = CpuMeter(ours)
    started = time.perf_counter()
    pub = children.spawn(
        ["mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", topic, "-l"],
        stdin=subprocess.PIPE,
    )
    ours.append(pub.pid)
    feeder = _feed_lines(pub, payload + b"\n", count)
    received = 0
    deadline = started + 60.0
    while received < count and time.perf_counter() < deadline:
        data = os.read(out.fileno(), 1 << 16)
        if not data:
            break
        received += data.count(b"\n")
    seconds = time.perf_counter() - started
    feeder.join(5)
    _wait_exit_unreaped(pub, 5)
    _wait_exit_unreaped(sub, 5)
    other = meter.other()
    children.finish(pub, timeout=5)
    children.finish(sub, timeout=5)
    return BrokerResult(count, received, seconds, len(payload), batch, other)


# --------------------------------------------------------------------------- 2. COPY limit

COPY_COLS = (
    "time", "device_id", "boot_id", "seq", "tenant_id", "vehicle_id", "lat", "lon", "alt_m",
    "speed_mps", "course_deg", "mode", "hdop", "sats", "ignition", "ext_v", "batt_v", "flags",
)  # fmt: skip
COPY_TYPES = (
    "timestamptz", "text", "text", "int8", "text", "int8", "float8", "float8", "float4",
    "float4", "float4", "int2", "float4", "int2", "bool", "float4", "float4", "text[]",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CopyResult:
    rows: int
    seconds: float
    rows_per_txn: int
    other_cores: float = 0.0  # CPU of processes outside the measurement

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def _copy_rows(
    ids: Sequence[str], boots: Sequence[str], seq0: int, n: int, rng: random.Random
) -> list[tuple[Any, ...]]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    rows: list[tuple[Any, ...]] = []
    per_dev = max(1, n // len(ids))
    for d, (dev, boot) in enumerate(zip(ids, boots, strict=True)):
        if len(rows) >= n:
            break
        lat, lon = 31.2304 + d * 1e-3, 121.4737 + d * 1e-3
        for i in range(per_dev):
            seq = seq0 + i
            rows.append((
                start + timedelta(seconds=seq), dev, boot, seq, TENANT, None,
                lat + rng.uniform(-1e-3, 1e-3), lon + rng.uniform(-1e-3, 1e-3), 20.0,
                rng.uniform(0, 30), rng.uniform(0, 360), 3, 1.1, 12, None, None, None, [],
            ))  # fmt: skip
    return rows


def copy_limit(
    dsn: str, ids: Sequence[str], seconds: float, rows_per_txn: int, postmaster: int | None
) -> CopyResult:
    """Binary COPY straight into ``fixes``, one transaction per ``rows_per_txn`` rows.

    Only the COPY and its commit are timed, not building the Python tuples.
    """
    rng = random.Random(11)
    boots = [uuid.uuid4().hex[:12] for _ in ids]
    stmt = f"COPY fixes ({', '.join(COPY_COLS)}) FROM STDIN (FORMAT BINARY)"
    spent, rows, seq0 = 0.0, 0, 0
    wall_deadline = time.monotonic() + seconds * 3
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        meter = CpuMeter([], postmaster)
        while spent < seconds and time.monotonic() < wall_deadline:
            batch = _copy_rows(ids, boots, seq0, rows_per_txn, rng)
            seq0 += max(1, rows_per_txn // len(ids))
            t = time.perf_counter()
            with conn.transaction(), cur.copy(stmt) as copy:
                copy.set_types(list(COPY_TYPES))
                for r in batch:
                    copy.write_row(r)
            spent += time.perf_counter() - t
            rows += len(batch)
        other = meter.other()
    return CopyResult(rows, spent, rows_per_txn, other)


# --------------------------------------------------------------------------- 3. ingest


@dataclass(frozen=True, slots=True)
class Config:
    workers: int
    batch: int

    @property
    def label(self) -> str:
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}, {self.batch} fixes/msg"


def parse_configs(text: str) -> list[Config]:
    out = []
    for part in text.split(","):
        w, _, b = part.strip().partition("x")
        out.append(Config(int(w), int(b)))
    return out


@dataclass(slots=True)
class IngestResult:
    config: Config
    devices: int
    fixes_per_device: int
    wall_s: float
    rows: int
    distinct: int
    complete: bool
    summary: dict[str, str] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (s since start, rows)
    checkpoints: int = 0

    def window_rates(self) -> list[float]:
        """Rows/s committed in each sampling window of the run."""
        pts = self.timeline
        return [(n1 - n0) / (t1 - t0) for (t0, n0), (t1, n1) in pairwise(pts) if t1 > t0]

    @property
    def fixes_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s > 0 else 0.0

    def number(self, key: str) -> float:
        try:
            return float(self.summary[key])
        except (KeyError, ValueError):
            return math.nan

    @property
    def sent(self) -> int:
        n = self.number("sent")
        return int(n) if not math.isnan(n) else -1

    @property
    def lost(self) -> int:
        return self.sent - self.distinct if self.sent >= 0 else -1

    @property
    def duplicated(self) -> int:
        return self.rows - self.distinct


_SUMMARY = re.compile(r"(\w+)=(\S+)")


def _worker_config(workdir: Path, dsn: str, broker: PrivateMosquitto, tag: str) -> Path:
    ing = IngestSettings()
    path = workdir / f"cloud-{tag}.toml"
    path.write_text(
        f"""kind = "cloud"
log_level = "INFO"
[database]
dsn = "{dsn}"
[mqtt]
host = "{broker.host}"
port = {broker.plain_port}
client_id_prefix = "bench-{tag}"
[ingest]
share_group = "bench-{tag}"
batch_rows = {ing.batch_rows}
batch_ms = {ing.batch_ms}
receive_maximum = {ing.receive_maximum}
metrics_port = 0
"""
    )
    return path


@dataclass
class Rig:
    """The shared pieces every ingest run needs."""

    children: Children
    pg: PrivatePostgres
    workdir: Path
    devices: int
    profile_dir: Path | None = None
    runs: int = 0


@contextlib.contextmanager
def ingest_setup(
    rig: Rig, config: Config
) -> Iterator[tuple[str, PrivateMosquitto, list[subprocess.Popen[bytes]]]]:
    """A fresh broker, a fresh database and ``config.workers`` running workers."""
    rig.runs += 1
    tag = f"run{rig.runs}"
    ids = device_ids(rig.devices)
    dsn = fresh_db(rig.pg, f"bench_{tag}", ids)
    with PrivateMosquitto() as broker:
        cfg = _worker_config(rig.workdir, dsn, broker, tag)
        procs: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []
        try:
            for i in range(config.workers):
                log_path = rig.workdir / f"worker-{tag}-{i}.log"
                logs.append(log_path)
                argv = [sys.executable]
                if rig.profile_dir is not None:
                    argv += [
                        "-m",
                        "cProfile",
                        "-o",
                        str(rig.profile_dir / f"worker-{tag}-{i}.prof"),
                    ]
                argv += ["-m", "cloud.console", "cloud", "ingest", "--config", str(cfg),
                         "--worker-id", f"{tag}-{i}", "--metrics-port", "0"]  # fmt: skip
                with log_path.open("ab") as log:
                    procs.append(rig.children.spawn(argv, stdout=log, stderr=log))
            _wait_workers(procs, logs)
            yield dsn, broker, procs
        finally:
            for p in procs:
                rig.children.stop(p)
            rig.pg.drop_database(f"bench_{tag}")


def _wait_workers(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for p, log in zip(procs, logs, strict=True):
            if p.poll() is not None:
                raise RuntimeError(
                    f"ingest worker exited ({p.returncode}):\n{log.read_text()[-2000:]}"
                )
        if all("connected to" in log.read_text(errors="replace") for log in logs):
            time.sleep(0.3)  # the SUBSCRIBE follows the CONNACK at once
            return
        time.sleep(0.1)
    raise RuntimeError("ingest workers did not connect within 30 s")


def _loadgen(
    rig: Rig, broker: PrivateMosquitto, batch: int, fixes: int, out: IO[bytes], err: IO[bytes]
) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable, "-m", "cloud.console", "sim", "load",
        "--host", broker.host, "--port", str(broker.plain_port),
        "--devices", str(rig.devices), "--fixes", str(fixes), "--batch", str(batch),
        "--prefix", DEVICE_PREFIX, "--width", str(DEVICE_WIDTH), "--quiet",
    ]  # fmt: skip
    return rig.children.spawn(argv, stdout=out, stderr=err)


CLIENT_LIBS = ("paho", "aiomqtt")
TIMELINE_STEP_S = 10.0
RAW_PHASES_S = 25.0  # broker + COPY + client measurements and teardown
FOREIGN_CPU_WARN = 0.35  # "other" cores above this: something else ran (clean runs: ~0.2)


def _inserted(conn: psycopg.Connection[Any]) -> int:
    """Rows inserted into hypertable chunks so far (statistics, flushed about every second)."""
    row = conn.execute(
        "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables "
        "WHERE schemaname = '_timescaledb_internal'"
    ).fetchone()
    return int(row[0]) if row else 0


def _checkpoints(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
    ).fetchone()
    return int(row[0]) if row else 0


def _wait_exit_unreaped(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait until ``proc`` exits but leave it unreaped, so /proc still has its CPU times."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if done is not None:
            return True
        time.sleep(0.05)
    return False


def fixes_for(rate: float, seconds: float, devices: int, batch: int) -> int:
    """Fixes per device (whole batches) for about ``seconds`` of load at ``rate`` fixes/s."""
    return max(batch, round(rate * seconds / devices / batch) * batch)


def full_run(rig: Rig, config: Config, fixes_per_device: int, timeout_s: float) -> IngestResult:
    """Send ``fixes_per_device`` per device to completion; count what the database holds."""
    with ingest_setup(rig, config) as (dsn, broker, workers):
        out_path = rig.workdir / f"loadgen-run{rig.runs}.out"
        err_path = rig.workdir / f"loadgen-run{rig.runs}.log"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            t0 = time.monotonic()
            gen = _loadgen(rig, broker, config.batch, fixes_per_device, out, err)
            groups = {
                "load generator": [gen.pid],
                "ingest workers": [w.pid for w in workers],
                "mosquitto": [broker.pid or 0],
            }
            cpu0 = cpu_sample(groups, rig.pg.pid)
            with psycopg.connect(dsn, autocommit=True) as stats:
                ckpt0 = _checkpoints(stats)
                timeline = [(0.0, 0)]
                deadline = t0 + timeout_s
                complete = False
                while not complete and time.monotonic() < deadline:
                    step = min(TIMELINE_STEP_S, deadline - time.monotonic())
                    complete = _wait_exit_unreaped(gen, step)
                    if not complete:
                        timeline.append((time.monotonic() - t0, _inserted(stats)))
                cpu1 = cpu_sample(groups, rig.pg.pid)  # the load generator is not reaped yet
                checkpoints = _checkpoints(stats) - ckpt0
            if not complete:
                say(f"load run exceeded {timeout_s:.0f} s; stopping it (result is partial)")
            wall = time.monotonic() - t0
            rig.children.stop(gen, timeout=5)
        line = out_path.read_text().strip().splitlines()
        summary = dict(_SUMMARY.findall(line[-1])) if line else {}
        if not summary:
            say(f"load generator printed no summary; stderr:\n{err_path.read_text()[-2000:]}")
        rows, distinct = stored_counts(dsn)
        return IngestResult(
            config=config,
            devices=rig.devices,
            fixes_per_device=fixes_per_device,
            wall_s=wall,
            rows=rows,
            distinct=distinct,
            complete=complete and gen.returncode == 0,
            summary=summary,
            cpu=cpu_split(cpu0, cpu1),
            timeline=[*timeline, (wall, rows)],
            checkpoints=checkpoints,
        )


# --------------------------------------------------------------------------- 5. client choice


@dataclass(frozen=True, slots=True)
class ClientResult:
    lib: str
    received: int
    seconds: float
    other_cores: float = 0.0  # CPU of processes outside the measurement

    @property
    def msgs_per_s(self) -> float:
        return (self.received - 1) / self.seconds if self.seconds > 0 and self.received > 1 else 0.0


def _paho_receive(host: str, port: int, topic: str, count: int, max_s: float) -> tuple[int, float]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    subscribed = threading.Event()
    stamps: list[float] = []  # first and last arrival
    n = 0

    def on_connect(client: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        client.subscribe(topic, qos=1)

    def on_subscribe(_c: Any, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
        subscribed.set()

    def on_message(_c: Any, _u: Any, _msg: Any) -> None:
        nonlocal n
        now = time.perf_counter()
        if not stamps:
            stamps.append(now)
        n += 1
        if len(stamps) == 1:
            stamps.append(now)
        else:
            stamps[1] = now

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-paho-{os.getpid()}", protocol=mqtt.MQTTv5
    )
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise RuntimeError("paho: no SUBACK")
        print("ready", flush=True)
        _wait_count(lambda: n, lambda: stamps[0] if stamps else None, count, max_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return n, (stamps[1] - stamps[0]) if len(stamps) == 2 else 0.0


def _wait_count(
    got: Callable[[], int], first: Callable[[], float | None], count: int, max_s: float
) -> None:
    """Return once ``count`` messages came, or ``max_s`` after the first (or nothing came)."""
    begun = time.perf_counter()
    while got() < count:
        f = first()
        now = time.perf_counter()
        if (f is not None and now - f > max_s) or (f is None and now - begun > max_s + 20):
            return
        time.sleep(0.02)


def _aiomqtt_receive(
    host: str, port: int, topic: str, count: int, max_s: float
) -> tuple[int, float]:
    import asyncio

    import aiomqtt

    async def go() -> tuple[int, float]:
        n, first, last = 0, 0.0, 0.0
        async with aiomqtt.Client(
            host, port, identifier=f"bench-aiomqtt-{os.getpid()}",
            protocol=aiomqtt.ProtocolVersion.V5, keepalive=30,
        ) as client:  # fmt: skip
            await client.subscribe(topic, qos=1)
            print("ready", flush=True)

            async def consume() -> None:
                nonlocal n, first, last
                async for _msg in client.messages:
                    last = time.perf_counter()
                    if n == 0:
                        first = last
                    n += 1
                    if n >= count:
                        return

            task = asyncio.create_task(consume())
            begun = time.perf_counter()
            while not task.done():
                now = time.perf_counter()
                if (n and now - first > max_s) or (not n and now - begun > max_s + 20):
                    task.cancel()
                    break
                await asyncio.sleep(0.02)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return n, last - first

    return asyncio.run(go())


def client_main(args: argparse.Namespace) -> int:
    """The receiver process of the client-choice measurement; prints ``received= seconds=``."""
    receive = _paho_receive if args.client == "paho" else _aiomqtt_receive
    n, seconds = receive(args.host, args.port, args.topic, args.count, args.max_seconds)
    print(f"received={n} seconds={seconds:.4f}", flush=True)
    return 0


def client_rate(
    children: Children, broker: PrivateMosquitto, lib: str, payload: bytes, count: int, max_s: float
) -> ClientResult:
    """Receive rate of one client library draining ``count`` queued QoS 1 messages.

    The receiver subscribes and is frozen (SIGSTOP) while ``mosquitto_pub`` publishes,
    so the broker queues the stream for it; then it is resumed and times the drain.
    Only the broker and the receiver run while it is timed, whichever library it is.
    """
    topic = f"bench/client/{lib}/{uuid.uuid4().hex[:8]}"
    recv = children.spawn(
        [sys.executable, "-m", "bench.ingest", "--client", lib, "--host", broker.host,
         "--port", str(broker.plain_port), "--topic", topic, "--count", str(count),
         "--max-seconds", str(max_s)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    out = recv.stdout
    assert out is not None
    if out.readline().strip() != b"ready":
        raise RuntimeError(f"{lib} receiver did not subscribe")
    recv.send_signal(signal.SIGSTOP)
    try:
        pub = children.spawn(
            ["mosquitto_pub", "-h", broker.host, "-p", str(broker.plain_port), "-q", "1",
             "-t", topic, "-l"],
            stdin=subprocess.PIPE,
        )  # fmt: skip
        _feed_lines(pub, payload + b"\n", count).join(60)
        children.finish(pub, timeout=60)
    finally:
        meter = CpuMeter([recv.pid, broker.pid or 0])
        recv.send_signal(signal.SIGCONT)
    text = out.read().decode()
    _wait_exit_unreaped(recv, 10)
    other = meter.other()
    children.finish(recv, timeout=10)
    found = dict(_SUMMARY.findall(text))
    received, seconds = int(found.get("received", 0)), float(found.get("seconds", 0))
    return ClientResult(lib, received, seconds, other)


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    machine: Machine
    command: str
    started: datetime
    trials: list[IngestResult]
    ingest: IngestResult
    broker: BrokerResult
    copy: CopyResult
    clients: list[ClientResult]
    elapsed_s: float = 0.0

    @property
    def lower_limit(self) -> tuple[str, float]:
        return min(
            ("broker", self.broker.fixes_per_s), ("COPY", self.copy.rows_per_s), key=lambda x: x[1]
        )

    def best_clients(self) -> list[tuple[ClientResult, list[ClientResult]]]:
        """Per library: the fastest round and every round."""
        out = []
        for lib in CLIENT_LIBS:
            rounds = [c for c in self.clients if c.lib == lib]
            if rounds:
                out.append((max(rounds, key=lambda c: c.msgs_per_s), rounds))
        return out

    def warnings(self) -> list[str]:
        out = []
        other = self.ingest.cpu.get(OTHER_CPU, 0.0)
        if other > FOREIGN_CPU_WARN:
            out.append(
                f"{other:.2f} cores went to processes outside the benchmark during the "
                "end-to-end run (about 0.2 is kernel networking in a clean run)"
            )
        if not self.ingest.complete:
            out.append("the end-to-end load run did not complete")
        warn = [f"WARNING: {w}; the ingest figures are low." for w in out]
        phases = [("broker limit", self.broker.other_cores), ("COPY limit", self.copy.other_cores)]
        phases += [(f"{c.lib} receive rate", c.other_cores) for c, _ in self.best_clients()]
        warn += [
            f"WARNING: {other:.2f} cores went to other processes during the {name} "
            "measurement; that figure is low."
            for name, other in phases
            if other > FOREIGN_CPU_WARN
        ]
        return warn

    def final_line(self) -> str:
        i = self.ingest
        return (
            f"ingest_fixes_per_s={i.fixes_per_s:.0f} "
            f"broker_limit_per_s={self.broker.fixes_per_s:.0f} "
            f"copy_limit_per_s={self.copy.rows_per_s:.0f} "
            f"p50_ms={_num(i.number('p50_ms'))} p99_ms={_num(i.number('p99_ms'))} "
            f"lost={i.lost} duplicated={i.duplicated}"
        )

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(measure, value, baseline, ratio) rows of the main table."""
        i, b, c = self.ingest, self.broker, self.copy
        low_name, low = self.lower_limit
        share = i.fixes_per_s / low if low else 0.0
        return [
            ("ingest_fixes_per_s (end to end, " + i.config.label + ")",
             f"{i.fixes_per_s:,.0f} fixes/s", f"lower raw limit ({low_name}) {low:,.0f}/s",
             f"{share:.1%}"),
            ("broker_limit_per_s (mosquitto_pub -> broker -> mosquitto_sub, QoS 1)",
             f"{b.fixes_per_s:,.0f} fixes/s", f"{b.msgs_per_s:,.0f} msgs/s x {b.batch} fixes",
             f"ingest/broker {i.fixes_per_s / b.fixes_per_s if b.fixes_per_s else 0:.1%}"),
            ("copy_limit_per_s (binary COPY into fixes, 1 connection)",
             f"{c.rows_per_s:,.0f} rows/s", f"{c.rows:,} rows, {c.rows_per_txn:,} per transaction",
             f"ingest/COPY {i.fixes_per_s / c.rows_per_s if c.rows_per_s else 0:.1%}"),
            ("publish -> CommitAck latency p50 / p99",
             f"{_num(i.number('p50_ms'))} / {_num(i.number('p99_ms'))} ms",
             "first tries only; CommitAck is sent after commit", ""),
            ("lost (sent - distinct stored)", f"{i.lost:,}", f"{i.sent:,} fixes sent", ""),
            ("duplicated (stored - distinct)", f"{i.duplicated:,}", f"{i.rows:,} rows stored", ""),
            ("target: >= 30,000 fixes/s", "met" if i.fixes_per_s >= TARGET_FIXES_PER_S else
             "NOT met", f"{i.fixes_per_s:,.0f} fixes/s", ""),
            ("target: >= 50 % of the lower raw limit", "met" if share >= TARGET_SHARE else
             "NOT met", f"{share:.1%} of {low_name}", ""),
        ]  # fmt: skip

    def markdown(self) -> str:
        m, i = self.machine, self.ingest
        lines = [
            "# Ingest benchmark",
            "",
            f"Produced {self.started:%Y-%m-%d %H:%M} UTC by `{self.command}` "
            f"(whole run {self.elapsed_s:.0f} s). Numbers from one run on one machine; "
            "they move by several percent between runs.",
            "",
            f"Machine: {m.cores} cores, {m.cpu}; Python {m.python}; Mosquitto {m.mosquitto}; "
            f"PostgreSQL {m.postgres}; TimescaleDB {m.timescaledb}; {m.libs}. "
            "Broker, database, ingest workers and load generator all share these cores; "
            f"{m.background_cores:.2f} cores were busy with other work just before the run.",
            "",
            *(f"**{w}**\n" for w in self.warnings()),
            "| measure | value | baseline | ratio |",
            "|---|---|---|---|",
            *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows()),
            "",
            "## Configurations tried (short runs, rows committed / wall time)",
            "",
            "| configuration | fixes | fixes/s | p50 ms | p99 ms |",
            "|---|---|---|---|---|",
            *(
                f"| {t.config.label} | {t.rows:,} | {t.fixes_per_s:,.0f} | "
                f"{_num(t.number('p50_ms'))} | {_num(t.number('p99_ms'))} |"
                for t in self.trials
            ),
            "",
            f"Kept: {i.config.label}; {i.devices} devices x {i.fixes_per_device:,} fixes, "
            f"one batch in flight per device; wall {i.wall_s:.1f} s"
            + ("" if i.complete else " (**incomplete: the load run was stopped**)")
            + f". Load generator summary: `{' '.join(f'{k}={v}' for k, v in i.summary.items())}`",
            "",
            "Rows/s per 10 s window of the end-to-end run: "
            + ", ".join(f"{r:,.0f}" for r in i.window_rates())
            + f"; PostgreSQL checkpoints during the run: {i.checkpoints}.",
            "",
            "## CPU during the end-to-end run (cores; 1.00 = one core busy the whole time)",
            "",
            "| process | cores |",
            "|---|---|",
            *(f"| {k} | {v:.2f} |" for k, v in i.cpu.items()),
            "",
            "## MQTT client choice (receive rate of one QoS 1 stream, real FixBatch payloads)",
            "",
            f"Each round drains {max((c.received for c in self.clients), default=0):,} queued "
            "messages (or stops after the time cap); the best round counts.",
            "",
            "| client | best msgs/s | every round, msgs/s |",
            "|---|---|---|",
            *(
                f"| {best.lib} | {best.msgs_per_s:,.0f} | "
                + ", ".join(f"{c.msgs_per_s:,.0f}" for c in rounds)
                + " |"
                for best, rounds in self.best_clients()
            ),
            "",
            "## How it is measured",
            "",
            "- ingest: rows in `fixes` after the load run divided by the wall time of the "
            "`vgr sim load` process; workers are `vgr cloud ingest` processes with the default "
            "ingest settings; fresh database and broker per configuration.",
            "- latency: the load generator's publish -> CommitAck time for first tries; the "
            "CommitAck is published after the commit, so this bounds publish -> commit from above.",
            f"- broker: {self.broker.received:,} messages of {self.broker.payload_bytes:,} bytes "
            f"({self.broker.batch} fixes) at QoS 1, fixes/s = msgs/s x fixes per message.",
            f"- COPY: plain `COPY fixes (...) FROM STDIN (FORMAT BINARY)`, "
            f"{self.copy.rows_per_txn:,} rows per transaction, tuples built outside the timing.",
            "",
            "Final line:",
            "",
            "```",
            self.final_line(),
            "```",
            "",
        ]
        return "\n".join(lines)

    def text(self) -> str:
        m, i = self.machine, self.ingest
        width = [max(len(r[k]) for r in self.rows()) for k in range(4)]
        out = [
            f"VGR ingest benchmark  {self.started:%Y-%m-%d %H:%M} UTC  ({self.elapsed_s:.0f} s)",
            f"machine: {m.cores} cores, {m.cpu}; Python {m.python}; "
            f"busy before start: {m.background_cores:.2f} cores",
            f"versions: Mosquitto {m.mosquitto}, PostgreSQL {m.postgres}, "
            f"TimescaleDB {m.timescaledb}; {m.libs}",
            "",
        ]
        out += [*self.warnings(), *([""] if self.warnings() else [])]
        for r in self.rows():
            out.append("  ".join(r[k].ljust(width[k]) for k in range(4)).rstrip())
        out += ["", "configurations tried (short runs):"]
        out += [
            f"  {t.config.label:<28} {t.fixes_per_s:>8,.0f} fixes/s  p50 {_num(t.number('p50_ms'))}"
            f" ms  p99 {_num(t.number('p99_ms'))} ms"
            for t in self.trials
        ]
        out += [f"kept: {i.config.label}, {i.devices} devices x {i.fixes_per_device:,} fixes, "
                f"wall {i.wall_s:.1f} s{'' if i.complete else ' (INCOMPLETE)'}"]  # fmt: skip
        out += ["rows/s per 10 s window: " + ", ".join(f"{r:,.0f}" for r in i.window_rates())]
        out += [f"PostgreSQL checkpoints during the run: {i.checkpoints}"]
        out += ["", "CPU during the end-to-end run (cores):"]
        out += [f"  {k:<30} {v:5.2f}" for k, v in i.cpu.items()]
        out += ["", "MQTT client receive rate (QoS 1, same stream):"]
        out += [
            f"  {best.lib:<8} {best.msgs_per_s:>8,.0f} msgs/s  (rounds: "
            + ", ".join(f"{c.msgs_per_s:,.0f}" for c in rounds)
            + ")"
            for best, rounds in self.best_clients()
        ]
        return "\n".join(out)


def _num(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.0f}"


# --------------------------------------------------------------------------- main


def ingest_phase(
    rig: Rig, args: argparse.Namespace, profile_dir: Path | None
) -> tuple[list[IngestResult], IngestResult]:
    """Short trials of each configuration, then the fastest one for ``args.seconds``."""
    configs = parse_configs(args.configs)
    trials: list[IngestResult] = []
    best, best_rate = configs[0], float(args.guess)
    if len(configs) > 1:
        for cfg in configs:
            n = fixes_for(best_rate, args.trial_seconds, args.devices, cfg.batch)
            say(f"trial: {cfg.label}, {args.devices} devices x {n:,} fixes")
            t = full_run(rig, cfg, n, timeout_s=args.trial_seconds * 3 + 20)
            trials.append(t)
            say(f"  {t.fixes_per_s:,.0f} fixes/s, p50 {_num(t.number('p50_ms'))} ms")
        top = max(trials, key=lambda t: t.fixes_per_s)
        best, best_rate = top.config, top.fixes_per_s
    # Keep the whole run within --budget: the raw measurements after this take ~25 s.
    left = args.budget - (time.monotonic() - _STARTED) - RAW_PHASES_S
    seconds = max(10.0, min(args.seconds, left / 1.2))
    if seconds < args.seconds:
        say(f"end-to-end run shortened to {seconds:.0f} s to stay within {args.budget:.0f} s")
    fixes = fixes_for(best_rate, seconds, args.devices, best.batch)
    say(f"end-to-end run: {best.label}, {args.devices} devices x {fixes:,} fixes "
        f"(~{seconds:.0f} s at {best_rate:,.0f}/s)")  # fmt: skip
    rig.profile_dir = profile_dir
    ingest = full_run(rig, best, fixes, timeout_s=max(seconds * 1.5, left))
    say(
        f"  {ingest.fixes_per_s:,.0f} fixes/s, p50 {_num(ingest.number('p50_ms'))} ms, "
        f"p99 {_num(ingest.number('p99_ms'))} ms, sent {ingest.sent:,}, stored {ingest.rows:,}"
    )
    return trials, ingest


def run(args: argparse.Namespace, command: str) -> Report:
    started = datetime.now(UTC)
    children = Children()
    with contextlib.ExitStack() as stack:
        stack.callback(children.close)
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vgr-bench-")))
        profile_dir = None
        if args.profile is not None:
            profile_dir = args.profile.resolve()
            profile_dir.mkdir(parents=True, exist_ok=True)
        background = background_cores()
        say(f"machine busy before start: {background:.2f} cores")
        if background > 0.2:
            say("WARNING: something else is using the CPU; the figures will be low")
        say("starting private PostgreSQL + TimescaleDB")
        pg = stack.enter_context(PrivatePostgres())
        rig = Rig(children, pg, workdir, args.devices, profile_dir=None)
        trials, ingest = ingest_phase(rig, args, profile_dir)
        best = ingest.config

        say("broker limit: mosquitto_pub -l -> mosquitto_sub -C (QoS 1)")
        payload = fixbatch_payload(best.batch)
        raw = stack.enter_context(PrivateMosquitto(extra_config=["max_queued_messages 0"]))
        broker = broker_limit(children, raw, payload, best.batch, args.broker_messages)
        say(f"  {broker.msgs_per_s:,.0f} msgs/s = {broker.fixes_per_s:,.0f} fixes/s")

        say("COPY limit: binary COPY into a fresh migrated database")
        copy_dsn = fresh_db(pg, "bench_copy", [])
        copy = copy_limit(
            copy_dsn, device_ids(args.devices), args.copy_seconds, args.copy_rows, pg.pid
        )
        say(f"  {copy.rows_per_s:,.0f} rows/s")
        machine = machine_info(copy_dsn, background)
        pg.drop_database("bench_copy")

        clients = []
        for n in range(1, args.client_rounds + 1):
            for lib in CLIENT_LIBS:
                c = client_rate(
                    children, raw, lib, payload, args.client_messages, args.client_seconds
                )
                clients.append(c)
                say(f"client choice, round {n}: {lib} {c.msgs_per_s:,.0f} msgs/s")

        say("stopping services")
    report = Report(machine, command, started, trials, ingest, broker, copy, clients)
    report.elapsed_s = time.monotonic() - _STARTED
    if profile_dir is not None:
        _print_profiles(profile_dir)
    return report


def _print_profiles(directory: Path) -> None:
    import pstats

    for prof in sorted(directory.glob("*.prof")):
        say(f"profile {prof}")
        stats = pstats.Stats(str(prof), stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(40)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n")[0])
    p.add_argument(
        "--seconds", type=float, default=60.0, help="target length of the end-to-end run"
    )
    p.add_argument("--devices", type=int, default=200)
    p.add_argument(
        "--configs",
        default="1x50,2x50,2x100,3x100",
        help="WORKERSxBATCH,... tried in short windows; the fastest runs end to end",
    )
    p.add_argument("--trial-seconds", type=float, default=6.0, help="target length of each trial")
    p.add_argument(
        "--budget", type=float, default=175.0, help="shorten the end-to-end run to end within this"
    )
    p.add_argument("--guess", type=float, default=25_000, help="fixes/s to size the first run")
    p.add_argument("--broker-messages", type=int, default=30_000)
    p.add_argument("--copy-seconds", type=float, default=5.0)
    p.add_argument("--copy-rows", type=int, default=5000, help="rows per COPY transaction")
    p.add_argument("--client-messages", type=int, default=10_000)
    p.add_argument("--client-seconds", type=float, default=3.0, help="cap per round")
    p.add_argument("--client-rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=DOCS_OUT, help="markdown report (overwritten)")
    p.add_argument("--no-docs", action="store_true", help="do not write the markdown report")
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="run the end-to-end workers under cProfile (main thread), print the top entries",
    )
    # the receiver process of the client-choice measurement
    p.add_argument("--client", choices=("paho", "aiomqtt"), help=argparse.SUPPRESS)
    p.add_argument("--host", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--topic", help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, help=argparse.SUPPRESS)
    p.add_argument("--max-seconds", type=float, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.client:
        return client_main(args)
    # Explicit handlers: a shell starts background jobs with SIGINT ignored.
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _raise_interrupt)
    given = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join([".venv/bin/python", "-m", "bench.ingest", *given])
    try:
        report = run(args, command)
    except KeyboardInterrupt:
        say("interrupted; everything started was stopped")
        return 130
    print(report.text())
    if not args.no_docs:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report.markdown())
        say(f"wrote {args.out}")
    print(report.final_line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
