"""Webhooks end to end: the outbox in PostgreSQL, the dispatcher, a real aiohttp receiver.

The receiver listens on a free loopback port (so the tests turn the SSRF guard
off with ``allow_private_targets``, except where they test the guard) and checks
every signature with the spec-only verifier in ``tests/unit/webhooks/spec.py``,
never with the ``standardwebhooks`` library the dispatcher signs with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp import web

from cloud.console import main
from cloud.localsvc import free_port
from cloud.metrics import REGISTRY
from cloud.webhooks import admin, enqueue
from cloud.webhooks.config import WebhookSettings
from cloud.webhooks.dispatcher import Dispatcher
from cloud.webhooks.events import WebhookError
from tests.integration.ingest_support import TENANT, prepare_db
from tests.unit.webhooks.spec import spec_verify

pytestmark = pytest.mark.services

FAST = WebhookSettings(
    retry_schedule_s=(0, 0.2, 0.5, 0.5),
    jitter_fraction=0,
    request_timeout_s=1.0,
    lease_s=2.5,
    poll_interval_s=0.05,
    allow_private_targets=True,
    max_logged_body_bytes=64,
)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = "ok"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def msg_id(self) -> str:
        return self.headers["webhook-id"]

    def doc(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class Receiver:
    """Answers POSTs to /<name> from a script per name (then 200), recording each request."""

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[Received] = []
        self.scripts: dict[str, list[Reply]] = {}

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def on(self, name: str, *replies: Reply) -> None:
        self.scripts.setdefault(name, []).extend(replies)

    def at(self, name: str) -> list[Received]:
        return [r for r in self.requests if r.path == f"/{name}"]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            Received(
                request.path,
                {k.lower(): v for k, v in request.headers.items()},
                body,
                time.monotonic(),
            )
        )
        script = self.scripts.get(request.path.lstrip("/"))
        reply = script.pop(0) if script else Reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return web.Response(status=reply.status, text=reply.body, headers=reply.headers)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{name}", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    for _ in range(5):
        rec.port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", rec.port)
        try:
            await site.start()
            break
        except OSError:
            continue
    try:
        yield rec
    finally:
        await runner.cleanup()


@asynccontextmanager
async def dispatching(dsn: str, settings: WebhookSettings = FAST) -> AsyncIterator[Dispatcher]:
    d = Dispatcher(dsn, settings, worker_id=f"test-{os.getpid()}")
    task = asyncio.create_task(d.run(), name="dispatcher")
    try:
        yield d
    finally:
        d.stop()
        await asyncio.wait_for(task, timeout=15)


async def until(check: Callable[[], bool], *, within: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def q(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def states(dsn: str) -> list[str]:
    return [str(r[0]) for r in q(dsn, "SELECT state FROM webhook_deliveries ORDER BY id")]


def settled(dsn: str) -> bool:
    return all(s in ("succeeded", "dead") for s in states(dsn))


def add_endpoint(dsn: str, url: str, *events: str, tenant: str = TENANT) -> tuple[str, str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return admin.add_endpoint(conn, tenant, url, event_types=events, allow_private=True)


def send(dsn: str, event_type: str, payload: dict[str, Any], **kw: Any) -> str:
    with psycopg.connect(dsn) as conn:  # commits on leaving the block
        return enqueue(conn, TENANT, event_type, payload, **kw)


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def db(fresh_db: str) -> str:
    prepare_db(fresh_db, [])
    return fresh_db


async def test_signed_deliveries_arrive_filtered_by_event_type(db: str) -> None:
    async with receiver() as rx:
        _, all_secret = add_endpoint(db, rx.url("all"))
        _, alerts_secret = add_endpoint(db, rx.url("alerts"), "alert.opened", "alert.resolved")
        before = counter("vgr_webhook_deliveries_total", tenant=TENANT, outcome="succeeded")
        ids = [
            send(db, "alert.opened", {"alert_id": 1, "rule": "leaves_home_city"}),
            send(db, "device.offline", {"device_id": "860000000000001"}),
            send(db, "alert.resolved", {"alert_id": 1, "note": "车辆已返回"}),
        ]
        async with dispatching(db):
            await until(lambda: len(rx.requests) == 5 and settled(db), what="5 deliveries")
        assert sorted(r.msg_id for r in rx.at("all")) == sorted(ids)
        assert sorted(r.msg_id for r in rx.at("alerts")) == sorted([ids[0], ids[2]])
        for req in rx.requests:
            secret = all_secret if req.path == "/all" else alerts_secret
            assert spec_verify(secret, req.headers, req.body)
            assert abs(int(req.headers["webhook-timestamp"]) - time.time()) < 30
            assert req.headers["content-type"] == "application/json"
        doc = next(r for r in rx.at("all") if r.msg_id == ids[2]).doc()
        assert doc["type"] == "alert.resolved"
        assert doc["data"] == {"alert_id": 1, "note": "车辆已返回"}
        assert doc["timestamp"].endswith("Z")
    assert states(db) == ["succeeded"] * 5
    logged = q(db, "SELECT outcome, status, latency_ms FROM webhook_attempts")
    assert len(logged) == 5
    assert all(o == "succeeded" and s == 200 and ms >= 0 for o, s, ms in logged)
    after = counter("vgr_webhook_deliveries_total", tenant=TENANT, outcome="succeeded")
    assert after - before == 5


async def test_500_then_200_is_retried_with_the_same_webhook_id(db: str) -> None:
    async with receiver() as rx:
        _, secret = add_endpoint(db, rx.url("flaky"))
        rx.on("flaky", Reply(500, body="x" * 5000), Reply(502, body="bad gateway"))
        mid = send(db, "vehicle.risk_changed", {"vehicle_id": 9, "score": 0.8})
        async with dispatching(db):
            await until(lambda: settled(db) and len(rx.requests) == 3, what="third attempt")
    assert [r.msg_id for r in rx.requests] == [mid] * 3
    assert all(spec_verify(secret, r.headers, r.body) for r in rx.requests)
    assert len({r.body for r in rx.requests}) == 1  # the same bytes every time
    gaps = [b.at - a.at for a, b in zip(rx.requests, rx.requests[1:], strict=False)]
    assert gaps[0] >= 0.18  # schedule: 0.2 s after the first failure
    assert gaps[1] >= 0.45  # then 0.5 s
    rows = q(db, "SELECT attempt_no, outcome, status, error, response_body FROM webhook_attempts "
                 "ORDER BY attempt_no")  # fmt: skip
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (1, "http_error", 500), (2, "http_error", 502), (3, "succeeded", 200),
    ]  # fmt: skip
    assert rows[0][3] == "HTTP 500"
    assert rows[0][4] == "x" * 64  # the response body is kept, truncated
    assert q(db, "SELECT state, attempt_no, last_status FROM webhook_deliveries") == [
        ("succeeded", 3, 200)
    ]


async def test_timeout_is_retried(db: str) -> None:
    async with receiver() as rx:
        _, secret = add_endpoint(db, rx.url("slow"))
        rx.on("slow", Reply(200, delay_s=2.0))
        mid = send(db, "device.unauthorized", {"device_id": "860000000000002"})
        async with dispatching(db):
            await until(lambda: settled(db), what="success after a timeout")
    assert [r.msg_id for r in rx.requests] == [mid, mid]
    assert all(spec_verify(secret, r.headers, r.body) for r in rx.requests)
    rows = q(db, "SELECT outcome, error, latency_ms FROM webhook_attempts ORDER BY attempt_no")
    assert [r[0] for r in rows] == ["timeout", "succeeded"]
    assert "within 1 s" in rows[0][1]
    assert 900 <= rows[0][2] < 2000


async def test_exhausted_retries_become_a_dead_letter(db: str) -> None:
    async with receiver() as rx:
        add_endpoint(db, rx.url("down"))
        rx.on("down", *[Reply(503)] * 10)
        before = counter("vgr_webhook_dead_letters_total", tenant=TENANT, reason="exhausted")
        send(db, "alert.opened", {"alert_id": 3})
        async with dispatching(db):
            await until(lambda: states(db) == ["dead"], what="dead letter")
        assert len(rx.requests) == len(FAST.retry_schedule_s)
    after = counter("vgr_webhook_dead_letters_total", tenant=TENANT, reason="exhausted")
    assert after - before == 1


async def test_410_gone_disables_the_endpoint(db: str) -> None:
    async with receiver() as rx:
        ep, _ = add_endpoint(db, rx.url("gone"))
        other, _ = add_endpoint(db, rx.url("fine"))
        rx.on("gone", Reply(410))
        send(db, "alert.opened", {"alert_id": 1})
        send(db, "alert.opened", {"alert_id": 2})
        async with dispatching(db, FAST.model_copy(update={"concurrency": 1})):
            await until(lambda: settled(db) and len(rx.at("fine")) == 2, what="settled")
            assert len(rx.at("gone")) == 1  # the second one is never sent
            send(db, "alert.opened", {"alert_id": 3})
            await until(lambda: len(rx.at("fine")) == 3, what="third to the enabled one")
    with psycopg.connect(db) as conn:
        eps = {e.id: e for e in admin.list_endpoints(conn)}
        dead = admin.list_deliveries(conn, endpoint_id=ep)
    assert not eps[ep].enabled
    assert "410 Gone" in (eps[ep].disabled_reason or "")
    assert eps[other].enabled
    assert sorted(d.state for d in dead) == ["dead", "dead"]  # none for the third message
    assert any("endpoint disabled" in (d.last_error or "") for d in dead)


async def test_retry_after_is_honoured_and_capped(db: str) -> None:
    settings = FAST.model_copy(update={"retry_after_max_s": 1.0})
    async with receiver() as rx:
        add_endpoint(db, rx.url("busy"))
        rx.on("busy", Reply(429, headers={"Retry-After": "120"}))
        send(db, "alert.opened", {"alert_id": 4})
        async with dispatching(db, settings):
            await until(lambda: settled(db), what="success after Retry-After")
    first, second = rx.requests
    assert 0.95 <= second.at - first.at < 3.0  # the schedule says 0.2 s, the cap 1 s


async def test_a_rolled_back_enqueue_sends_nothing(db: str) -> None:
    async with receiver() as rx:
        add_endpoint(db, rx.url("rx"))
        lost = []
        with psycopg.connect(db) as conn:  # enqueue opens the implicit transaction
            lost.append(enqueue(conn, TENANT, "alert.opened", {"alert_id": 666}))
            conn.rollback()
            conn.execute("SELECT 1")  # a transaction in progress, as the engine's would be
            lost.append(enqueue(conn, TENANT, "alert.opened", {"alert_id": 667}))
            conn.rollback()
        with psycopg.connect(db, autocommit=True) as conn:
            # the risk worker's pattern; the error rolls the block back
            with contextlib.suppress(LookupError), conn.transaction():
                lost.append(enqueue(conn, TENANT, "alert.opened", {"alert_id": 668}))
                raise LookupError("the alert fails after its webhook was enqueued")
            kept = enqueue(conn, TENANT, "alert.opened", {"alert_id": 7})  # commits itself
        async with dispatching(db):
            await until(lambda: settled(db) and len(rx.requests) >= 1, what="the committed one")
            await asyncio.sleep(0.3)
    assert [r.msg_id for r in rx.requests] == [kept]
    assert q(db, "SELECT id FROM webhook_messages") == [(kept,)]
    assert len(set(lost)) == 3


async def test_enqueue_with_a_known_message_id_is_a_no_op(db: str) -> None:
    q(db, "INSERT INTO tenants (id, name) VALUES ('other', 'Other') RETURNING id")
    async with receiver() as rx:
        add_endpoint(db, rx.url("rx"))
        mid = "msg_alert-42-opened"
        assert send(db, "alert.opened", {"alert_id": 42}, message_id=mid) == mid
        assert send(db, "alert.opened", {"alert_id": 42}, message_id=mid) == mid
        with psycopg.connect(db) as conn, pytest.raises(WebhookError, match="already exists"):
            enqueue(conn, "other", "alert.opened", {}, message_id=mid)
        async with dispatching(db):
            await until(lambda: settled(db) and len(rx.requests) >= 1, what="delivery")
            await asyncio.sleep(0.3)
    assert [r.msg_id for r in rx.requests] == [mid]
    assert q(db, "SELECT count(*) FROM webhook_deliveries") == [(1,)]


async def test_replay_redelivers_with_the_same_id(db: str) -> None:
    async with receiver() as rx:
        ep, secret = add_endpoint(db, rx.url("rx"))
        mid = send(db, "alert.opened", {"alert_id": 5})
        async with dispatching(db):
            await until(lambda: settled(db) and len(rx.requests) == 1, what="first delivery")
            with psycopg.connect(db) as conn:
                done = admin.replay(conn, mid)
            assert [(r.endpoint_id, r.series) for r in done] == [(ep, 2)]
            await until(lambda: len(rx.requests) == 2 and settled(db), what="replay")
    assert [r.msg_id for r in rx.requests] == [mid, mid]
    assert all(spec_verify(secret, r.headers, r.body) for r in rx.requests)
    assert q(db, "SELECT series, state FROM webhook_deliveries ORDER BY series") == [
        (1, "succeeded"), (2, "succeeded"),
    ]  # fmt: skip


async def test_rotation_signs_with_both_secrets_until_the_old_one_expires(db: str) -> None:
    async with receiver() as rx:
        ep, old = add_endpoint(db, rx.url("rx"))
        with psycopg.connect(db) as conn:
            new, until_old = admin.rotate_secret(conn, ep, overlap_s=3600)
        send(db, "alert.opened", {"alert_id": 1})
        async with dispatching(db):
            await until(lambda: len(rx.requests) == 1 and settled(db), what="overlap delivery")
            with psycopg.connect(db) as conn:
                newest, _ = admin.rotate_secret(conn, ep, overlap_s=0)  # old ones stop now
            send(db, "alert.opened", {"alert_id": 2})
            await until(lambda: len(rx.requests) == 2 and settled(db), what="after expiry")
    during, after = rx.requests
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert spec_verify(old, during.headers, during.body)
    assert spec_verify(new, during.headers, during.body)
    assert after.headers["webhook-signature"].count("v1,") == 1
    assert spec_verify(newest, after.headers, after.body)
    assert not spec_verify(old, after.headers, after.body)
    assert not spec_verify(new, after.headers, after.body)
    assert until_old.timestamp() > time.time() + 3500


async def test_ssrf_guard_refuses_loopback_and_keeps_running(db: str) -> None:
    guarded = FAST.model_copy(update={"allow_private_targets": False})
    async with receiver() as rx:
        literal, _ = add_endpoint(db, rx.url("literal"))
        named, _ = add_endpoint(db, f"http://localhost:{rx.port}/named")
        send(db, "alert.opened", {"alert_id": 1})
        async with dispatching(db, guarded):
            await until(lambda: states(db) == ["dead", "dead"], what="both refused")
        assert rx.requests == []
    rows = q(
        db,
        """SELECT d.endpoint_id, a.outcome FROM webhook_attempts a
                    JOIN webhook_deliveries d ON d.id = a.delivery_id ORDER BY a.id""",
    )
    by_endpoint: dict[str, list[str]] = {}
    for endpoint_id, outcome in rows:
        by_endpoint.setdefault(endpoint_id, []).append(outcome)
    assert by_endpoint[literal] == ["refused_loopback"]  # a literal address: dead at once
    # a name may resolve elsewhere later, so it is retried on the schedule
    assert by_endpoint[named] == ["refused_loopback"] * len(FAST.retry_schedule_s)


def write_config(tmp: Path, dsn: str, settings: WebhookSettings, name: str = "cloud") -> Path:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        f"""kind = "cloud"
[database]
dsn = "{dsn}"
[webhooks]
retry_schedule_s = {list(settings.retry_schedule_s)}
jitter_fraction = {settings.jitter_fraction}
request_timeout_s = {settings.request_timeout_s}
lease_s = {settings.lease_s}
poll_interval_s = {settings.poll_interval_s}
allow_private_targets = {str(settings.allow_private_targets).lower()}
concurrency = {settings.concurrency}
metrics_port = 0
"""
    )
    return cfg


@contextmanager
def dispatcher_process(cfg: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    log_path = cfg.parent / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloud.console", "cloud", "webhooks", "dispatch",
             "--config", str(cfg), "--worker-id", name],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def test_killed_dispatcher_loses_nothing(db: str, tmp_path: Path) -> None:
    settings = FAST.model_copy(update={"concurrency": 4, "lease_s": 2.0})
    cfg = write_config(tmp_path, db, settings)
    async with receiver() as rx:
        _, secret = add_endpoint(db, rx.url("rx"))
        rx.on("rx", *[Reply(200, delay_s=0.4)] * 200)
        ids = {send(db, "alert.opened", {"alert_id": i}) for i in range(30)}
        with dispatcher_process(cfg, "first") as first:
            await until(lambda: len(rx.requests) >= 6, within=30, what="first dispatcher busy")
            first.send_signal(signal.SIGKILL)  # mid-request: four are in flight
            first.wait(timeout=10)
        assert not settled(db)
        with dispatcher_process(cfg, "second"), dispatcher_process(cfg, "third"):
            await until(lambda: settled(db), within=60, what="every delivery settled")
        assert sorted(set(states(db))) == ["succeeded"]
    received = {r.msg_id for r in rx.requests}
    assert received == ids  # every message at least once, under its own stable id
    assert all(spec_verify(secret, r.headers, r.body) for r in rx.requests)
    abandoned = q(db, "SELECT count(*) FROM webhook_attempts WHERE outcome = 'abandoned'")[0][0]
    assert abandoned >= 1
    # duplicates come only from attempts the killed dispatcher never finished
    assert len(rx.requests) <= len(ids) + abandoned
    workers = {r[0] for r in q(db, "SELECT DISTINCT dispatcher FROM webhook_attempts")}
    assert {"first", "second", "third"} <= workers


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


class Vgr:
    """Runs ``vgr`` commands in this process (the dispatcher test runs it as a subprocess)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str) -> Ran:
        ran = self.run(*args)
        assert ran.returncode == 0, f"vgr {' '.join(args)} -> {ran.returncode}: {ran.stderr}"
        return ran

    def run(self, *args: str) -> Ran:
        self.capsys.readouterr()
        code = main(list(args))
        out = self.capsys.readouterr()
        return Ran(code, out.out, out.err)

    def fails(self, *args: str) -> str:
        """Run a command that must fail with exit code 1; its stderr."""
        ran = self.run(*args)
        assert ran.returncode == 1, ran.stderr
        return ran.stderr


