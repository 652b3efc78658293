"""Smoke test of the recovery map in real headless Chromium against the real API.

The page loads with no console error and requests nothing outside its own
origin (Leaflet, styles and translations are served locally; no tile server
is configured, so the boundaries would be the basemap); an analyst logs in,
the live feed opens and draws the tenant's vehicles, and a fix inserted in
the database moves its vehicle on the page. The full browser acceptance is
elsewhere; this checks the page is wired together.
"""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

from cloud.api.static import WEB_ROOT
from tests.integration.ingest_support import TENANT
from tests.integration.test_api_support import PASSWORD, World, api, build_world
from tests.integration.test_api_support import settings as api_settings

pytestmark = pytest.mark.services
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
WAIT_MS = 30_000


async def until(page: Any, expression: str) -> None:
    """Poll a page expression (wait_for_function would need 'unsafe-eval', which the CSP denies)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + WAIT_MS / 1000
    while not await page.evaluate(expression):
        assert loop.time() < end, f"never true: {expression}"
        await asyncio.sleep(0.1)


@pytest.fixture
def world(fresh_db: str) -> World:
    return build_world(fresh_db)


async def test_the_map_loads_offline_logs_in_and_follows_the_feed(world: World) -> None:
    expect.set_options(timeout=WAIT_MS)
    assert shutil.which(CHROMIUM), "Debian's chromium is required (apt-get install chromium)"
    assert (WEB_ROOT / "node_modules" / "leaflet").is_dir(), "run: npm ci --prefix cloud/web"
    cfg = api_settings(cookie_secure=False, live_poll_s=0.1)
    async with api(world.dsn, cfg) as client, async_playwright() as pw:
        origin = f"http://{client.host}:{client.port}"
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = await browser.new_page(locale="en-US")
        errors: list[str] = []
        foreign: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith(origin) else foreign.append(r.url))
        await page.goto(origin + "/")
        await page.fill("#login-tenant", TENANT)
        await page.fill("#login-username", "analyst")
        await page.fill("#login-password", "wrong password!")
        await page.click("#login-submit")
        await page.wait_for_selector("[data-testid=login-error]:visible", timeout=WAIT_MS)
        await page.fill("#login-password", PASSWORD)
        await page.click("#login-submit")
        await expect(page.locator("[data-testid=live-status]")).to_have_text("live")
        await expect(page.locator("[data-testid=vehicle-count]")).to_have_text("3")
        vid = world.vehicles["unassigned"]
        world.sql(
            "INSERT INTO fixes (time, device_id, boot_id, seq, tenant_id, vehicle_id, lat, lon, "
            "speed_mps, mode) VALUES (%s, %s, 'web', 1, %s, %s, 30.25, 120.15, 4.0, 3)",
            (datetime.now(UTC), f"dev{vid}", TENANT, vid),
        )
        await until(page, f"window.vgr.vehicles.get({vid})?.lat === 30.25")
        alerts = await page.locator("[data-testid=alert-item]").count()
        assert alerts == 3
        await page.click("[data-testid=lang-switch]")
        await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        await expect(page.locator("[data-testid=alert-feed] h3")).to_contain_text("未处理告警")
        await page.click(f"[data-testid=alert-item][data-vehicle-id='{vid}']")
        await expect(page.locator("[data-testid=vehicle-detail]")).to_have_attribute(
            "data-vehicle-id", str(vid)
        )
        await expect(
            page.locator("[data-testid=vehicle-detail] [data-testid=risk-score]")
        ).to_be_visible()
        feed = await page.evaluate("window.vgr.feed")
        assert feed["positions"] >= 4
        await browser.close()
    failures = [e for e in errors if "401" not in e]  # the wrong password's 401 is expected
    assert failures == []
    assert foreign == []
