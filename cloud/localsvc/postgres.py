"""A private PostgreSQL + TimescaleDB cluster on a free loopback port.

For tests, benchmarks and ``make demo``: the cluster lives in its own
directory (a temporary one by default), trusts loopback connections only and
never touches the system service. Typical use::

    with PrivatePostgres() as pg:
        conn = psycopg.connect(pg.dsn)

PostgreSQL refuses to run as root. When this process is root, the cluster
directory is handed to the ``postgres`` account and every server program is
run through ``setpriv`` as that account (``setpriv`` execs, so the process we
start *is* the postmaster and we can signal and reap it directly).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from cloud.localsvc._lifecycle import PrivateService
from cloud.localsvc._process import (
    ServiceError,
    as_account,
    clean_env,
    fail,
    kill_tree,
    root_service_account,
    terminate,
)
from cloud.localsvc.ports import LOOPBACK, free_port

log = logging.getLogger(__name__)

PG_OS_USER = "postgres"
"""The account the server runs as when this process is root."""

DEFAULT_SETTINGS: Mapping[str, str] = {
    "listen_addresses": LOOPBACK,
    "shared_preload_libraries": "timescaledb",
    "timescaledb.telemetry_level": "off",
    "fsync": "on",  # kept on: crash-safety tests rely on it
    "shared_buffers": "64MB",
    "timezone": "UTC",
    "log_timezone": "UTC",
}
"""Server settings passed with ``-c`` on every start; ``settings=`` overrides them."""

_PORT_ATTEMPTS = 3


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``postgres``.

    Tries ``pg_config --bindir`` first, then the newest ``/usr/lib/postgresql/<major>/bin``.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(versions, key=lambda p: _major(p.parent.name), reverse=True)
    for bindir in candidates:
        if (bindir / "postgres").is_file() and (bindir / "initdb").is_file():
            return bindir
    raise ServiceError(
        "PostgreSQL server binaries (initdb, postgres) not found via pg_config or "
        "/usr/lib/postgresql/*/bin; run scripts/setup.sh"
    )


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


class PrivatePostgres(PrivateService):
    name = "postgres"
    """A PostgreSQL cluster with TimescaleDB preloaded, on 127.0.0.1 only.

    ``base_dir`` holds ``data/`` (the cluster, with the unix socket inside)
    and ``postgres.log``. Without ``base_dir`` a temporary directory is used
    and removed by :meth:`stop`; a given ``base_dir`` is kept, and an existing
    cluster in it is reused. Without ``port`` a free one is picked (and
    re-picked if it is taken before the first start); after the first start
    the port never changes, so :meth:`restart` comes back where it was.
    """

    def __init__(
        self,
        *,
        base_dir: Path | None = None,
        port: int | None = None,
        database: str = "vgr",
        settings: Mapping[str, str] | None = None,
        bindir: Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if base_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vgr-pg-")
            base_dir = Path(self._tmp.name)
        self.base_dir: Path = base_dir.resolve()
        self.data_dir: Path = self.base_dir / "data"
        self.log_path: Path = self.base_dir / "postgres.log"
        self.host: str = LOOPBACK
        self.port: int = free_port() if port is None else port
        self.database: str = database
        self._port_fixed = port is not None
        self._settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._bindir = bindir
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False

    # ------------------------------------------------------------------ addresses
    @property
    def dsn(self) -> str:
        """Connection string of the ``vgr`` database (or the one named at construction)."""
        return self.dsn_for(self.database)

    def dsn_for(self, database: str) -> str:
        """Connection string of another database on this cluster."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        """True while the postmaster we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the postmaster, or None when it is not running."""
        return self._proc.pid if self._proc is not None and self.running else None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Create the cluster if needed, start it, wait for connections, create the database.

        On failure everything is stopped (and a temporary directory removed)
        and :class:`ServiceError` carries the tail of the server log.
        """
        if self._closed:
            raise ServiceError("this PrivatePostgres was stopped and its directory removed")
        if self.running:
            raise ServiceError(f"postgres already running on port {self.port}")
        try:
            bindir = self._bindir or find_bindir()
            self._prepare_dirs()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb(bindir)
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                proc = self._launch(bindir)
                try:
                    self._wait_ready(proc)
                    break
                except ServiceError as exc:
                    in_use = proc.poll() is not None and "Address already in use" in str(exc)
                    if self._port_fixed or not in_use or attempt == _PORT_ATTEMPTS:
                        raise
                    log.info("port %d was taken before postgres bound it; retrying", self.port)
                    self.port = free_port()
            self._port_fixed = True
            self.create_database(self.database, exist_ok=True)
        except BaseException:
            self.stop()
            raise
        log.info("postgres ready on %s:%d (%s)", self.host, self.port, self.base_dir)

    def kill(self) -> None:
        """Crash the server: SIGKILL the postmaster, then every child it had.

        The postmaster is frozen (SIGSTOP) first so it cannot fork while its
        children are collected. The data directory is left as a crash leaves
        it; :meth:`restart` then runs crash recovery.
        """
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise ServiceError("postgres is not running")
        leftover = kill_tree(proc)
        self._proc = None
        if leftover:
            raise ServiceError(f"postgres processes {leftover} survived SIGKILL")
        log.info("postgres on port %d killed", self.port)

    # ------------------------------------------------------------------ databases
    def create_database(self, name: str, *, exist_ok: bool = False) -> str:
        """Create database ``name`` on this cluster and return its DSN."""
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            elif not exist_ok:
                raise ServiceError(f"database {name!r} already exists")
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, disconnecting anyone still using it."""
        with psycopg.connect(self.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # ------------------------------------------------------------------ internals
    def _command(self, argv: list[str]) -> list[str]:
        return as_account(argv, root_service_account(PG_OS_USER))

    def _prepare_dirs(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        owner = root_service_account(PG_OS_USER)
        if owner is not None:
            os.chown(self.base_dir, owner.pw_uid, owner.pw_gid)

    def _initdb(self, bindir: Path) -> None:
        argv = [
            str(bindir / "initdb"),
            f"--pgdata={self.data_dir}",
            "--auth=trust",
            f"--username={PG_OS_USER}",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]
        with self.log_path.open("ab") as out:
            done = subprocess.run(
                self._command(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=clean_env(("PG",)),
                check=False,
            )
        if done.returncode != 0:
            raise fail(f"initdb failed with exit code {done.returncode}", self.log_path)

    def _launch(self, bindir: Path) -> subprocess.Popen[bytes]:
        argv = [str(bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        settings = {**self._settings, "unix_socket_directories": str(self.data_dir)}
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        log.debug("starting %s", argv)
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                self._command(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                env=clean_env(("PG",)),
                start_new_session=True,  # a terminal's Ctrl-C reaches us, not the server
            )
        self._arm_at_exit()
        return self._proc

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._start_timeout
        last = "no attempt yet"
        while True:
            code = proc.poll()
            if code is not None:
                self._proc = None
                raise fail(f"postgres exited with code {code} while starting", self.log_path)
            try:
                with psycopg.connect(self.dsn_for("postgres"), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last = str(exc).strip()
            if time.monotonic() > deadline:
                raise fail(
                    f"postgres did not accept connections on port {self.port} within "
                    f"{self._start_timeout:.0f} s (last error: {last})",
                    self.log_path,
                )
            time.sleep(0.05)

    def _shutdown(self) -> None:
        if self._proc is not None:
            terminate(self._proc, signal.SIGINT, timeout=60.0)  # SIGINT = fast shutdown
            log.info("postgres on port %d stopped", self.port)
        self._proc = None
