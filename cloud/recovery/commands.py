"""Signed commands to a vehicle's trackers: built, recorded, published, acknowledged.

A command is an Ed25519 JWT (``protocols.tokens.sign_command``) for one
device, with a random nonce the device remembers until the command expires.
Each one is written to the ``commands`` table in the caller's transaction
first and published after it commits (a crash in between leaves a row with
``published_at`` empty, never a command nobody knows was sent). The
tracker answers on ``…/cmd/ack`` with a :class:`CommandAck` naming the
nonce; :func:`record_ack` stores the first answer per command.

Chase mode as the agent reads it (``edge/agent/commands.py``): ``on``
(default true) and ``duration_s`` (default 1 h, at most 24 h, counted from
when the tracker receives it). Off is ``{"on": false}``; a duration of 0
would *not* stop it (the agent takes 0 as "the default hour").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import msgspec
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocols.messages import CommandAck, SignedCommand
from protocols.tokens import (
    MAX_COMMAND_LIFETIME,
    ArgValue,
    CommandClaims,
    CommandName,
    new_nonce,
    sign_command,
)

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]
CHASE: CommandName = "chase_mode"
MIN_VALIDITY = timedelta(minutes=5)
ACK_LEEWAY = timedelta(seconds=60)  # as protocols.tokens.DEFAULT_LEEWAY on the device


class PublishError(Exception):
    """The broker did not take a command (not connected, not authorized, timed out)."""


class CommandPublisher(Protocol):
    """Delivers one signed command to a device's command topic (QoS 1)."""

    def publish(self, device_id: str, command: SignedCommand) -> str:
        """Return the broker's answer (e.g. ``Success``); raise :class:`PublishError`."""
        ...


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Commander:
    """What a service function needs to command trackers: the platform key and a publisher."""

    key: Ed25519PrivateKey
    publisher: CommandPublisher
    clock: Callable[[], datetime] = utcnow


@dataclass(frozen=True, slots=True)
class IssuedCommand:
    id: int
    device_id: str
    cmd: str
    args: Mapping[str, ArgValue]
    nonce: str
    issued_at: datetime
    expires_at: datetime
    signed: SignedCommand


@dataclass(slots=True)
class PublishReport:
    published: list[tuple[str, str]] = field(default_factory=list)  # (device id, broker note)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (device id, error)

    def detail(self) -> dict[str, object]:
        return {
            "published": [{"device_id": d, "note": n} for d, n in self.published],
            "failed": [{"device_id": d, "error": e} for d, e in self.failed],
        }


def chase_args(duration_s: int | None) -> dict[str, ArgValue]:
    """Arguments of a ``chase_mode`` command: on for ``duration_s``, or off when None."""
    if duration_s is None:
        return {"on": False}
    return {"on": True, "duration_s": duration_s}


def chase_validity(duration_s: int | None) -> timedelta:
    """How long a tracker may accept the command after it was issued.

    Chase on: the chase's own duration (at least 5 minutes), so a tracker that
    comes back from a car park during the chase still starts it. Chase off:
    24 h, the longest any chase may run.
    """
    if duration_s is None:
        return MAX_COMMAND_LIFETIME
    return min(max(timedelta(seconds=duration_s), MIN_VALIDITY), MAX_COMMAND_LIFETIME)


def active_devices(conn: Conn, tenant_id: str, vehicle_id: int) -> list[str]:
    """The vehicle's trackers that may be commanded: bound to it, in the tenant, not revoked."""
    rows = conn.execute(
        "SELECT id FROM devices WHERE tenant_id = %s AND vehicle_id = %s AND NOT revoked "
        "ORDER BY id",
        (tenant_id, vehicle_id),
    ).fetchall()
    return [str(r[0]) for r in rows]


