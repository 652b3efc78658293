"""The agent: GNSS epochs → gate → region checks and reporting → outbox → uplink.

One asyncio ``TaskGroup`` of named tasks: ``gnss`` (read and assemble),
``io`` (tracker hardware signals), ``uplink`` (MQTT session), ``send-fixes``
and ``send-events`` (outbox → broker), ``heartbeat`` (retained status) and
``watchdog`` (GNSS fault and jamming while no epochs arrive). Everything the
agent records goes into the outbox first; nothing is sent that is not stored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import msgspec

from edge import __version__
from edge.agent import reporting, watchdog
from edge.agent.backlog import BacklogMarks
from edge.agent.commands import NonceBook, chase_request
from edge.agent.trust import Trust, evaluate, read_material, store_material
from edge.agent.uplink import NotConnectedError, Uplink
from edge.config import EdgeConfig
from edge.gate import GateConfig, GateState
from edge.gate import step as gate_step
from edge.nmea.assembler import GnssFix
from edge.nmea.replay import Pipeline
from edge.outbox import Outbox, OutboxFullError, StoredRecord
from protocols import hwio
from protocols.errors import SchemaError, TokenError
from protocols.messages import (
    SCHEMA_VERSION,
    CommandAck,
    CommitAck,
    DetailValue,
    DeviceState,
    Event,
    EventBatch,
    EventKind,
    Fix,
    FixBatch,
    FixMode,
    PolicyUpdate,
    SeqRange,
    SignedCommand,
    Status,
    decode,
    encode,
)
from protocols.plausibility import haversine_m
from protocols.regions import RegionState
from protocols.regions import step as region_step
from protocols.token_verify import Keyring, verify_command
from protocols.topics import Channel

log = logging.getLogger(__name__)

_PLACEHOLDER_BOOT = "0"


class Agent:
    def __init__(self, cfg: EdgeConfig, *, keyring: Keyring, uplink: Uplink | None = None) -> None:
        self.cfg = cfg
        self.device_id = cfg.device.id
        self.keyring = keyring
        self.outbox = Outbox.open(cfg.outbox.path, max_bytes=cfg.outbox.max_bytes)
        if self.outbox.moved_aside is not None:
            log.error("outbox was corrupt; moved aside to %s", self.outbox.moved_aside)
        self.nonces = NonceBook(cfg.outbox.path.with_name(cfg.outbox.path.name + ".nonces"))
        token, policy = read_material(cfg.trust.token_file, cfg.trust.policy_file)
        self.trust: Trust = evaluate(
            keyring, token, policy, device_id=self.device_id, now=datetime.now(UTC)
        )
        self.counts: Counter[str] = Counter()
        self.gate_state = GateState(
            config=GateConfig(
                max_hdop=cfg.gate.max_hdop,
                min_sats=cfg.gate.min_sats,
                max_jump_kmh=cfg.gate.max_jump_kmh,
                max_future_s=cfg.gate.max_future_s,
            )
        )
        self.region_state = RegionState()
        rep = cfg.reporting
        self.rules = reporting.ReportingRules(
            moving_interval=_td(rep.moving_interval_s),
            parked_interval=_td(rep.parked_interval_s),
            chase_interval=_td(rep.chase_interval_s),
            moving_speed_mps=rep.moving_speed_mps,
        )
        self.report_state = reporting.ReportingState()
        self.watch_rules = watchdog.WatchRules(fix_timeout_s=cfg.gnss.fix_timeout_s)
        self.watch = watchdog.WatchState(last_fix_s=time.monotonic())
        self.last_time: datetime | None = None  # latest GNSS time seen
        self.last_epoch_s = time.monotonic()
        self.ignition: bool | None = None
        self.ext_v: float | None = None
        self.batt_v: float | None = None
        self.battery_low = False
        self.last_fix: Fix | None = None
        self.new_fix = asyncio.Event()
        self.new_event = asyncio.Event()
        self.acked = asyncio.Event()
        self.recent_acks: list[SeqRange] = []
        self.gnss_done = asyncio.Event()
        self.stop = asyncio.Event()
        self.exit_code = 0
        self.uplink = uplink
        self._pipeline: Pipeline | None = None
        self.backlog = BacklogMarks()  # seqs of this boot stored while the modem had no link
        self.modem_ip: str | None = None  # the modem's address in its current link session

    # ------------------------------------------------------------------ recording
    def now(self) -> datetime:
        """GNSS time of the latest epoch (the tracker's clock of record), else the system clock."""
        return self.last_time or datetime.now(UTC)

    def _append(self, record: Fix | Event) -> StoredRecord | None:
        try:
            stored = self.outbox.append(record)
        except OutboxFullError:
            self.counts["outbox_full"] += 1
            log.warning("outbox full: record not stored (disk full even after eviction)")
            return None
        except SchemaError as exc:
            self.counts[f"unsendable_{exc.reason}"] += 1
            log.warning("record refused by the wire schema: %s", exc)
            return None
        if self.uplink is not None and not self.uplink.link_up:
            self.backlog.mark(stored.message.seq)
        evicted = self.outbox.pop_evicted()
        if evicted:
            self.counts["outbox_evicted"] += evicted
            log.warning("outbox over its size bound: %d oldest records evicted", evicted)
            self.emit(EventKind.OUTBOX_EVICTED, {"count": evicted})
        (self.new_fix if isinstance(record, Fix) else self.new_event).set()
        return stored

    def emit(
        self,
        kind: EventKind,
        detail: dict[str, DetailValue] | None = None,
        *,
        lat: float | None = None,
        lon: float | None = None,
        at: datetime | None = None,
    ) -> None:
        if lat is None and self.last_fix is not None:
            lat, lon = self.last_fix.lat, self.last_fix.lon
        event = Event(
            device_id=self.device_id, boot_id=_PLACEHOLDER_BOOT, seq=0,
            time=at or self.now(), kind=kind, lat=lat, lon=lon, detail=detail or {},
        )  # fmt: skip
        log.info("event %s %s", kind.value, detail or "")
        self._append(event)

    # ------------------------------------------------------------------ GNSS
    def on_epoch(self, g: GnssFix) -> None:
        self.last_epoch_s = time.monotonic()
        if self.last_time is None or g.time > self.last_time:
            self.last_time = g.time
        wall = datetime.now(UTC)
        last = self.gate_state.last
        self.gate_state, verdict = gate_step(self.gate_state, g, now=wall)
        if not verdict.accepted:
            self.counts[f"gate_{verdict.reason}"] += 1
            if verdict.reason in ("no_fix", "too_few_sats"):
                self._no_fix()
            elif verdict.reason in watchdog.SPOOF_REASONS:
                self._refused(verdict.reason, g, last)
            return
        if g.lat is None or g.lon is None:  # a fixed epoch without a position: count it
            self.counts["gate_no_position"] += 1
            return
        fix = Fix(
            device_id=self.device_id, boot_id=_PLACEHOLDER_BOOT, seq=0, time=g.time,
            lat=g.lat, lon=g.lon, alt_m=_clip(g.alt_m, -1000, 20000),
            speed_mps=max(0.0, g.speed_mps or 0.0), course_deg=g.course_deg,
            mode=FixMode.THREE_D if g.mode >= 3 else FixMode.TWO_D,
            hdop=_clip(g.hdop, 0, 99.99), sats=g.sats, ignition=self.ignition,
            ext_v=self.ext_v, batt_v=self.batt_v,
        )  # fmt: skip
        self.on_fix(fix)

    def on_fix(self, fix: Fix) -> None:
        moving = reporting.is_moving(fix, self.rules)
        self.watch, _ = watchdog.on_fix(self.watch, time.monotonic(), moving=moving)
        self.last_fix = fix
        if self.trust.enforcing and self.trust.policy is not None:
            self.region_state, signals = region_step(self.region_state, self.trust.policy, fix)
            for sig in signals:
                detail: dict[str, DetailValue] = {"areas": ",".join(sig.area_ids)}
                detail.update({k: v for k, v in sig.detail.items() if _scalar(v)})
                self.emit(sig.kind, detail, lat=sig.lat, lon=sig.lon, at=sig.time)
            self.report_state = reporting.set_violation(
                self.report_state, self.region_state.violation_active
            )
        self.report_state, due = reporting.step(self.report_state, fix, self.rules)
        if due:
            self._append(fix)
        else:
            self.counts["not_due"] += 1

    def _refused(self, reason: str, g: GnssFix, last: GnssFix | None) -> None:
        """The gate refused an impossible fix; 30 s of that is ``spoofing_suspected``."""
        self.watch, kinds = watchdog.on_refused(
            self.watch, time.monotonic(), reason, self.watch_rules
        )
        if not kinds:
            return
        detail: dict[str, DetailValue] = {"reason": reason, "dropped": self.watch.refused,
                                          "link_up": self.watch.link_up}  # fmt: skip
        if g.lat is not None and g.lon is not None:
            detail.update(rejected_lat=round(g.lat, 6), rejected_lon=round(g.lon, 6))
            if last is not None and last.lat is not None and last.lon is not None:
                metres = haversine_m(last.lat, last.lon, g.lat, g.lon)
                dt = max((g.time - last.time).total_seconds(), 1e-3)
                kmh = round(metres / dt * 3.6)
                detail.update(jump_km=round(metres / 1000.0, 1), implied_kmh=kmh)
        for kind in kinds:
            self.emit(kind, detail)

    def _no_fix(self) -> None:
        self.watch, kinds = watchdog.on_no_fix(self.watch, time.monotonic(), self.watch_rules)
        for kind in kinds:
            self.emit(kind, {"link_up": self.watch.link_up})

    async def read_gnss(self) -> None:
        from edge.agent.sources import SourceSpec, stream

        g = self.cfg.gnss
        spec = SourceSpec(kind=g.source, path=g.path, baudrate=g.baudrate, host=g.host, port=g.port)
        pipeline = Pipeline(max_line_bytes=g.max_line_bytes)
        self._pipeline = pipeline
        async for chunk in stream(spec):
            for epoch in pipeline.feed(chunk):
                self.on_epoch(epoch)
        for epoch in pipeline.close():
            self.on_epoch(epoch)
        self.counts.update({f"nmea_{k}": v for k, v in pipeline.rejected().items()})
        log.info("GNSS source ended; rejected sentences: %s", dict(pipeline.rejected()))
        self.gnss_done.set()

    async def watchdog_tick(self) -> None:
        """Once a second: a silent receiver still ages the fix (GNSS fault, jamming)."""
        while True:
            await asyncio.sleep(1.0)
            if time.monotonic() - self.last_epoch_s >= 2.0:
                if self._pipeline is not None:  # release an epoch held for its successor
                    for epoch in self._pipeline.assembler.flush():
                        self.on_epoch(epoch)
                self._no_fix()

    # ------------------------------------------------------------------ hardware I/O
    def on_signal(self, sig: hwio.HwSignal) -> None:
        if isinstance(sig, hwio.Power):
            self.ext_v = sig.ext_v
            kind = EventKind.POWER_LOST if sig.state == "lost" else EventKind.POWER_RESTORED
            self.emit(kind, {"ext_v": sig.ext_v})
        elif isinstance(sig, hwio.Ignition):
            self.ignition = sig.on
            self.watch = watchdog.with_io(self.watch, ignition=sig.on)
        elif isinstance(sig, hwio.Tamper):
            self.emit(EventKind.TAMPER, {"source": sig.source})
        elif isinstance(sig, hwio.Battery):
            self.batt_v = sig.batt_v
            if sig.low and not self.battery_low:
                self.emit(EventKind.LOW_BATTERY, {"batt_v": sig.batt_v})
            self.battery_low = sig.low
        elif isinstance(sig, hwio.Antenna):
            self.watch = watchdog.with_io(self.watch, antenna_ok=sig.state == "ok")
            if sig.state == "cut":
                self.emit(EventKind.ANTENNA_CUT)
        elif isinstance(sig, hwio.Link):
            self.watch = watchdog.with_io(self.watch, link_up=sig.up)
            self.modem_ip = _valid_ip(sig.ip) if sig.up else None
            if sig.up and sig.ip is not None and self.modem_ip is None:
                self.counts["io_bad_ip"] += 1
            if self.uplink is not None:
                self.uplink.set_link(sig.up)

    async def read_io(self) -> None:
        from edge.agent.sources import SourceSpec, stream

        io = self.cfg.io
        if io.source == "none":
            return
        spec = SourceSpec(kind=io.source, path=io.path, host=io.host, port=io.port)
        buf = b""
        async for chunk in stream(spec):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            if len(buf) > hwio.MAX_LINE:
                self.counts["io_line_too_long"] += 1
                buf = b""
            for line in lines:
                if not line.strip():
                    continue
                try:
                    self.on_signal(hwio.decode_signal(line.strip()))
                except SchemaError as exc:
                    self.counts[f"io_{exc.reason}"] += 1
                    log.warning("bad I/O line (%s)", exc.reason)

    # ------------------------------------------------------------------ uplink
    def status(self) -> Status:
        state = DeviceState.ONLINE if self.trust.authorized else DeviceState.UNAUTHORIZED
        return Status(
            v=SCHEMA_VERSION, device_id=self.device_id, state=state,
            boot_id=self.outbox.boot_id, agent_version=__version__,
            outbox_depth=self.outbox.depth(),
            reason=None if self.trust.authorized else self.trust.reason,
        )  # fmt: skip

    async def on_message(self, channel: Channel, payload: bytes) -> None:
        try:
            if channel is Channel.ACK:
                ack = decode(payload, CommitAck)
                if ack.device_id == self.device_id:
                    self.outbox.ack(ack.ranges)
                    self.recent_acks.extend(ack.ranges)
                    self.acked.set()
            elif channel is Channel.CMD:
                await self._command(decode(payload, SignedCommand))
            elif channel is Channel.POLICY:
                update = decode(payload, PolicyUpdate)
                self._apply_policy(update.token, update.policy, source="policy topic")
        except SchemaError as exc:
            self.counts[f"downlink_{exc.reason}"] += 1
            log.warning("bad %s message from the cloud: %s", channel.value, exc)

    def _apply_policy(self, token: str, policy: str, *, source: str) -> bool:
        trust = evaluate(self.keyring, token, policy, device_id=self.device_id, now=self.now())
        if not trust.authorized:
            self.counts[f"policy_refused_{trust.reason}"] += 1
            log.warning("refused token/policy from %s: %s", source, trust.reason)
            return False
        store_material(self.cfg.trust.token_file, self.cfg.trust.policy_file, token, policy)
        was_authorized = self.trust.authorized
        self.trust = trust
        self.region_state = RegionState()
        log.info("token and policy updated from %s", source)
        if not was_authorized:
            self.emit(EventKind.BOOT, {"authorized": True, "reason": "token installed"})
        return True

    async def _command(self, cmd: SignedCommand) -> None:
        wall = datetime.now(UTC)
        nonce = "unknown"
        try:
            claims = verify_command(
                self.keyring, cmd, device_id=self.device_id, now=wall, seen_nonces=self.nonces
            )
            nonce = claims.nonce
        except TokenError as exc:
            self.counts[f"command_refused_{exc.reason}"] += 1
            log.warning("command refused: %s", exc)
            nonce = _peek_nonce(cmd.jws) or nonce
            await self._ack(nonce, ok=False, reason=exc.reason)
            return
        self.nonces.add(claims.nonce, claims.expires_at, now=wall)
        ok, reason = True, None
        if claims.cmd == "chase_mode":
            req = chase_request(claims.args, self.now())
            if req.on and req.until is not None:
                self.report_state = reporting.start_chase(self.report_state, req.until)
                self.emit(EventKind.CHASE_MODE_ON, {"until": req.until.isoformat()})
            else:
                self.report_state = reporting.stop_chase(self.report_state)
                self.emit(EventKind.CHASE_MODE_OFF)
        elif claims.cmd == "policy_update":
            token, policy = claims.args.get("token"), claims.args.get("policy")
            if isinstance(token, str) and isinstance(policy, str):
                ok = self._apply_policy(token, policy, source="command")
                reason = None if ok else "policy_refused"
            else:
                ok, reason = False, "missing_token_or_policy"
        elif claims.cmd == "reboot":
            self.stop.set()
        await self._ack(claims.nonce, ok=ok, reason=reason)

    async def _ack(self, nonce: str, *, ok: bool, reason: str | None) -> None:
        if self.uplink is None or len(nonce) < 8:
            return
        ack = CommandAck(v=SCHEMA_VERSION, device_id=self.device_id, nonce=nonce[:64],
                         ok=ok, reason=reason)  # fmt: skip
        try:
            await self.uplink.publish(Channel.CMD_ACK, encode(ack))
        except NotConnectedError:
            log.info("command ack not sent: uplink down")

    async def _send_loop(self, kind: str) -> None:
        assert self.uplink is not None
        up = self.uplink
        rep = self.cfg.reporting
        timeout = self.cfg.uplink.ack_timeout_s
        wake = self.new_fix if kind == "fix" else self.new_event
        while True:
            await up.connected.wait()
            if kind == "fix" and rep.batch_linger_s:
                await asyncio.sleep(rep.batch_linger_s)
            limit = rep.batch_max if kind == "fix" else 100
            batch = self.outbox.take_batch(kind, limit, resend_after_s=timeout)  # type: ignore[arg-type]
            if not batch:
                wake.clear()
                await _wait_any(wake, within=1.0)
                continue
            try:
                for channel, payload in self._batch_payloads(kind, batch):
                    await up.publish(channel, payload)
            except NotConnectedError:
                continue
            self.counts[f"sent_{kind}"] += len(batch)
            # One batch in flight: wait for its CommitAck (or the timeout, then resend).
            want = {(r.boot_id, r.seq) for r in batch}
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not _covered(want, self.recent_acks):
                self.acked.clear()
                await _wait_any(self.acked, within=min(1.0, deadline - time.monotonic()))
            if len(self.recent_acks) > 1000:
                self.recent_acks = self.recent_acks[-100:]

    def _batch_payloads(self, kind: str, batch: list[StoredRecord]) -> list[tuple[Channel, bytes]]:
        """The batch as one or two messages: the blind-area backlog flagged, the rest live."""
        boot = self.outbox.boot_id
        held = [r.message for r in batch
                if r.message.boot_id == boot and r.message.seq in self.backlog]  # fmt: skip
        live = [r.message for r in batch
                if not (r.message.boot_id == boot and r.message.seq in self.backlog)]  # fmt: skip
        out: list[tuple[Channel, bytes]] = []
        for part, backlog in ((held, True), (live, False)):
            if not part:
                continue
            if kind == "fix":
                fixes = [m for m in part if isinstance(m, Fix)]
                out.append((Channel.FIX, encode(FixBatch(v=SCHEMA_VERSION, fixes=fixes,
                                                         backlog=backlog))))  # fmt: skip
            else:
                evs = [m for m in part if isinstance(m, Event)]
                out.append((Channel.EVENT, encode(EventBatch(v=SCHEMA_VERSION, events=evs,
                                                             backlog=backlog))))  # fmt: skip
        return out

    def on_uplink_connected(self) -> None:
        """A new broker session: say from which address (the cloud checks its province)."""
        if self.modem_ip is not None:
            self.emit(EventKind.SESSION, {"ip": self.modem_ip})

    async def heartbeat(self) -> None:
        assert self.uplink is not None
        while True:
            await asyncio.sleep(self.cfg.reporting.heartbeat_interval_s)
            try:
                await self.uplink.publish(Channel.STATUS, encode(self.status()), retain=True)
            except NotConnectedError:
                continue

    # ------------------------------------------------------------------ lifecycle
    async def run(self, *, exit_when_drained: bool = False) -> int:
        detail: dict[str, DetailValue] = {"agent_version": __version__,
                                          "authorized": self.trust.authorized}  # fmt: skip
        self.emit(EventKind.BOOT, detail, at=datetime.now(UTC))
        if not self.trust.authorized:
            log.warning("no valid terminal token (%s): recording, not enforcing", self.trust.reason)
            self.emit(EventKind.UNAUTHORIZED, {"reason": self.trust.reason}, at=datetime.now(UTC))
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self.read_gnss(), name="gnss"),
                    tg.create_task(self.read_io(), name="io"),
                    tg.create_task(self.watchdog_tick(), name="watchdog"),
                ]
                if self.uplink is not None:
                    tasks += [
                        tg.create_task(self.uplink.run(), name="uplink"),
                        tg.create_task(self._send_loop("fix"), name="send-fixes"),
                        tg.create_task(self._send_loop("event"), name="send-events"),
                        tg.create_task(self.heartbeat(), name="heartbeat"),
                    ]
                tg.create_task(self._until_stopped(tasks, exit_when_drained), name="stopper")
        finally:
            log.info("agent stopping; counts: %s; outbox depth %d",
                     dict(self.counts), self.outbox.depth())  # fmt: skip
            self.outbox.close()
        return self.exit_code

    async def _until_stopped(self, tasks: list[asyncio.Task[None]], drained: bool) -> None:
        while not self.stop.is_set():
            await _wait_any(self.stop, within=0.5)
            if drained and self.gnss_done.is_set() and self.outbox.depth() == 0:
                break
        for t in tasks:
            t.cancel()


def _covered(want: set[tuple[str, int]], ranges: list[SeqRange]) -> bool:
    return all(any(r.boot_id == b and r.first <= s <= r.last for r in ranges) for b, s in want)


def _td(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _clip(v: float | None, lo: float, hi: float) -> float | None:
    return None if v is None else min(max(v, lo), hi)


def _scalar(v: object) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _peek_nonce(jws: str) -> str | None:
    """The nonce of a refused command, read without trusting it, for the refusal ack."""
    import base64

    try:
        body = jws.split(".")[1]
        claims = msgspec.json.decode(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError, msgspec.DecodeError):
        return None
    nonce = claims.get("nonce") if isinstance(claims, dict) else None
    return nonce if isinstance(nonce, str) and 8 <= len(nonce) <= 64 else None


async def _wait_any(event: asyncio.Event, within: float) -> None:
    """Wait for ``event`` at most ``within`` seconds."""
    try:
        await asyncio.wait_for(event.wait(), timeout=max(0.0, within))
    except TimeoutError:
        return


def _valid_ip(text: str | None) -> str | None:
    """The modem's address if it is an IP literal (the I/O shim is not trusted blindly)."""
    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
