"""The cockpit page in real headless Chromium: it shows the API's numbers, and only to its roles.

The page is served by the API itself (``/cockpit``); the browser signs in with
``POST /v1/auth/login`` (plain http here, so ``cookie_secure = false``) and the
page must load with no console error and no request to another origin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright

from cloud.api.app import build_app
from tests.integration.ingest_support import TENANT
from tests.integration.test_api_support import PASSWORD, settings
from tests.integration.test_cockpit_support import CockpitWorld, build_cockpit_world

pytestmark = pytest.mark.services
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture
def cw(fresh_db: str) -> CockpitWorld:
    return build_cockpit_world(fresh_db)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 (one stat)
        pytest.fail("Debian's chromium is needed (scripts/setup.sh installs it)")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        await b.close()


async def open_as(browser: Browser, base: str, username: str | None) -> tuple[Page, list[str]]:
    context = await browser.new_context(base_url=base)
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(base) else problems.append(r.url))
    if username is not None:
        body = {"tenant": TENANT, "username": username, "password": PASSWORD}
        resp = await page.request.post("/v1/auth/login", data=body)
        assert resp.status == 200, await resp.text()
    return page, problems


async def test_the_page_shows_the_tenants_numbers(cw: CockpitWorld, browser: Browser) -> None:
    app = build_app(cw.dsn, settings=settings(cookie_secure=False), pool_max=4)
    async with TestServer(app, host="127.0.0.1") as server:
        base = str(server.make_url("")).rstrip("/")
        page, problems = await open_as(browser, base, "analyst")
        await page.goto("/cockpit")
        size = page.locator("[data-testid=cockpit-fleet-size]")
        await page.locator("#cockpit[data-window='1h']").wait_for()
        assert await size.text_content() == "5"
        rate = page.locator("[data-testid=cockpit-online-rate]")
        assert await rate.text_content() == "40.0%"
        assert await rate.get_attribute("data-value") == "0.4"
        fixes = page.locator("[data-testid=cockpit-fixes-per-minute]")
        assert await fixes.get_attribute("data-value") == "7"
        alerts = page.locator("[data-testid=cockpit-open-alerts]")
        assert await alerts.get_attribute("data-value") == "5"
        risky = page.locator("[data-testid=cockpit-top-risky] tbody tr")
        ids = [await r.get_attribute("data-vehicle-id") for r in await risky.all()]
        assert ids[:3] == [str(v) for v in cw.vehicles[:3]]
        hooks = page.locator("[data-testid=cockpit-webhook-health]")
        dead = hooks.locator("[data-state=dead]")
        assert await dead.get_attribute("data-value") == "1"
        assert await hooks.locator("tbody tr[data-endpoint-id]").count() == 2
        assert await page.locator("#fixes-chart svg polyline").count() == 1
        assert await page.locator("#risk-chart svg rect").count() == 10
        await page.locator("[data-testid=lang-switch]").click()
        assert await page.locator("html").get_attribute("lang") == "zh-CN"
        assert await page.locator("[data-i18n='fleet.size']").text_content() == "车队规模"
        await page.select_option("#window", "24h")
        await page.locator("#cockpit[data-window='24h']").wait_for()
        assert await page.locator("#cockpit").get_attribute("data-refreshes") == "2"
        assert problems == []


async def test_without_a_session_the_page_sends_to_sign_in(
    cw: CockpitWorld, browser: Browser
) -> None:
    app = build_app(cw.dsn, settings=settings(cookie_secure=False), pool_max=4)
    async with TestServer(app, host="127.0.0.1") as server:
        base = str(server.make_url("")).rstrip("/")
        page, _ = await open_as(browser, base, None)
        await page.goto("/cockpit")
        await page.wait_for_url(f"{base}/?next=%2Fcockpit")
        page, problems = await open_as(browser, base, "recovery")
        await page.goto("/cockpit")
        error = page.locator("#error")
        await error.wait_for()
        assert "admins and analysts" in (await error.text_content() or "")
        assert await page.locator("#cockpit").is_hidden()
        assert [p for p in problems if "403" not in p] == []  # the refused fetch is logged
