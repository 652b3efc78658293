"""Browser tests: real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's
Python package; no browser download) against the real stack that `vgr demo` starts.

The stack runs once per session with a small fleet of real edge agents; the
analyst's page logs in as soon as the URL is printed, so the scenarios' first
alerts (power cut, tamper: 0.5-3 min into the run) arrive on an open page.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.browser.demo_process import DemoProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PAGE_TIMEOUT_MS = 60_000
DEMO_VEHICLES = 10  # demo-bank's cars (other-lender has 2)

pytestmark = pytest.mark.services


@pytest.fixture(scope="package")
def demo() -> Iterator[DemoProcess]:
    """`vgr demo` with 10 demo-bank vehicles and 2 of other-lender, each a real edge agent."""
    with tempfile.TemporaryDirectory(prefix="vgr-browser-") as tmp:
        Path(tmp).chmod(0o755)  # the private PostgreSQL runs as the postgres user
        argv = ["--vehicles", str(DEMO_VEHICLES), "--other-vehicles", "2", "--batch", "6"]
        proc = DemoProcess(Path(tmp) / "demo", argv)
        proc.start()
        try:
            proc.wait_ready()
            yield proc
        finally:
            code = proc.stop()
            assert code == 0, proc.out.tail() if proc.out else ""


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


def new_context(browser: Browser, viewport: ViewportSize | None = None) -> BrowserContext:
    """A fresh context (its own cookies). The pages' Content-Security-Policy forbids eval, which
    Playwright's own polling (``wait_for_function``) needs: only the test's scripts bypass it."""
    return browser.new_context(viewport=viewport or {"width": 1400, "height": 900},
                               locale="en-US", bypass_csp=True)  # fmt: skip


def login(browser: Browser, demo: DemoProcess, role: str, tenant: str = "demo-bank") -> Page:
    """A fresh browser context (its own cookies) signed in through the login form."""
    context = new_context(browser)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(demo.url)
    tenant_id, username, password = demo.credentials(role, tenant)
    page.fill("#login-tenant", tenant_id)
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("#login-submit")
    expect(page.locator("[data-testid=live-status]")).to_have_text("live", timeout=90_000)
    return page


@pytest.fixture(scope="package")
def analyst_page(browser: Browser, demo: DemoProcess) -> Iterator[Page]:
    """demo-bank's analyst, signed in right after the stack came up, kept open all session."""
    page = login(browser, demo, "analyst")
    page.evaluate("window.__initialAlerts = [...document.querySelectorAll("
                  "'[data-testid=alert-item]')].map(e => e.dataset.alertId)")  # fmt: skip
    yield page
    page.context.close()
