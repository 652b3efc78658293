"""The settings and small records of the tracker firmware (:mod:`firmware_sim.firmware`).

:class:`FirmwareRules` holds the edge agent's defaults (``edge/config.py``);
:class:`Outgoing` is one MQTT message a tracker publishes; :class:`Watch` and
:class:`Refusals` are the firmware's watchdog episodes (a lost fix; fixes the
gate keeps refusing as impossible).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

FIRMWARE = "vgr-sim-fw/1"
RecordKey = tuple[str, int]  # (boot_id, seq)


@dataclass(frozen=True, slots=True)
class FirmwareRules:
    """Reporting, gate and watchdog settings; defaults are the edge agent's."""

    moving_interval: timedelta = timedelta(seconds=15)  # reporting.moving_interval_s
    parked_interval: timedelta = timedelta(minutes=10)  # reporting.parked_interval_s
    wireless_interval: timedelta = timedelta(minutes=1)  # a wireless unit, not moving
    heartbeat_interval: timedelta = timedelta(minutes=2)  # reporting.heartbeat_interval_s
    moving_speed_mps: float = 1.5  # reporting.moving_speed_mps
    batch_max: int = 50  # fixes per FixBatch (reporting.batch_max)
    events_max: int = 100  # events per EventBatch (the agent's send loop)
    max_hdop: float = 5.0  # gate.max_hdop
    min_sats: int = 4  # gate.min_sats
    max_jump_kmh: float = 300.0  # gate.max_jump_kmh
    min_jump_m: float = 50.0  # edge.gate.GateConfig.min_jump_m
    fix_timeout: timedelta = timedelta(minutes=5)  # gnss.fix_timeout_s
    jam_after: timedelta = timedelta(seconds=60)  # watchdog.WatchRules.jam_after_s
    spoof_after: timedelta = timedelta(seconds=30)  # gate refusals before spoofing_suspected


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message a tracker publishes, at ``publish_at`` (scenario time)."""

    publish_at: datetime
    device_id: str
    topic: str
    payload: bytes
    records: int  # fixes or events inside (0 for a Status)
    keys: tuple[RecordKey, ...] = ()  # (boot_id, seq) of those records, for CommitAcks
    retain: bool = False


def boot_id_for(salt: str, device_id: str, n: int) -> str:
    """The ``n``-th boot id of a device, shaped like the agent's (``<n, 8 hex>-<16 hex>``)."""
    digest = hashlib.sha256(f"{salt}:{device_id}:{n}".encode()).hexdigest()[:16]
    return f"{n:08x}-{digest}"


@dataclass(slots=True)
class Watch:
    """The agent's watchdog episode, over GNSS time instead of a monotonic clock."""

    last_fix: datetime | None = None
    lost_since: datetime | None = None
    moving_when_lost: bool = False
    fault_raised: bool = False
    jam_raised: bool = False


@dataclass(slots=True)
class Refusals:
    """An episode of fixes the gate refused as impossible (reset by an accepted fix)."""

    reason: str
    since: datetime
    dropped: int = 0
    raised: bool = False