def test_cli_admin_commands(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vgr = Vgr(capsys)
    fails = vgr.fails
    c = ["cloud", "webhooks"]
    cfg = ["--config", str(write_config(tmp_path, db, FAST))]
    events = "alert.opened,device.offline"
    url = "http://127.0.0.1:9/hook"
    out = vgr(*c, "add-endpoint", *cfg, "--tenant", TENANT, "--url", url, "--events", events)
    ep, secret = out.stdout.split()
    assert ep.startswith("ep_")
    assert secret.startswith("whsec_")
    assert "shown once" in out.stderr
    listed = vgr(*c, "list", *cfg).stdout
    assert f"{ep}\t{TENANT}\t{url}\t{events}\tenabled\tsecrets=1" in listed
    assert secret not in listed
    rotated = vgr(*c, "rotate-secret", *cfg, ep).stdout.strip()
    assert rotated.startswith("whsec_")
    assert rotated != secret
    assert "secrets=2" in vgr(*c, "list", *cfg).stdout
    mid = send(db, "alert.opened", {"alert_id": 1})
    shown = vgr(*c, "deliveries", *cfg, "--endpoint", ep).stdout
    assert f"{mid}\t{ep}\talert.opened\tseries=1\tattempts=0\tpending" in shown
    assert "still under way" in fails(*c, "replay", *cfg, mid)
    vgr(*c, "disable-endpoint", *cfg, ep, "--reason", "receiver moved")
    assert mid in vgr(*c, "deliveries", *cfg, "--state", "dead").stdout
    assert "disabled (receiver moved)" in vgr(*c, "list", *cfg).stdout
    assert "endpoint disabled" in fails(*c, "replay", *cfg, mid)
    vgr(*c, "enable-endpoint", *cfg, ep)
    assert "series 2" in vgr(*c, "replay", *cfg, mid, "--endpoint", ep).stdout
    # clear errors
    add = [*c, "add-endpoint", *cfg, "--tenant"]
    assert fails(*add, TENANT, "--url", "ftp://x.example/").startswith("bad_url: scheme")
    assert "unknown_tenant" in fails(*add, "nobody", "--url", "https://x.example/")
    bad_event = fails(*add, TENANT, "--url", "https://x.example/", "--events", "alert.closed")
    assert "unknown_event_type" in bad_event
    guarded = FAST.model_copy(update={"allow_private_targets": False})
    strict = ["--config", str(write_config(tmp_path, db, guarded, "strict"))]
    assert "loopback" in fails(*c, "add-endpoint", *strict, "--tenant", TENANT, "--url", url)
    assert "unknown_message" in fails(*c, "replay", *cfg, "msg_nope")
    assert "unknown_endpoint" in fails(*c, "rotate-secret", *cfg, "ep_missing")
    assert "bad_endpoint_id" in fails(*c, "enable-endpoint", *cfg, "nope")
