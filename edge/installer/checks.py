"""The self-test's checks: each one small, returning a :class:`CheckResult` with a remedy.

A check never raises for a failing tracker: what is wrong is the result.
They run under a deadline each (:func:`with_deadline`); the GNSS check also
records the fix it saw, which the clock check compares with the system clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sqlite3
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from edge.config import EdgeConfig
from edge.nmea.assembler import GnssFix

EARLIEST_SANE: Final = datetime(2024, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW: Final = timedelta(minutes=10)
CONNECT_TIMEOUT_S: Final = 10.0
#: MQTT CONNACK codes meaning "who you are was refused" (v5 reason codes, v3.1.1 return codes).
AUTH_REFUSED_V5: Final = frozenset({134, 135})
AUTH_REFUSED_V3: Final = frozenset({4, 5})


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    remedy: str = ""


@dataclass(slots=True)
class Observed:
    """What one check learned that another needs."""

    fix: GnssFix | None = None
    fix_seen_at: datetime | None = None  # system clock when the fix arrived


Check = Callable[[], Awaitable[CheckResult]]


async def with_deadline(name: str, seconds: float, check: Check, remedy: str) -> CheckResult:
    """Run ``check``; a check that hangs or breaks fails instead of stopping the self-test."""
    try:
        return await asyncio.wait_for(check(), seconds)
    except TimeoutError:
        return CheckResult(name, False, f"no answer within {seconds:.0f} s", remedy)
    except Exception as exc:  # the self-test reports, it does not crash
        return CheckResult(name, False, f"check failed: {type(exc).__name__}: {exc}", remedy)


# ---------------------------------------------------------------- GNSS


async def gnss(cfg: EdgeConfig, seen: Observed, timeout_s: float) -> CheckResult:
    """The configured receiver gives a 2D or 3D fix within ``timeout_s``."""
    from edge.agent.sources import SourceSpec, stream
    from edge.nmea.replay import Pipeline

    g = cfg.gnss
    spec = SourceSpec(kind=g.source, path=g.path, baudrate=g.baudrate, host=g.host, port=g.port)
    pipeline = Pipeline(max_line_bytes=g.max_line_bytes)
    epochs = 0
    started = time.monotonic()

    def take(fixes: list[GnssFix]) -> GnssFix | None:
        nonlocal epochs
        epochs += len(fixes)
        return next((f for f in fixes if f.mode >= 2), None)

    async def first_fix() -> GnssFix | None:
        chunks = stream(spec)
        try:
            async for chunk in chunks:
                fix = take(pipeline.feed(chunk))
                if fix is not None:
                    return fix
        finally:
            aclose = getattr(chunks, "aclose", None)  # close the file or port now, not at GC
            if aclose is not None:
                await aclose()
        return take(pipeline.close())  # a file or stdin ended

    remedy = (
        "put the tracker where it sees the open sky (not in a garage or under a roof), check "
        "the antenna cable, and check [gnss] source/path/baudrate; "
        "`vgr edge replay FILE` shows what a capture of the receiver contains"
    )
    needs_path = g.source in ("serial", "pty", "file") and g.path
    if needs_path and not await asyncio.to_thread(Path(str(g.path)).exists):
        return CheckResult("gnss", False, f"{spec.describe()}: {g.path} does not exist", remedy)

    def heard() -> str:
        sentences = sum(pipeline.parser.accepted.values())
        if not sentences:
            return "no NMEA sentences"
        return f"{sentences} sentences, {epochs} epochs, none with a fix"

    try:
        fix = await asyncio.wait_for(first_fix(), timeout_s)
    except TimeoutError:
        detail = f"{spec.describe()}: {heard()} within {timeout_s:.0f} s"
        return CheckResult("gnss", False, detail, remedy)
    except (OSError, ValueError) as exc:
        return CheckResult("gnss", False, f"{spec.describe()}: cannot read ({exc})", remedy)
    if fix is None:
        return CheckResult("gnss", False, f"{spec.describe()}: ended with {heard()}", remedy)
    seen.fix, seen.fix_seen_at = fix, datetime.now(UTC)
    where = f"{fix.lat:.5f},{fix.lon:.5f}" if fix.lat is not None and fix.lon is not None else "?"
    sats = f", {fix.sats} satellites" if fix.sats is not None else ""
    took = time.monotonic() - started
    return CheckResult("gnss", True, f"{fix.mode}D fix at {where}{sats} after {took:.1f} s")


# ---------------------------------------------------------------- broker


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _why_unreachable(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT_S:.0f} s (firewall, or no mobile data?)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on that port: broker down?)"
    if isinstance(exc, socket.gaierror):
        return f"host name not resolved ({exc.strerror})"
    return str(exc.strerror or exc) if isinstance(exc, OSError) else str(exc)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 2.0)


async def broker(cfg: EdgeConfig, password: str | None) -> CheckResult:
    """TCP, then TLS, then MQTT CONNECT with the device's credentials: each failure named."""
    import aiomqtt

    up = cfg.uplink
    where = f"{up.host}:{up.port}"
    username = up.username or cfg.device.id
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(up.host, up.port), CONNECT_TIMEOUT_S
        )
        await _close(writer)
    except (OSError, TimeoutError) as exc:
        reason = _why_unreachable(exc)
        remedy = (
            "check [uplink] host and port, that the tracker has mobile data (SIM, APN, "
            "signal) and that the broker is running; try `nc -vz HOST PORT` from the tracker"
        )
        return CheckResult("broker", False, f"{where} unreachable: {reason}", remedy)
    if up.tls:
        tls_remedy = (
            "[uplink] ca_file must be the CA that signed the broker's certificate (re-run "
            "`vgr edge provision`), the port must be the broker's TLS listener, and the clock "
            "must be right (certificates have validity dates)"
        )
        try:
            context = await asyncio.to_thread(_tls_context, up.ca_file)
        except (OSError, ssl.SSLError) as exc:
            return CheckResult("broker", False, f"ca_file {up.ca_file} unusable: {exc}", tls_remedy)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(up.host, up.port, ssl=context, server_hostname=up.host),
                CONNECT_TIMEOUT_S,
            )
            await _close(writer)
        except ssl.SSLCertVerificationError as exc:
            detail = f"{where} TLS: certificate not trusted ({exc.verify_message})"
            return CheckResult("broker", False, detail, tls_remedy)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            reason = "handshake timed out" if isinstance(exc, TimeoutError) else str(exc)
            return CheckResult("broker", False, f"{where} TLS failed: {reason}", tls_remedy)
    if password is None:
        remedy = "set [uplink] password to file:/etc/vgr/mqtt.password (written by provision)"
        return CheckResult("broker", False, "no MQTT password configured", remedy)
    client = aiomqtt.Client(
        up.host,
        up.port,
        identifier=f"{cfg.device.id}-selftest",  # never take over the running agent's session
        username=username,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=True,
        timeout=CONNECT_TIMEOUT_S,
        tls_params=aiomqtt.TLSParameters(ca_certs=str(up.ca_file) if up.ca_file else None)
        if up.tls
        else None,
    )
    try:
        async with client:
            pass
    except aiomqtt.MqttCodeError as exc:
        code = exc.rc if isinstance(exc.rc, int) else getattr(exc.rc, "value", None)
        refused = AUTH_REFUSED_V5 | AUTH_REFUSED_V3
        if code in refused:
            remedy = (
                "the broker does not accept this device's password: re-run `vgr edge "
                "provision` (or ask for a credential rotation); a revoked device is refused too"
            )
            return CheckResult("broker", False, f"{where} refused {username}: {exc}", remedy)
        return CheckResult("broker", False, f"{where} refused the connection: {exc}", "")
    except aiomqtt.MqttError as exc:
        remedy = "the port answers but not as an MQTT broker: check [uplink] port"
        return CheckResult("broker", False, f"{where} MQTT handshake failed: {exc}", remedy)
    scheme = "TLS" if up.tls else "plain (no TLS!)"
    return CheckResult("broker", True, f"{where} {scheme}, credentials of {username} accepted")


