"""``vgr edge selftest --config FILE``: is this tracker ready to leave the workshop?

Checks GNSS, broker, token, clock, outbox and disk; prints one line per
check and, under each failure, what to do about it. Exits 1 if any check
failed, 2 if the config itself cannot be used.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from edge.config import EdgeConfig
from edge.installer import checks
from edge.installer.checks import CheckResult, Observed, with_deadline

DEFAULT_GNSS_TIMEOUT_S: Final = 60.0
CHECK_DEADLINE_S: Final = 20.0  # every check but GNSS
ORDER: Final = ("gnss", "broker", "token", "clock", "outbox", "disk")


def format_table(results: Sequence[CheckResult]) -> str:
    """One row per check (name, PASS/FAIL, detail); the remedy indented under each failure."""
    width = max([len("check"), *(len(r.name) for r in results)])
    lines = [f"{'check':<{width}}  result  detail"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {'PASS' if r.ok else 'FAIL':<6}  {r.detail}")
        if not r.ok and r.remedy:
            lines.append(f"{'':<{width}}  {'':<6}  -> {r.remedy}")
    failed = [r.name for r in results if not r.ok]
    lines.append("")
    lines.append(
        f"FAILED: {', '.join(failed)} ({len(failed)} of {len(results)})"
        if failed
        else f"all {len(results)} checks passed"
    )
    return "\n".join(lines) + "\n"


def resolve_password(cfg: EdgeConfig, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The MQTT password and, if it cannot be read, why."""
    from protocols.secrets import SecretError, resolve_secret

    ref = cfg.uplink.password
    if ref is None:
        return None, ""
    try:
        value = resolve_secret(
            ref, environ=environ, read_text=lambda p: Path(p).read_text(encoding="utf-8")
        )
    except SecretError as exc:
        return None, str(exc)
    return value, ""


async def run_checks(
    cfg: EdgeConfig, *, gnss_timeout_s: float, environ: Mapping[str, str]
) -> list[CheckResult]:
    """Every check, each under its deadline; GNSS and the network checks run side by side."""
    seen = Observed()
    password, password_problem = resolve_password(cfg, environ)

    async def broker() -> CheckResult:
        if password_problem:
            remedy = "the password file is written by `vgr edge provision` (mode 0600)"
            return CheckResult("broker", False, f"uplink.password: {password_problem}", remedy)
        return await checks.broker(cfg, password)

    remedies = {
        "gnss": "check the antenna and the [gnss] settings",
        "broker": "check the network and the [uplink] settings",
        "token": "re-run `vgr edge provision`",
        "outbox": "check the outbox directory (a slow or failing storage card?)",
        "disk": "check the filesystem of the outbox",
    }
    async with asyncio.TaskGroup() as tg:
        gnss_task = tg.create_task(
            with_deadline(
                "gnss",
                gnss_timeout_s + 5,
                lambda: checks.gnss(cfg, seen, gnss_timeout_s),
                remedies["gnss"],
            ),
            name="selftest-gnss",
        )
        others = {
            "broker": tg.create_task(
                with_deadline("broker", CHECK_DEADLINE_S * 2, broker, remedies["broker"]),
                name="selftest-broker",
            ),
            "token": tg.create_task(
                with_deadline(
                    "token", CHECK_DEADLINE_S, lambda: checks.token(cfg), remedies["token"]
                ),
                name="selftest-token",
            ),
            "outbox": tg.create_task(
                with_deadline(
                    "outbox", CHECK_DEADLINE_S, lambda: checks.outbox(cfg), remedies["outbox"]
                ),
                name="selftest-outbox",
            ),
            "disk": tg.create_task(
                with_deadline("disk", CHECK_DEADLINE_S, lambda: checks.disk(cfg), remedies["disk"]),
                name="selftest-disk",
            ),
        }
    results = {"gnss": gnss_task.result()} | {k: t.result() for k, t in others.items()}
    results["clock"] = await with_deadline(
        "clock", CHECK_DEADLINE_S, lambda: checks.clock(seen), "set the system clock"
    )
    return [results[name] for name in ORDER]


def run(args: Any) -> int:
    from edge.config import load_config
    from protocols.configfile import ConfigError

    config: Path = args.config
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.source}: {problem}", file=sys.stderr)
        print(f"{config}: fix the config first (vgr check-config {config})", file=sys.stderr)
        return 2
    if args.gnss_timeout <= 0:
        print("--gnss-timeout must be positive", file=sys.stderr)
        return 2
    print(
        f"self-test of device {cfg.device.id} ({config}); GNSS may take up to "
        f"{args.gnss_timeout:.0f} s",
        flush=True,
    )
    results = asyncio.run(run_checks(cfg, gnss_timeout_s=args.gnss_timeout, environ=os.environ))
    print(format_table(results), end="")
    return 0 if all(r.ok for r in results) else 1
