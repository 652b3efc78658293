"""Signed commands from the cloud: verified, applied, acknowledged with a reason.

Unsigned, forged, expired, replayed or other-device commands are refused
with the verifier's reason code; nothing unsigned changes the agent.
Seen nonces are kept (with their expiry) in a small JSON file beside the
outbox, so a command cannot be replayed after an agent restart either.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

log = logging.getLogger(__name__)

MAX_CHASE = timedelta(hours=24)
DEFAULT_CHASE = timedelta(hours=1)


class NonceBook:
    """Nonces of accepted commands until they expire; persisted atomically."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: dict[str, datetime] = {}
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            self._seen = {str(k): datetime.fromisoformat(str(v)) for k, v in raw.items()}
        except (OSError, ValueError, AttributeError):
            self._seen = {}

    def __contains__(self, nonce: object) -> bool:
        return nonce in self._seen

    def add(self, nonce: str, expires: datetime, *, now: datetime) -> None:
        self._seen = {k: v for k, v in self._seen.items() if v > now}
        self._seen[nonce] = expires
        tmp = self._path.with_name(self._path.name + ".tmp")
        try:
            tmp.write_text(
                json.dumps({k: v.isoformat() for k, v in self._seen.items()}), encoding="utf-8"
            )
            tmp.replace(self._path)
        except OSError as exc:
            log.warning("cannot persist command nonces (%s); replay protection is in memory", exc)


@dataclass(frozen=True, slots=True)
class ChaseRequest:
    on: bool
    until: datetime | None


def chase_request(args: dict[str, str | int | float | bool], now: datetime) -> ChaseRequest:
    """``chase_mode`` arguments: ``on`` (default true), ``duration_s`` (default 1 h, max 24 h)."""
    on = bool(args.get("on", True))
    if not on:
        return ChaseRequest(False, None)
    raw = args.get("duration_s", DEFAULT_CHASE.total_seconds())
    seconds = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else 0.0
    if seconds <= 0:
        seconds = DEFAULT_CHASE.total_seconds()
    return ChaseRequest(True, now + min(timedelta(seconds=seconds), MAX_CHASE))


def utcnow() -> datetime:
    return datetime.now(UTC)