# ---------------------------------------------------------------- token, clock, storage


async def token(cfg: EdgeConfig) -> CheckResult:
    from edge.agent.trust import evaluate, load_keyring, read_material

    remedy = "re-run `vgr edge provision` for this device (it writes a fresh token and policy)"
    try:
        keyring = await asyncio.to_thread(load_keyring, cfg.trust.platform_keys)
    except (OSError, ValueError) as exc:
        return CheckResult("token", False, f"platform key unusable: {exc}", remedy)
    tok, pol = await asyncio.to_thread(read_material, cfg.trust.token_file, cfg.trust.policy_file)
    trust = await asyncio.to_thread(
        evaluate, keyring, tok, pol, device_id=cfg.device.id, now=datetime.now(UTC)
    )
    if not trust.authorized or trust.claims is None:
        detail = f"token/policy refused for {cfg.device.id}: {trust.reason}"
        if "expired" in trust.reason or "not_yet" in trust.reason:
            remedy += "; if the token looks expired or not yet valid, check the clock first"
        return CheckResult("token", False, detail, remedy)
    c = trust.claims
    policy = "with signed policy" if trust.policy is not None else "without a policy"
    detail = f"valid for {c.device_id} (VIN {c.vin}) until {c.expires_at:%Y-%m-%d}, {policy}"
    return CheckResult("token", True, detail)


