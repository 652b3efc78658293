"""A private Mosquitto broker with plain, password+ACL and TLS listeners on loopback.

For tests, benchmarks and ``make demo``. Listeners (``per_listener_settings``):

- ``plain_port``: anonymous, no ACL: tests and internal services;
- ``auth_port``: password file + ACL file, no anonymous clients;
- ``tls_port``: as ``auth_port``, over TLS with a throwaway CA (``ca_path``).

Mosquitto started as root drops to the ``mosquitto`` account unless the
config says ``user root``; that account cannot read our private directory, so
the config names the account we run as and the broker stays as us.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cloud.localsvc._lifecycle import PrivateService
from cloud.localsvc._mqtt import hash_password, mqtt_probe
from cloud.localsvc._process import ServiceError, fail, terminate, write_private
from cloud.localsvc.ports import LOOPBACK, free_ports
from cloud.localsvc.tls import TlsFiles, make_tls_files

log = logging.getLogger(__name__)

_PORT_ATTEMPTS = 3


class PrivateMosquitto(PrivateService):
    name = "mosquitto"
    """A Mosquitto broker in its own directory (temporary by default).

    Without ``ports`` (plain, auth, tls), free ones are picked at
    construction (re-picked if one is taken before the first start); then
    they are fixed: :meth:`restart` comes back on the same ports with the
    same config and persistence file. Users and ACL lines can be set before
    or after start; after start, call :meth:`reload`.
    """

    def __init__(
        self,
        *,
        base_dir: Path | None = None,
        ports: tuple[int, int, int] | None = None,
        extra_config: Sequence[str] = (),
        binary: str = "mosquitto",
        start_timeout: float = 10.0,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if base_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vgr-mosquitto-")
            base_dir = Path(self._tmp.name)
        self.base_dir: Path = base_dir.resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.host: str = LOOPBACK
        self.plain_port, self.auth_port, self.tls_port = ports or free_ports(3)
        self.config_path: Path = self.base_dir / "mosquitto.conf"
        self.log_path: Path = self.base_dir / "mosquitto.log"
        self.password_path: Path = self.base_dir / "passwords"
        self.acl_path: Path = self.base_dir / "acl"
        self.persistence_dir: Path = self.base_dir / "persistence"
        self.tls: TlsFiles = make_tls_files(self.base_dir / "tls", client_name="vgr-test-client")
        self.ca_path: Path = self.tls.ca_cert
        self._extra_config = list(extra_config)
        self._binary = binary
        self._start_timeout = start_timeout
        self._ports_fixed = ports is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False
        self._users = self._read_users()
        if not self.acl_path.exists():
            self.set_acl([])

    # ------------------------------------------------------------------ state
    @property
    def running(self) -> bool:
        """True while the broker process we started is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """PID of the broker, or None when it is not running."""
        return self._proc.pid if self._proc is not None and self.running else None

    @property
    def ports(self) -> tuple[int, int, int]:
        """(plain_port, auth_port, tls_port)."""
        return self.plain_port, self.auth_port, self.tls_port

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Write the config, start the broker and wait until every listener answers CONNECT.

        On failure the broker is stopped, a temporary directory removed, and
        :class:`ServiceError` carries the tail of the broker log.
        """
        if self._closed:
            raise ServiceError("this PrivateMosquitto was stopped and its directory removed")
        if self.running:
            raise ServiceError(f"mosquitto already running on ports {self.ports}")
        try:
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                self._write_config()
                proc = self._launch()
                try:
                    self._wait_ready(proc)
                    break
                except ServiceError as exc:
                    in_use = proc.poll() is not None and "Address already in use" in str(exc)
                    if self._ports_fixed or not in_use or attempt == _PORT_ATTEMPTS:
                        raise
                    log.info("a port was taken before mosquitto bound it; retrying")
                    self.plain_port, self.auth_port, self.tls_port = free_ports(3)
            self._ports_fixed = True
        except BaseException:
            self.stop()
            raise
        log.info("mosquitto ready on %s ports %s (%s)", self.host, self.ports, self.base_dir)

    def kill(self) -> None:
        """SIGKILL the broker: whatever it had not saved to its persistence file is lost."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise ServiceError("mosquitto is not running")
        proc.kill()
        proc.wait()
        self._proc = None
        log.info("mosquitto on ports %s killed", self.ports)

    def reload(self) -> None:
        """SIGHUP: the broker re-reads its config, password file and ACL file.

        Returns once the broker has logged the reload and answered a CONNECT
        after it, so the new users and ACL are in force.
        """
        proc = self._proc
        if proc is None or proc.poll() is not None:
            raise ServiceError("mosquitto is not running")
        offset = self.log_path.stat().st_size
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + self._start_timeout
        while "Reloading config." not in self._log_since(offset):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise fail("mosquitto did not reload its config", self.log_path)
            time.sleep(0.01)
        mqtt_probe(self.host, self.plain_port)

    # ------------------------------------------------------------------ users and ACL
    def add_user(self, username: str, password: str) -> None:
        """Add or replace a user in the password file (call :meth:`reload` if running)."""
        if not username or any(c in username for c in ":\n\r"):
            raise ValueError(f"invalid MQTT username {username!r}")
        self._users[username] = hash_password(password)
        self._write_users()

    def remove_user(self, username: str) -> None:
        """Remove a user from the password file (call :meth:`reload` if running)."""
        del self._users[username]
        self._write_users()

    @property
    def users(self) -> list[str]:
        """Usernames in the password file."""
        return sorted(self._users)

    def set_acl(self, lines: Sequence[str]) -> None:
        """Replace the ACL file with ``lines`` (``user x``, ``topic read t``, ``pattern write t``).

        An empty ACL denies every authenticated client everything. Call
        :meth:`reload` if the broker is running.
        """
        if any("\n" in line or "\r" in line for line in lines):
            raise ValueError("ACL lines must not contain line breaks")
        write_private(self.acl_path, "".join(f"{line}\n" for line in lines))

    # ------------------------------------------------------------------ internals
    def _read_users(self) -> dict[str, str]:
        if not self.password_path.exists():
            write_private(self.password_path, "")
            return {}
        users: dict[str, str] = {}
        for line in self.password_path.read_text().splitlines():
            name, sep, hashed = line.partition(":")
            if sep:
                users[name] = hashed
        return users

    def _write_users(self) -> None:
        text = "".join(f"{name}:{hashed}\n" for name, hashed in self._users.items())
        write_private(self.password_path, text)

    def _write_config(self) -> None:
        self.persistence_dir.mkdir(exist_ok=True)
        secured = [
            "allow_anonymous false",
            f"password_file {self.password_path}",
            f"acl_file {self.acl_path}",
        ]
        lines = [
            "# written by cloud.localsvc.mosquitto: a private broker on loopback",
            "per_listener_settings true",
            # Started as root, mosquitto drops to this account: name the one we run as.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            "log_dest stderr",
            *(f"log_type {kind}" for kind in ("error", "warning", "notice", "information")),
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            *self._extra_config,
            "",
            f"listener {self.plain_port} {self.host}",
            "allow_anonymous true",
            "",
            f"listener {self.auth_port} {self.host}",
            *secured,
            "",
            f"listener {self.tls_port} {self.host}",
            *secured,
            f"cafile {self.tls.ca_cert}",
            f"certfile {self.tls.server_cert}",
            f"keyfile {self.tls.server_key}",
            "tls_version tlsv1.2",
        ]
        write_private(self.config_path, "\n".join(lines) + "\n")

    def _launch(self) -> subprocess.Popen[bytes]:
        binary = shutil.which(self._binary) or shutil.which(self._binary, path="/usr/sbin")
        if binary is None:
            raise ServiceError(f"{self._binary!r} not found; run scripts/setup.sh")
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                [binary, "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
                start_new_session=True,  # a terminal's Ctrl-C reaches us, not the broker
            )
        self._arm_at_exit()
        return self._proc

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._start_timeout
        tls = ssl.create_default_context(cafile=str(self.ca_path))
        pending: dict[int, ssl.SSLContext | None] = {
            self.plain_port: None,
            self.auth_port: None,
            self.tls_port: tls,
        }
        last = "no attempt yet"
        while pending:
            code = proc.poll()
            if code is not None:
                self._proc = None
                raise fail(f"mosquitto exited with code {code} while starting", self.log_path)
            for port, context in list(pending.items()):
                try:
                    mqtt_probe(self.host, port, context)
                    del pending[port]
                except OSError as exc:
                    last = f"port {port}: {exc}"
            if pending and time.monotonic() > deadline:
                raise fail(
                    f"mosquitto did not answer within {self._start_timeout:.0f} s ({last})",
                    self.log_path,
                )
            if pending:
                time.sleep(0.02)

    def _log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def _shutdown(self) -> None:
        if self._proc is not None:
            terminate(self._proc, signal.SIGTERM, timeout=30.0)
            log.info("mosquitto on ports %s stopped", self.ports)
        self._proc = None
