"""The risk worker loop: inbox → rules → alerts, one transaction per round.

A round claims inbox rows (``FOR UPDATE SKIP LOCKED``) and an advisory lock
per vehicle, so several workers split the fleet and one vehicle is never run
by two at once. Everything a round does (deleting its inbox rows, new rule
states and snapshots, alerts, history, webhook messages) commits together: a
worker killed mid-round leaves no trace and its work is redone by the next.

Late data (GNSS time at or before a vehicle's rule position) re-runs the
vehicle from the newest snapshot before it; episodes keep their keys, so the
alerts table absorbs the repeat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import psycopg

from cloud.metrics import RISK_INPUTS, RISK_LAG, RISK_REPLAYS, RISK_RULE_ERRORS
from cloud.risk import alerts, daily, scoring, store
from cloud.risk.context import NoPlaces, load_contexts
from cloud.risk.engine import RuleConfigs, VehicleState, default_configs, run
from cloud.risk.fleet_rules import run_gathering, visits_from
from cloud.risk.geo import CHINA_TZ
from cloud.risk.model import DeviceKind, PlaceLookup, Signal, VehicleContext
from cloud.risk.rules.gathering import GatheringConfig, PoiVisit

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


@dataclass(slots=True)
class RoundStats:
    vehicles: int = 0
    inputs: int = 0
    replays: int = 0
    signals: int = 0
    alerts: alerts.Outcome = field(default_factory=alerts.Outcome)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    batch_rows: int = 200
    snapshot_horizon: timedelta = timedelta(days=7)
    alert_policy: alerts.AlertPolicy = field(default_factory=alerts.AlertPolicy)


class RiskWorker:
    """Runs rounds against one connection; I/O only here and in ``store``/``alerts``."""

    def __init__(
        self,
        conn: Conn,
        *,
        places: Callable[[str], PlaceLookup] | None = None,
        notify: alerts.Notifier = alerts.no_webhooks,
        options: WorkerOptions | None = None,
    ) -> None:
        self.conn = conn
        self.places: Callable[[str], PlaceLookup] = places or (lambda _tenant: NoPlaces())
        self.notify = notify
        self.options = options or WorkerOptions()
        self._configs: dict[str, RuleConfigs] = {}

    def _tenant_configs(self, tenant: str) -> RuleConfigs:
        cached = self._configs.get(tenant)
        if cached is None:
            rows = self.conn.execute(
                "SELECT rule, config FROM tenant_rule_config WHERE tenant_id = %s", (tenant,)
            ).fetchall()
            try:
                cached = default_configs(dict(rows))
            except msgspec.ValidationError as exc:
                log.warning("tenant %s rule config invalid (%s): using the defaults", tenant, exc)
                cached = default_configs()
            self._configs[tenant] = cached
        return cached

    def _gathering_config(self, tenant: str) -> GatheringConfig:
        row = self.conn.execute(
            "SELECT config FROM tenant_rule_config WHERE tenant_id = %s AND rule = 'gathering'",
            (tenant,),
        ).fetchone()
        try:
            return msgspec.convert(row[0] if row else {}, GatheringConfig)
        except msgspec.ValidationError as exc:
            log.warning("tenant %s gathering config invalid (%s): using the defaults", tenant, exc)
            return GatheringConfig()

    def _watermarks(self, tenants: set[str]) -> dict[str, datetime]:
        """Per tenant: the newest GNSS time run, capped at the wall clock (ticks' "now")."""
        now = datetime.now(UTC)
        rows = self.conn.execute(
            "SELECT tenant_id, max(pos_time) FROM rule_state WHERE tenant_id = ANY(%s) "
            "GROUP BY tenant_id",
            (sorted(tenants),),
        ).fetchall()
        return {t: min(now, w) for t, w in rows if w is not None}

    def sweep(self) -> int:
        """Queue a tick for every vehicle with rule state (silence rules need time to pass)."""
        with self.conn.transaction():
            rows = self.conn.execute("SELECT vehicle_id, tenant_id FROM rule_state").fetchall()
            store.enqueue_ticks(self.conn, [(v, t) for v, t in rows], now=datetime.now(UTC))
        return len(rows)

    def round(self) -> RoundStats:
        stats = RoundStats()
        with self.conn.transaction():
            claim = store.claim(self.conn, max_rows=self.options.batch_rows)
            if claim.since:
                self._run(claim, stats)
        return stats

    def _start(
        self, vehicle: int, since: datetime | None, stored: store.StoredState | None
    ) -> tuple[VehicleState, datetime | None, bool] | None:
        """Where to begin: (state, read inputs from, is a replay); None: nothing to do."""
        if stored is None:
            if since is None:
                return None  # a tick for a vehicle that never ran
            return VehicleState(), since, False
        state = stored.state
        seen = max(filter(None, (state.pos_time, stored.tick_time)))
        if since is None or since > seen:
            return state, state.pos_time, False
        snap = store.snapshot_before(self.conn, vehicle, since)
        if snap is not None:
            return snap, snap.pos_time, True
        if state.pos_time is None or since >= state.pos_time - self.options.snapshot_horizon:
            return VehicleState(), None, True  # younger than the horizon: re-run it whole
        log.warning(
            "vehicle %s: data at %s is older than its snapshots; run afresh", vehicle, since
        )
        return VehicleState(), since, True

    def _run(self, claim: store.Claim, stats: RoundStats) -> None:
        conn = self.conn
        vehicles = sorted(claim.since)
        contexts = load_contexts(conn, vehicles, self.places)
        stored = store.load_states(conn, vehicles)
        plans: dict[int, tuple[VehicleState, bool]] = {}
        starts: dict[int, datetime | None] = {}
        for v in vehicles:
            if v not in contexts:
                continue
            start = self._start(v, claim.since[v], stored.get(v))
            if start is None:
                continue
            state, read_from, replay = start
            plans[v] = (state, replay)
            starts[v] = read_from
            stats.replays += int(replay)
        kinds: dict[str, DeviceKind] = {
            d.id: d.kind for v in plans for d in contexts[v].devices.values()
        }
        inputs = store.load_inputs(conn, starts, kinds)
        ticks = self._watermarks({contexts[v].tenant_id for v in plans})
        visits: dict[str, list[PoiVisit]] = {}
        for v, (state, replay) in plans.items():
            ctx = contexts[v]
            tick = ticks.get(ctx.tenant_id) if claim.since[v] is None else None
            signals = self._run_vehicle(v, ctx, state, inputs.get(v, []), tick, replay, stats)
            visits.setdefault(ctx.tenant_id, []).extend(visits_from(signals, v))
        for tenant, tenant_visits in visits.items():
            if tenant_visits:
                run_gathering(
                    conn, tenant, tenant_visits,
                    loans={v: contexts[v].loan_id for v in plans},
                    config=self._gathering_config(tenant), policy=self.options.alert_policy,
                    notify=self.notify, outcome=stats.alerts,
                )  # fmt: skip
        RISK_REPLAYS.inc(stats.replays)
        row = conn.execute("SELECT count(*) FROM risk_inbox").fetchone()
        RISK_LAG.set(row[0] if row else 0)

    def _run_vehicle(
        self,
        vehicle: int,
        ctx: VehicleContext,
        state: VehicleState,
        inputs: list[Any],
        tick: datetime | None,
        replay: bool,
        stats: RoundStats,
    ) -> list[Signal]:
        result = run(state, inputs, ctx, self._tenant_configs(ctx.tenant_id), tick=tick)
        for rule, error in result.errors:
            RISK_RULE_ERRORS.labels(rule=rule).inc()
            log.error("vehicle %s: rule %s raised %s", vehicle, rule, error)
        for signal in result.signals:
            alerts.apply(
                self.conn, ctx.tenant_id, vehicle, ctx.loan_id, signal,
                policy=self.options.alert_policy, notify=self.notify, outcome=stats.alerts,
            )  # fmt: skip
        if result.signals or tick is not None:
            now = max(filter(None, (result.state.pos_time, result.state.tick_time)))
            scoring.update(self.conn, ctx.tenant_id, vehicle, ctx.loan_id, now, self.notify)
        store.save_state(self.conn, vehicle, ctx.tenant_id, result.state)
        store.save_snapshots(self.conn, vehicle, result.snapshots)
        RISK_INPUTS.labels(tenant=ctx.tenant_id).inc(result.inputs)
        stats.vehicles += 1
        stats.inputs += result.inputs
        stats.signals += len(result.signals)
        if replay:
            log.info("vehicle %s: re-ran %d inputs after late data", vehicle, result.inputs)
        return result.signals

    def score_days(self, today: date) -> list[daily.DailyOutcome]:
        """The anomaly model's scoring of ended days that are due (:mod:`cloud.risk.daily`)."""
        return daily.score_due(self.conn, self.notify, today=today)

    def prune(self) -> int:
        with self.conn.transaction():
            return store.prune_snapshots(
                self.conn, datetime.now(UTC) - self.options.snapshot_horizon
            )


def run_forever(
    worker: RiskWorker,
    *,
    poll_interval_s: float,
    tick_interval_s: float,
    should_stop: Any,
    on_round: Any = None,
    daily_check_s: float = 0.0,
) -> None:
    """Rounds until ``should_stop()``; sweeps ticks every ``tick_interval_s``; prunes hourly;
    every ``daily_check_s`` (0: never) scores the ended days due for the anomaly model."""
    next_tick = time.monotonic() + tick_interval_s
    next_prune = time.monotonic() + 3600.0
    next_daily = time.monotonic() + min(daily_check_s, 60.0)
    while not should_stop():
        stats = worker.round()
        if on_round is not None:
            on_round(stats)
        now = time.monotonic()
        if now >= next_tick:
            worker.sweep()
            next_tick = now + tick_interval_s
        if now >= next_prune:
            worker.prune()
            next_prune = now + 3600.0
        if daily_check_s and now >= next_daily:
            worker.score_days(datetime.now(CHINA_TZ).date())
            next_daily = now + daily_check_s
        if stats.vehicles == 0:
            time.sleep(poll_interval_s)