async def clock(seen: Observed) -> CheckResult:
    now = datetime.now(UTC)
    remedy = (
        "set the system clock (it must be UTC and close to GNSS time): "
        "enable NTP or `date -u -s ...` from the GNSS time shown"
    )
    if now < EARLIEST_SANE:
        return CheckResult("clock", False, f"system clock says {now:%Y-%m-%d %H:%M}Z", remedy)
    if seen.fix is None or seen.fix_seen_at is None:
        return CheckResult("clock", True, f"{now:%Y-%m-%d %H:%M:%S}Z (no GNSS time to compare)")
    skew = seen.fix_seen_at - seen.fix.time
    detail = f"system vs GNSS {skew.total_seconds():+.1f} s"
    if abs(skew) > MAX_CLOCK_SKEW:
        return CheckResult(
            "clock", False, f"{detail} (GNSS says {seen.fix.time:%Y-%m-%d %H:%M:%S}Z)", remedy
        )
    return CheckResult("clock", True, detail)


def _outbox_probe(path: Path) -> CheckResult:
    directory = path.parent
    remedy = (
        f"create the directory and give it to the agent's user: "
        f"mkdir -p {directory} && chown vgr:vgr {directory} (the systemd unit's "
        "StateDirectory does this for /var/lib/vgr)"
    )
    if not directory.is_dir():
        return CheckResult("outbox", False, f"{directory} does not exist", remedy)
    probe = directory / f".vgr-selftest-{time.monotonic_ns()}.sqlite3"
    try:
        conn = sqlite3.connect(probe)
        try:
            conn.execute("CREATE TABLE t (x INTEGER)")
            conn.execute("INSERT INTO t VALUES (1)")
            conn.commit()
        finally:
            conn.close()
        if path.exists():
            uri = f"file:{path}?mode=ro"
            existing = sqlite3.connect(uri, uri=True)
            try:
                existing.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                existing.close()
    except (OSError, sqlite3.Error) as exc:
        return CheckResult("outbox", False, f"{directory}: SQLite cannot write ({exc})", remedy)
    finally:
        for leftover in (probe, probe.with_name(probe.name + "-journal")):
            leftover.unlink(missing_ok=True)
    state = "existing outbox readable" if path.exists() else "new outbox"
    return CheckResult("outbox", True, f"{directory} writable, SQLite ok ({state})")


async def outbox(cfg: EdgeConfig) -> CheckResult:
    return await asyncio.to_thread(_outbox_probe, cfg.outbox.path)


def _existing_parent(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


async def disk(cfg: EdgeConfig) -> CheckResult:
    where = _existing_parent(cfg.outbox.path.parent)
    usage = await asyncio.to_thread(shutil.disk_usage, where)
    need = 2 * cfg.outbox.max_bytes
    detail = f"{usage.free / 2**20:.0f} MiB free on {where} (need {need / 2**20:.0f} MiB)"
    if usage.free < need:
        remedy = "free space on that filesystem, or lower [outbox] max_bytes"
        return CheckResult("disk", False, detail, remedy)
    return CheckResult("disk", True, detail)
