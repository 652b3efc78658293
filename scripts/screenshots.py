"""Screenshots of the recovery map and the cockpit for docs/ (``make screenshots``).

Starts a small live demo stack (``vgr demo``: real services, real edge agents),
signs in through the login form in headless Debian chromium (Playwright, no
browser download), waits until vehicles report and alerts have fired, and
writes ``docs/screenshots/map.png``, ``track.png`` (a vehicle's track playback)
and ``cockpit.png``. Ctrl-C stops the demo cleanly like the demo itself.

    python scripts/screenshots.py [--vehicles 40] [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import Page, ViewportSize, expect, sync_playwright  # noqa: E402

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, new_context  # noqa: E402
from tests.browser.demo_process import DemoProcess  # noqa: E402

VIEWPORT: ViewportSize = {"width": 1440, "height": 900}


def sign_in(page: Page, demo: DemoProcess, role: str) -> None:
    page.goto(demo.url)
    tenant, username, password = demo.credentials(role)
    page.fill("#login-tenant", tenant)
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("#login-submit")
    expect(page.locator("[data-testid=live-status]")).to_have_text("live", timeout=90_000)


def busiest_vehicle(page: Page) -> int:
    """The vehicle with the most track points in the last hour (a car that drove)."""
    origin = page.evaluate("location.origin")
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    best, most = 0, -1
    for vid in page.evaluate("[...window.vgr.vehicles.keys()]"):
        resp = page.request.get(f"{origin}/v1/vehicles/{vid}/track?from={since}&max_points=5000")
        points = len(resp.json()["points"]) if resp.ok else 0
        if points > most:
            best, most = int(vid), points
    return best


def shoot(demo: DemoProcess, out: Path, min_vehicles: int, min_alerts: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = new_context(browser, VIEWPORT)
        context.set_default_timeout(60_000)
        page = context.new_page()
        sign_in(page, demo, "analyst")
        print(f"signed in; waiting for {min_vehicles} vehicles and {min_alerts} alerts", flush=True)
        page.wait_for_function(f"window.vgr.vehicles.size >= {min_vehicles}", timeout=600_000)
        page.wait_for_function(
            f"document.querySelectorAll('[data-testid=alert-item]').length >= {min_alerts}",
            timeout=900_000,
        )
        page.locator(".leaflet-control-zoom-out").click()  # all eight cities in view
        page.wait_for_timeout(3_000)  # markers drawn, queue refreshed
        page.screenshot(path=str(out / "map.png"))
        print(f"wrote {out / 'map.png'}", flush=True)

        vid = busiest_vehicle(page)
        search = page.locator("[data-testid=vehicle-search]")
        search.fill(str(vid))
        search.press("Enter")
        detail = page.locator(f"[data-testid=vehicle-detail][data-vehicle-id='{vid}']")
        expect(detail).to_be_visible()
        detail.locator("[data-testid=track-open]").click()
        page.wait_for_function(
            "Number(document.querySelector('[data-testid=track-slider]').max) > 0"
        )
        page.locator("[data-testid=track-play]").click()
        page.wait_for_timeout(4_000)
        page.screenshot(path=str(out / "track.png"))
        print(f"wrote {out / 'track.png'}", flush=True)

        page.goto(demo.url.rstrip("/") + "/cockpit")
        expect(page.locator("[data-testid=cockpit-fleet-size]")).not_to_be_empty()
        page.wait_for_timeout(5_000)  # charts drawn
        page.screenshot(path=str(out / "cockpit.png"), full_page=True)
        print(f"wrote {out / 'cockpit.png'}", flush=True)
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vehicles", type=int, default=40)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--min-alerts", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vgr-screenshots-") as tmp:
        Path(tmp).chmod(0o755)  # the private PostgreSQL runs as the postgres user
        demo = DemoProcess(Path(tmp) / "demo", ["--vehicles", str(args.vehicles)])
        demo.start()
        try:
            demo.wait_ready(timeout=900)
            shoot(demo, args.out, min_vehicles=args.vehicles // 2, min_alerts=args.min_alerts)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            code = demo.stop()
            if code != 0 and demo.out is not None:
                print(demo.out.tail(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
