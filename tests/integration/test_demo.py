"""`vgr demo` (what `make demo` runs): a small fleet through real agents, the printed URL and
credentials work, fixes and an alert arrive, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import signal
import tempfile
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cloud.localsvc import PrivateMosquitto
from tests.browser.demo_process import STATUS, DemoProcess, processes_mentioning

pytestmark = pytest.mark.services


def login(base: str, tenant: str, username: str, password: str) -> urllib.request.OpenerDirector:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    body = json.dumps({"tenant": tenant, "username": username, "password": password}).encode()
    req = urllib.request.Request(f"{base}v1/auth/login", data=body,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with opener.open(req, timeout=30) as resp:
        assert resp.status == 200
        assert json.load(resp)["user"]["username"] == username
    return opener


def get_json(opener: urllib.request.OpenerDirector, url: str) -> Any:
    with opener.open(url, timeout=30) as resp:
        return json.load(resp)


def test_demo_runs_real_agents_serves_the_map_alerts_and_stops_cleanly() -> None:
    # Not pytest's tmp_path: the demo's PostgreSQL runs as the postgres user, which
    # cannot enter pytest's private (0700) temp root when the tests run as root.
    with tempfile.TemporaryDirectory(prefix="vgr-demo-test-") as tmp:
        Path(tmp).chmod(0o755)
        base = Path(tmp) / "demo"
        demo = DemoProcess(base, ["--vehicles", "8", "--other-vehicles", "1", "--batch", "5"])
        demo.start()
        try:
            demo.wait_ready()
            assert {role for role, _ in demo.users} == {"admin", "analyst", "recovery"}
            url = demo.url
            with urllib.request.urlopen(url, timeout=30) as resp:  # the map page
                assert resp.status == 200
                assert "html" in resp.headers.get("Content-Type", "")
            tenant, name, password = demo.credentials("analyst")
            analyst = login(url, tenant, name, password)
            with pytest.raises(urllib.error.HTTPError) as refused:
                login(url, tenant, name, password + "x")
            assert refused.value.code == 401
            assert processes_mentioning(f"{base}/fleet/"), "no edge agent processes running"

            # Fixes, then an alert, as the status lines say ...
            assert demo.out is not None
            demo.out.wait_for(lambda s: bool((m := STATUS.search(s)) and int(m[3]) >= 1), 420,
                              "alert in the status line")  # fmt: skip
            fixes = [int(m[1].replace(",", "")) for s in demo.out.lines if (m := STATUS.search(s))]
            assert fixes[-1] > 0
            # ... and as the analyst sees them through the API; the other tenant sees none.
            alerts = get_json(analyst, f"{url}v1/alerts")["items"]
            assert alerts, "the status line counted an alert the analyst cannot see"
            other = login(url, *demo.credentials("analyst", "other-lender"))
            theirs = get_json(other, f"{url}v1/alerts")["items"]
            assert {a["id"] for a in alerts}.isdisjoint({a["id"] for a in theirs})
        finally:
            code = demo.stop()
        assert demo.out is not None
        tail = demo.out.tail()
        assert code == 0, tail
        assert "stopped cleanly" in tail
        deadline = time.monotonic() + 10
        while processes_mentioning(str(base)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert processes_mentioning(str(base)) == [], "processes left behind"


def test_sigterm_while_agents_start_stops_everything() -> None:
    """SIGTERM (a service manager's stop) in the middle of start-up: services and the agents
    started so far are stopped, PostgreSQL and Mosquitto too."""
    with tempfile.TemporaryDirectory(prefix="vgr-demo-test-") as tmp:
        Path(tmp).chmod(0o755)
        base = Path(tmp) / "demo"
        demo = DemoProcess(base, ["--vehicles", "12", "--other-vehicles", "0", "--batch", "3"])
        demo.start()
        assert demo.out is not None
        assert demo.proc is not None
        try:
            demo.out.wait_for(lambda s: "agents and trackers up" in s, 300, "the first agents")
            assert processes_mentioning(f"{base}/fleet/")
            assert processes_mentioning(f"{base}/postgres")
            demo.proc.send_signal(signal.SIGTERM)
            code = demo.proc.wait(timeout=180)
        finally:
            demo.stop()
        tail = demo.out.tail()
        assert code == 0, tail
        assert "SIGTERM: stopping the demo" in tail
        assert "stopped cleanly" in tail
        deadline = time.monotonic() + 10
        while processes_mentioning(str(base)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert processes_mentioning(str(base)) == [], "processes left behind"


def test_the_demo_uses_a_given_database_and_broker_and_leaves_them_running(
    fresh_db: str, mosquitto: PrivateMosquitto
) -> None:
    """`--database` / `--broker`: nothing private is started, the fleet's fixes land in the
    given database, and stopping the demo stops only what the demo started."""
    with tempfile.TemporaryDirectory(prefix="vgr-demo-test-") as tmp:
        Path(tmp).chmod(0o755)
        base = Path(tmp) / "demo"
        given = ["--database", fresh_db, "--broker", f"{mosquitto.host}:{mosquitto.plain_port}"]
        demo = DemoProcess(base, ["--vehicles", "3", "--other-vehicles", "0", "--batch", "3",
                                  *given])  # fmt: skip
        demo.start()
        assert demo.out is not None
        try:
            demo.wait_ready()
            assert processes_mentioning(f"{base}/postgres") == []
            assert processes_mentioning(f"{base}/mosquitto") == []
            demo.out.wait_for(lambda s: bool((m := STATUS.search(s)) and int(m[1]) > 0), 300,
                              "fixes in the status line")  # fmt: skip
        finally:
            code = demo.stop()
        assert code == 0, demo.out.tail()
        assert "(given)" in "\n".join(demo.out.lines)
        with psycopg.connect(fresh_db, connect_timeout=5) as conn:  # still up, and it has them
            row = conn.execute("SELECT count(*) FROM fixes").fetchone()
        assert row is not None
        assert row[0] > 0
        assert mosquitto.running
        deadline = time.monotonic() + 10
        while processes_mentioning(str(base)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert processes_mentioning(str(base)) == [], "processes left behind"
