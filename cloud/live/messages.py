"""What the feed sends: positions, alerts and case changes, and the frames that carry them.

Pure code. Every event belongs to one tenant and names its vehicle, so
:mod:`cloud.live.scope` can decide who receives it. Alerts travel without
their coordinates and evidence, as in ``GET /v1/alerts``: positions are only
served by audited routes, and the feed's subscription is audited.

A frame on the wire::

    {"type": "batch", "scope": {...} | null, "positions": [...], "alerts": [...],
     "cases": [...], "dropped": 12}

``dropped`` is the client's running count of events replaced or evicted
before they could be sent (:class:`cloud.live.buffer.LatestBuffer`). The
first frame is ``{"type": "hello", ...}``; a recovery agent also gets a
``scope`` (the vehicle ids it may see) whenever its assignments change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

POSITION, ALERT, CASE, SCOPE = "position", "alert", "case", "scope"
FRAME_KEYS = {POSITION: "positions", ALERT: "alerts", CASE: "cases"}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class Position:
    """A vehicle's newest fix with its current risk."""

    tenant_id: str
    vehicle_id: int
    time: datetime
    lat: float
    lon: float
    speed_mps: float | None
    course_deg: float | None
    risk_score: float | None
    risk_level: str | None

    def doc(self) -> dict[str, Any]:
        return {"vehicle_id": self.vehicle_id, "time": self.time.isoformat(), "lat": self.lat,
                "lon": self.lon, "speed_mps": self.speed_mps, "course_deg": self.course_deg,
                "risk_score": self.risk_score, "risk_level": self.risk_level}  # fmt: skip

    def with_risk(self, score: float | None, level: str | None) -> Position:
        return Position(self.tenant_id, self.vehicle_id, self.time, self.lat, self.lon,
                        self.speed_mps, self.course_deg, score, level)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert's state after a change (opened, escalated, acknowledged, resolved…)."""

    tenant_id: str
    id: int
    vehicle_id: int
    rule: str
    severity: str
    status: str
    opened_at: datetime
    updated_at: datetime
    message: str

    def doc(self) -> dict[str, Any]:
        return {"id": self.id, "vehicle_id": self.vehicle_id, "rule": self.rule,
                "severity": self.severity, "status": self.status,
                "opened_at": _iso(self.opened_at), "updated_at": _iso(self.updated_at),
                "message": self.message}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CaseChange:
    """A recovery case's state after a change."""

    tenant_id: str
    id: int
    vehicle_id: int
    status: str
    assignee: str | None
    updated_at: datetime

    def doc(self) -> dict[str, Any]:
        return {"id": self.id, "vehicle_id": self.vehicle_id, "status": self.status,
                "assignee": self.assignee, "updated_at": _iso(self.updated_at)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class RiskChange:
    """A vehicle's new risk score; sent as its position with the new score."""

    tenant_id: str
    vehicle_id: int
    score: float
    level: str
    updated_at: datetime


def hello(role: str, username: str, poll_s: float, buffer_limit: int) -> dict[str, Any]:
    return {"type": "hello", "role": role, "username": username, "poll_s": poll_s,
            "buffer_limit": buffer_limit}  # fmt: skip


def encoded(doc: dict[str, Any]) -> msgspec.Raw:
    """A document encoded once, to be embedded as is in every client's frames."""
    return msgspec.Raw(msgspec.json.encode(doc))


def frame(events: Iterable[tuple[str, object]], dropped: int) -> dict[str, Any]:
    """One ``batch`` frame from (kind, doc) events; at most one scope (the newest) is kept."""
    out: dict[str, Any] = {"type": "batch", "scope": None, "positions": [], "alerts": [],
                           "cases": [], "dropped": dropped}  # fmt: skip
    for kind, doc in events:
        if kind == SCOPE:
            out["scope"] = doc
        else:
            out[FRAME_KEYS[kind]].append(doc)
    return out
