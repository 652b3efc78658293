"""Tracker firmware that speaks the wire protocol itself: ticks in, MQTT messages out.

Many trackers in the field run their own firmware instead of our edge agent.
:class:`Firmware` is that device model for one tracker of a simulated world:
fed the :class:`~firmware_sim.tracker.Tick` of each step and the receiver's
epoch (:class:`~firmware_sim.nmea.Solution`, read without rendering NMEA), it
records exactly the fixes and events the edge agent would and publishes them
as :class:`Outgoing` messages (``FixBatch`` / ``EventBatch`` / retained
``Status`` JSON from :mod:`protocols.messages`). It imports nothing from
``edge``: the agent's documented behaviour is re-implemented here, with its
defaults (``edge/config.py``):

- **gate** (``edge/gate.py``): no fix, HDOP above 5, fewer than 4 satellites,
  not newer than the last accepted fix, or a jump of >= 50 m needing more than
  300 km/h: no Fix record;
- **reporting** (``edge/agent/reporting.py``): a gated fix is recorded when it
  is the first, when moving flips (speed >= 1.5 m/s or ignition on), or when
  the interval passed: 15 s moving, 10 min parked (a wireless unit: 1 min, so
  a 3-7 minute wake sends a few fixes);
- **heartbeat** event: wired units, whenever no fix or heartbeat was recorded
  for 2 minutes (parked, jammed, in a car park whose HDOP the gate refuses);
  wireless units once per wake, when the link comes up. Like a JT/T 808
  "not positioned" location report it carries the terminal's status:
  {ext_v, batt_v, ignition, sats}, ``sats`` being the satellites the receiver
  used in its latest epoch (0-3 without a fix; a car park still has 5-10);
- **hardware I/O** (``edge/agent/core.py``): ``power`` -> ``power_lost`` /
  ``power_restored`` {ext_v}; ``tamper`` {source}; ``battery`` ->
  ``low_battery`` {batt_v} when ``low`` rises; ``antenna`` cut ->
  ``antenna_cut``; ignition, voltages and the battery go into the next fixes;
- **watchdog** (``edge/agent/watchdog.py``): after an epoch without a fix,
  ``gnss_fault`` once the fix has been lost for 5 min, ``jamming_suspected``
  once it has been lost for 60 s while the car was moving (ignition on, or
  moving at the last fix) with the link up and the antenna connected; both
  {link_up}, once per episode. A wireless unit starts a fresh episode per wake;
- **spoofing** (the contract the agent is to follow, ``protocols/README.md``):
  once the gate has refused fixes as impossible (``jump_too_fast``) for 30 s
  with no fix accepted in between, ``spoofing_suspected`` {reason,
  rejected_lat, rejected_lon, implied_kmh, jump_km, dropped, since, link_up},
  once per episode; the next accepted fix ends the episode. The gate keeps
  its last accepted fix as the reference, so a spoofed track never reaches
  the cloud as fixes: without this event the cloud would not know. Urban
  multipath jumps are refused for 1-5 s and never raise it;
- **identity**: every record carries ``(device_id, boot_id, seq)``, seq
  counting fixes and events together per boot. A unit that lost all power
  (battery flat) and gets power again reboots: new boot id, seq from 0, a
  ``boot`` event;
- **link** (the outbox): records are published at once while the link is up
  (and the unit awake); otherwise they wait, and go out in a burst when the
  link returns: ``publish_at`` is the reconnect time, the GNSS times are in
  the past, and the batches say ``backlog`` (JT/T 808's blind-area
  re-upload; the cloud flags those records ``late``). Each link session
  starts with a retained ``Status`` (online) and a ``session`` event {ip}. A
  removed or flat unit sends nothing; what it had not sent yet is lost with
  it (or waits in flash for power to return).

Event times are the GNSS time of the step; event positions the last gated fix.
Settings and message records live in :mod:`firmware_sim.firmware_rules`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from firmware_sim.firmware_rules import (
    FIRMWARE,
    FirmwareRules,
    Outgoing,
    RecordKey,
    Refusals,
    Watch,
    boot_id_for,
)
from firmware_sim.nmea import KNOTS_PER_MPS, Solution
from firmware_sim.tracker import Tick, TrackerKind
from protocols import hwio
from protocols.messages import (
    SCHEMA_VERSION,
    DetailValue,
    DeviceState,
    Event,
    EventBatch,
    EventKind,
    Fix,
    FixBatch,
    FixMode,
    Status,
    encode,
)
from protocols.plausibility import haversine_m
from protocols.topics import Channel, device_topic

__all__ = ["FIRMWARE", "Firmware", "FirmwareRules", "Outgoing", "RecordKey", "boot_id_for"]


class Firmware:
    """One tracker's firmware. Call :meth:`step` for every tick, in time order."""

    def __init__(
        self, device_id: str, kind: TrackerKind, *, boot_salt: str, rules: FirmwareRules
    ) -> None:
        self.device_id = device_id
        self.kind = kind
        self.rules = rules
        self._salt = boot_salt
        self._topics = {c: device_topic(device_id, c) for c in Channel}
        self.boots = 0
        self.boot_id = ""
        self._seq = 0
        self._pending: list[Fix | Event] = []  # recorded, not yet published (seq order)
        self._alive = False
        self._awake = False
        self._connected = False
        self.last_verdict = "none"  # the gate's word on the latest epoch
        self._reset()

    def _reset(self) -> None:
        """Agent state that a reboot forgets."""
        self.ignition: bool | None = None
        self.ext_on: bool | None = None
        self.ext_v: float | None = None
        self.batt_v: float | None = None
        self.battery_low = False
        self.link_up = False
        self.antenna_ok = True
        self.sats: int | None = None  # satellites used in the latest epoch
        self._last_pos: tuple[float, float] | None = None  # last gated fix (lat, lon)
        self._gate_last: tuple[datetime, float, float] | None = None
        self._last_report: datetime | None = None
        self._moving: bool | None = None
        self._last_beat: datetime | None = None
        self._watch = Watch()
        self._refusals: Refusals | None = None

    # ------------------------------------------------------------ stepping

    def step(self, tick: Tick, solution: Solution | None) -> list[Outgoing]:
        """Process one tick (and its epoch, when the receiver ran); return what goes out now."""
        t = tick.time
        held = len(self._pending)  # kept while the link was down: the backlog
        if not tick.alive:
            self._alive = self._awake = self._connected = False
            return []
        if not self._alive:
            self._alive = True
            self._boot(t)
        if tick.awake and not self._awake and self.kind is TrackerKind.WIRELESS:
            self._watch = Watch()  # the unit slept: a new episode, not hours of lost fix
            self.sats = None
        self._awake = tick.awake
        self.link_up = tick.link_up
        for sig in tick.io:
            self._on_signal(sig, t)
        if solution is not None:
            self._on_epoch(t, solution)
        if self.kind is TrackerKind.WIRED:
            beat = self._last_beat
            if beat is None or t - beat >= self.rules.heartbeat_interval:
                self._heartbeat(t)
        out: list[Outgoing] = []
        connected = tick.awake and tick.link_up
        if connected and not self._connected:
            out.append(self._status(t))
            self._emit(EventKind.SESSION, {"ip": tick.ip}, t)
            if self.kind is TrackerKind.WIRELESS:
                self._heartbeat(t)
        self._connected = connected
        if connected:
            out += self._flush(t, held)
        return out

    def next_due(self, now: datetime) -> datetime | None:
        """The next time after ``now`` a timer of this firmware may fire by itself (report,
        heartbeat, watchdog). A report already overdue waits for a fix, not for a time."""
        due: list[datetime] = []
        if self._last_report is not None:
            due.append(self._last_report + self._interval(bool(self._moving)))
        if self.kind is TrackerKind.WIRED and self._last_beat is not None:
            due.append(self._last_beat + self.rules.heartbeat_interval)
        w = self._watch
        r = self._refusals
        if r is not None and not r.raised:
            due.append(r.since + self.rules.spoof_after)
        if w.lost_since is not None:
            if not w.jam_raised:
                due.append(w.lost_since + self.rules.jam_after)
            if not w.fault_raised:
                due.append(w.lost_since + self.rules.fix_timeout)
        return min((d for d in due if d > now), default=None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------ records

    def _boot(self, t: datetime) -> None:
        self.boots += 1
        self.boot_id = boot_id_for(self._salt, self.device_id, self.boots)
        self._seq = 0
        self._reset()
        self._last_beat = t  # the boot event is the first sign of life
        reason = "power_on" if self.boots == 1 else "power_restored"
        self._emit(EventKind.BOOT, {"firmware": FIRMWARE, "reason": reason}, t)

    def _emit(self, kind: EventKind, detail: dict[str, DetailValue], t: datetime) -> None:
        lat, lon = self._last_pos if self._last_pos is not None else (None, None)
        self._pending.append(
            Event(device_id=self.device_id, boot_id=self.boot_id, seq=self._seq, time=t,
                  kind=kind, lat=lat, lon=lon, detail=detail)
        )  # fmt: skip
        self._seq += 1

    def _heartbeat(self, t: datetime) -> None:
        detail: dict[str, DetailValue] = {}
        if self.ext_v is not None:
            detail["ext_v"] = self.ext_v
        if self.batt_v is not None:
            detail["batt_v"] = self.batt_v
        if self.ignition is not None:
            detail["ignition"] = self.ignition
        if self.sats is not None:
            detail["sats"] = self.sats
        self._emit(EventKind.HEARTBEAT, detail, t)
        self._last_beat = t

    def _on_signal(self, sig: hwio.HwSignal, t: datetime) -> None:
        if isinstance(sig, hwio.Power):
            self.ext_v = sig.ext_v
            self.ext_on = sig.state == "restored"
            kind = EventKind.POWER_RESTORED if self.ext_on else EventKind.POWER_LOST
            self._emit(kind, {"ext_v": sig.ext_v}, t)
        elif isinstance(sig, hwio.Ignition):
            self.ignition = sig.on
        elif isinstance(sig, hwio.Tamper):
            self._emit(EventKind.TAMPER, {"source": sig.source}, t)
        elif isinstance(sig, hwio.Battery):
            self.batt_v = sig.batt_v
            if sig.low and not self.battery_low:
                self._emit(EventKind.LOW_BATTERY, {"batt_v": sig.batt_v}, t)
            self.battery_low = sig.low
        elif isinstance(sig, hwio.Antenna):
            self.antenna_ok = sig.state == "ok"
            if not self.antenna_ok:
                self._emit(EventKind.ANTENNA_CUT, {}, t)
        # hwio.Link: the tick's link_up already says it

    def _on_epoch(self, t: datetime, s: Solution) -> None:
        rules = self.rules
        self.sats = s.sats_used if s.lat is not None else min(s.sats_used, 3)
        if s.lat is None or s.lon is None:
            self.last_verdict = "no_fix"
            self._no_fix(t)
            return
        if s.hdop > rules.max_hdop:
            self.last_verdict = "hdop_too_high"  # dropped, and not a lost fix either
            return
        if s.sats_used < rules.min_sats:
            self.last_verdict = "too_few_sats"
            self._no_fix(t)
            return
        when = s.time or t
        if self._gate_last is not None:
            last_t, last_lat, last_lon = self._gate_last
            dt = (when - last_t).total_seconds()
            if dt <= 0:
                self.last_verdict = "duplicate"
                return
            metres = haversine_m(last_lat, last_lon, s.lat, s.lon)
            if metres >= rules.min_jump_m and metres / dt * 3.6 > rules.max_jump_kmh:
                self.last_verdict = "jump_too_fast"
                self._refused(t, "jump_too_fast", s.lat, s.lon, metres, metres / dt * 3.6)
                return
        self.last_verdict = "accepted"
        self._refusals = None
        self._gate_last = (when, s.lat, s.lon)
        self._on_fix(when, s)

    def _on_fix(self, when: datetime, s: Solution) -> None:
        assert s.lat is not None
        assert s.lon is not None
        # What the agent reads back from the NMEA: the sentences' precision.
        lat, lon = round(s.lat, 7), round(s.lon, 7)
        speed = round(s.speed_mps * KNOTS_PER_MPS, 3) / KNOTS_PER_MPS
        moving = speed >= self.rules.moving_speed_mps or bool(self.ignition)
        self._watch = Watch(last_fix=when, moving_when_lost=moving)
        self._last_pos = (lat, lon)
        due = (
            self._last_report is None
            or moving != self._moving
            or when - self._last_report >= self._interval(moving)
        )
        if not due:
            return
        self._last_report, self._moving = when, moving
        self._pending.append(
            Fix(device_id=self.device_id, boot_id=self.boot_id, seq=self._seq, time=when,
                lat=lat, lon=lon, alt_m=min(max(round(s.alt_m, 1), -1000.0), 20000.0),
                speed_mps=round(speed, 3), course_deg=round(s.course_deg % 360.0, 2),
                mode=FixMode.THREE_D if s.sats_used >= 4 else FixMode.TWO_D,
                hdop=round(s.hdop, 2), sats=s.sats_used, ignition=self.ignition,
                ext_v=self.ext_v, batt_v=self.batt_v)
        )  # fmt: skip
        self._seq += 1
        self._last_beat = when

    def _interval(self, moving: bool) -> timedelta:
        if moving:
            return self.rules.moving_interval
        if self.kind is TrackerKind.WIRELESS:
            return self.rules.wireless_interval
        return self.rules.parked_interval

    def _refused(
        self, t: datetime, reason: str, lat: float, lon: float, metres: float, kmh: float
    ) -> None:
        r = self._refusals
        if r is None or r.reason != reason:
            r = self._refusals = Refusals(reason, t)
        r.dropped += 1
        if r.raised or t - r.since < self.rules.spoof_after:
            return
        r.raised = True
        detail: dict[str, DetailValue] = {
            "reason": reason, "rejected_lat": round(lat, 6), "rejected_lon": round(lon, 6),
            "implied_kmh": round(kmh), "jump_km": round(metres / 1000.0, 1),
            "dropped": r.dropped, "since": r.since.isoformat(), "link_up": self.link_up,
        }  # fmt: skip
        self._emit(EventKind.SPOOFING_SUSPECTED, detail, t)

    def _no_fix(self, t: datetime) -> None:
        w, rules = self._watch, self.rules
        if w.lost_since is None:
            w.lost_since = w.last_fix if w.last_fix is not None else t
        lost_for = t - w.lost_since
        if not w.fault_raised and lost_for >= rules.fix_timeout:
            w.fault_raised = True
            self._emit(EventKind.GNSS_FAULT, {"link_up": self.link_up}, t)
        moving = w.moving_when_lost or bool(self.ignition)
        if (
            not w.jam_raised
            and moving
            and self.link_up
            and self.antenna_ok
            and lost_for >= rules.jam_after
        ):
            w.jam_raised = True
            self._emit(EventKind.JAMMING_SUSPECTED, {"link_up": self.link_up}, t)

    # ------------------------------------------------------------ messages

    def _status(self, t: datetime) -> Outgoing:
        status = Status(v=SCHEMA_VERSION, device_id=self.device_id, state=DeviceState.ONLINE,
                        boot_id=self.boot_id, agent_version=FIRMWARE,
                        outbox_depth=len(self._pending))  # fmt: skip
        return Outgoing(t, self.device_id, self._topics[Channel.STATUS], encode(status), 0,
                        retain=True)  # fmt: skip

    def _flush(self, t: datetime, held: int) -> list[Outgoing]:
        """Everything recorded and not yet sent, in batches: first the ``held`` records kept
        while the link was down (``backlog``, JT/T 808's blind-area re-upload), then this
        step's; events before fixes."""
        pending, self._pending = self._pending, []
        out: list[Outgoing] = []
        for part, backlog in ((pending[:held], True), (pending[held:], False)):
            events = [r for r in part if isinstance(r, Event)]
            fixes = [r for r in part if isinstance(r, Fix)]
            n = self.rules.events_max
            for i in range(0, len(events), n):
                chunk = events[i : i + n]
                payload = encode(EventBatch(v=SCHEMA_VERSION, events=chunk, backlog=backlog))
                out.append(self._message(t, Channel.EVENT, payload, chunk))
            n = self.rules.batch_max
            for i in range(0, len(fixes), n):
                batch = fixes[i : i + n]
                payload = encode(FixBatch(v=SCHEMA_VERSION, fixes=batch, backlog=backlog))
                out.append(self._message(t, Channel.FIX, payload, batch))
        return out

    def _message(
        self, t: datetime, channel: Channel, payload: bytes, records: list[Event] | list[Fix]
    ) -> Outgoing:
        keys = tuple((r.boot_id, r.seq) for r in records)
        return Outgoing(t, self.device_id, self._topics[channel], payload, len(records), keys)
