"""Mosquitto's password file and ACL file, kept in step with the devices table.

Both files are rendered whole from the database (every non-revoked device
with a password hash) plus the internal service accounts from the config,
written atomically (temporary file, fsync, rename) and then the broker is
told to reload: SIGHUP to the pid in a pid file, or any callable (tests pass
``PrivateMosquitto.reload``). Rendering whole files means a crash half-way
or a lost update is repaired by the next sync, and nothing stale survives.

The ACL gives devices nothing but the ``pattern`` lines of
:func:`protocols.topics.broker_acl_patterns` (username = device id, confined
to ``vgr/v1/dev/<id>/``); each service account gets a ``user`` block.

What Mosquitto 2.0 does on SIGHUP (measured with 2.0.11, see
``tests/integration/test_registry.py``): it re-reads both files and re-checks
every *connected* client against the new password file, with the password
that client connected with. A client whose user was removed (revoked) or
whose password changed (rotated) is disconnected at once; other clients stay
connected. Mosquitto accepts a SUBSCRIBE to another device's topics (SUBACK
granted) but never delivers a message the ACL does not allow reading, and a
PUBLISH to a topic the client may not write is dropped. A shared subscription
``$share/<group>/<filter>`` is checked against ``<filter>``, so
``topic readwrite vgr/v1/#`` covers the ingest workers' shared subscriptions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cloud.mosquitto_hash import hash_password
from cloud.registry import model, store
from protocols.topics import broker_acl_patterns, valid_device_id

log = logging.getLogger(__name__)

SERVICE_ACL: tuple[str, ...] = ("topic readwrite vgr/v1/#",)
"""What an internal service account may do by default: everything under ``vgr/v1/``."""

SYNC_LOCK_KEY = 0x76677202  # "vgr" + 2: advisory lock serialising broker syncs
_HASH = re.compile(r"^\$[67]\$[0-9]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_ACL_LINE = re.compile(r"^topic (read|write|readwrite|deny) [^\s]+$")

Reload = Callable[[], None]


class BrokerSyncError(RuntimeError):
    """The broker files could not be written or the broker could not be reloaded."""


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """An internal account (ingest, command sender) with its own ACL lines."""

    username: str
    password_hash: str
    acl: tuple[str, ...] = SERVICE_ACL

    @classmethod
    def with_password(
        cls, username: str, password: str, *, acl: Sequence[str] = SERVICE_ACL
    ) -> ServiceAccount:
        return cls(username, hash_password(password), tuple(acl))


def _check_hash(name: str, hashed: str) -> None:
    if not _HASH.match(hashed):
        raise ValueError(f"{name}: not a Mosquitto $6$/$7$ password hash")


def _check_account(account: ServiceAccount) -> None:
    if not _ACCOUNT.match(account.username):
        raise ValueError(f"service account name {account.username!r} is not usable")
    _check_hash(account.username, account.password_hash)
    for line in account.acl:
        if not _ACL_LINE.match(line):
            raise ValueError(f"{account.username}: ACL line {line!r} is not 'topic <access> <t>'")


def render_password_file(
    devices: Iterable[model.BrokerCredential], accounts: Sequence[ServiceAccount]
) -> str:
    """``username:hash`` lines: devices (username = device id), then service accounts."""
    lines: list[str] = []
    seen: set[str] = set()
    for account in accounts:
        _check_account(account)
    for dev in devices:
        if not valid_device_id(dev.device_id) or ":" in dev.device_id:
            raise ValueError(f"device id {dev.device_id!r} cannot be a broker username")
        _check_hash(dev.device_id, dev.password_hash)
        lines.append(f"{dev.device_id}:{dev.password_hash}")
        seen.add(dev.device_id)
    for account in accounts:
        if account.username in seen:
            raise ValueError(f"username {account.username!r} is used twice")
        seen.add(account.username)
        lines.append(f"{account.username}:{account.password_hash}")
    return "".join(f"{line}\n" for line in lines)


def render_acl_file(accounts: Sequence[ServiceAccount]) -> str:
    """Device patterns first (they apply to every user), then one block per service account."""
    lines = [
        "# Written by cloud.registry.broker_auth; edits are overwritten at the next sync.",
        "# Devices (username = device id) are confined to their own subtree:",
        *broker_acl_patterns(),
    ]
    for account in accounts:
        _check_account(account)
        lines += ["", f"user {account.username}", *account.acl]
    return "".join(f"{line}\n" for line in lines)


def write_atomic(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` with ``text``: temporary file in the same directory, fsync, rename.

    The broker never sees a half-written file; ``mode`` is set exactly (umask ignored).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def sighup_reloader(pid_file: Path) -> Reload:
    """A reload hook sending SIGHUP to the broker whose pid is in ``pid_file``.

    The signal is asynchronous: the broker reloads a moment after this returns.
    """

    def reload() -> None:
        try:
            pid = int(pid_file.read_text(encoding="ascii").strip())
        except (OSError, ValueError) as exc:
            raise BrokerSyncError(f"cannot read the broker pid from {pid_file}: {exc}") from None
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as exc:
            raise BrokerSyncError(f"cannot signal broker pid {pid}: {exc.strerror}") from None

    return reload


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """Where the broker's files are, who else they let in, and how to make it reload."""

    password_file: Path
    acl_file: Path
    accounts: tuple[ServiceAccount, ...] = ()
    reload: Reload | None = None
    password_mode: int = 0o600  # hashes: owner only (or 0o640 with the broker's group)
    acl_mode: int = 0o644

    def apply(self, devices: Sequence[model.BrokerCredential]) -> None:
        """Render and write both files, then reload the broker (blocking)."""
        passwords = render_password_file(devices, self.accounts)
        acl = render_acl_file(self.accounts)
        write_atomic(self.password_file, passwords, self.password_mode)
        write_atomic(self.acl_file, acl, self.acl_mode)
        if self.reload is not None:
            self.reload()


async def sync_broker(conn: store.Conn, files: BrokerFiles) -> int:
    """Bring the broker files in step with the devices table; return the device count.

    Serialised across processes by a transaction-scoped advisory lock held
    while the rows are read, the files written and the broker reloaded, so an
    older snapshot can never overwrite a newer one. Called inside the caller's
    transaction, it sees the caller's uncommitted rows and the lock is held
    until the caller commits.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SYNC_LOCK_KEY,))
        devices = await store.broker_credentials(conn)
        try:
            await asyncio.to_thread(files.apply, devices)
        except BrokerSyncError:
            raise
        except (OSError, RuntimeError) as exc:
            raise BrokerSyncError(f"broker files not applied: {exc}") from exc
    log.info(
        "broker files synced: %d devices, %d service accounts", len(devices), len(files.accounts)
    )
    return len(devices)