def issue(
    conn: Conn,
    key: Ed25519PrivateKey,
    *,
    tenant_id: str,
    case_id: int | None,
    device_ids: Sequence[str],
    cmd: CommandName,
    args: Mapping[str, ArgValue],
    validity: timedelta,
    issued_by: str,
    now: datetime,
) -> list[IssuedCommand]:
    """Sign one command per device and record it (published later by :func:`publish_all`)."""
    issued_at = now.replace(microsecond=0)  # JWT times are whole seconds
    expires_at = issued_at + validity
    out = []
    for device_id in device_ids:
        claims = CommandClaims(
            cmd=cmd,
            device_id=device_id,
            issued_at=issued_at,
            expires_at=expires_at,
            nonce=new_nonce(),
            args=dict(args),
        )
        signed = sign_command(key, claims)
        row = conn.execute(
            "INSERT INTO commands (tenant_id, device_id, case_id, cmd, args, nonce, jws, "
            "issued_at, expires_at, issued_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "RETURNING id",
            (
                tenant_id,
                device_id,
                case_id,
                cmd,
                _json(dict(args)),
                claims.nonce,
                signed.jws,
                issued_at,
                expires_at,
                issued_by,
            ),
        ).fetchone()
        assert row is not None
        out.append(
            IssuedCommand(
                row[0], device_id, cmd, dict(args), claims.nonce, issued_at, expires_at, signed
            )
        )
    return out


def publish_all(
    conn: Conn, publisher: CommandPublisher, commands: Sequence[IssuedCommand]
) -> PublishReport:
    """Publish recorded commands one by one; note each outcome on its row."""
    report = PublishReport()
    for command in commands:
        try:
            note = publisher.publish(command.device_id, command.signed)
        except PublishError as exc:
            log.warning("command %s to %s not published: %s", command.cmd, command.device_id, exc)
            report.failed.append((command.device_id, str(exc)))
            conn.execute(
                "UPDATE commands SET publish_note = %s WHERE id = %s", (str(exc)[:200], command.id)
            )
            continue
        report.published.append((command.device_id, note))
        conn.execute(
            "UPDATE commands SET published_at = now(), publish_note = %s WHERE id = %s",
            (note[:200], command.id),
        )
    return report


def chase_on_until(conn: Conn, case_id: int) -> datetime | None:
    """The latest a chase started by this case can still be running; None when none can.

    Taken from the case's newest chase command: None if it switched chase off;
    otherwise its expiry plus its duration (a tracker receiving it at the last
    moment chases that long from then).
    """
    row = conn.execute(
        "SELECT args, expires_at FROM commands WHERE case_id = %s AND cmd = %s "
        "ORDER BY issued_at DESC, id DESC LIMIT 1",
        (case_id, CHASE),
    ).fetchone()
    if row is None:
        return None
    args, expires_at = row
    if not isinstance(args, dict) or args.get("on") is False:
        return None
    duration = args.get("duration_s")
    seconds = duration if isinstance(duration, int) and duration > 0 else 3600
    until: datetime = expires_at + timedelta(seconds=seconds) + ACK_LEEWAY
    return until


AckOutcome = Literal["recorded", "duplicate", "unknown"]


def record_ack(conn: Conn, device_id: str, ack: CommandAck) -> AckOutcome:
    """Store a tracker's answer on its command (the first answer wins).

    ``device_id`` is the one the topic names: the broker ACL lets a device
    publish only under its own id, so the topic is trusted, the payload's
    ``device_id`` is not. A second answer to one command (a redelivered
    command is refused as ``replayed``) does not overwrite the first. An ack
    of a command on a case is also written to the case's history.
    """
    with conn.transaction():
        row = conn.execute(
            "UPDATE commands SET ack_ok = %s, ack_reason = %s, ack_at = now() "
            "WHERE nonce = %s AND device_id = %s AND ack_at IS NULL "
            "RETURNING id, case_id, cmd, args",
            (ack.ok, ack.reason, ack.nonce, device_id),
        ).fetchone()
        if row is None:
            known = conn.execute(
                "SELECT 1 FROM commands WHERE nonce = %s AND device_id = %s",
                (ack.nonce, device_id),
            ).fetchone()
            return "duplicate" if known is not None else "unknown"
        command_id, case_id, cmd, args = row
        if case_id is not None:
            detail = {
                "command_id": command_id,
                "device_id": device_id,
                "cmd": cmd,
                "args": args,
                "nonce": ack.nonce,
                "ok": ack.ok,
                "reason": ack.reason,
            }
            conn.execute(
                "INSERT INTO case_history (case_id, actor, action, detail) "
                "VALUES (%s, %s, 'command_acked', %s)",
                (case_id, f"device:{device_id}", _json(detail)),
            )
    return "recorded"


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()
