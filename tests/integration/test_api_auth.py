"""Logins, sessions, cookies, CSRF, throttling and password rehashing on a real database."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import psycopg
import pytest

from cloud.api.app import passwords_for
from cloud.api.cli import register
from cloud.api.users import disable_user
from tests.integration.ingest_support import TENANT
from tests.integration.test_api_support import (
    OTHER,
    PASSWORD,
    As,
    World,
    api,
    build_world,
    error_code,
    login,
    session_cookie,
    settings,
    sha256,
    try_login,
)

pytestmark = pytest.mark.services


@pytest.fixture
def world(fresh_db: str) -> World:
    return build_world(fresh_db)


async def test_login_sets_a_strict_cookie_and_stores_only_its_hash(world: World) -> None:
    async with api(world.dsn) as client:
        resp = await try_login(client, "analyst", PASSWORD)
        assert resp.status == 200
        doc = await resp.json()
        assert doc["user"]["role"] == "analyst"
        assert doc["user"]["tenant_id"] == TENANT
        raw = resp.headers["Set-Cookie"]
        morsel = session_cookie(resp)["vgr_session"]
        assert morsel["secure"] is True
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Strict"
        assert morsel["path"] == "/"
        assert int(morsel["max-age"]) == 12 * 3600
        assert "Secure" in raw
        assert "HttpOnly" in raw
        token = morsel.value
        stored = world.sql("SELECT id, csrf_token FROM sessions")
        assert stored == [(sha256(token), doc["csrf_token"])]
        me = await As(client, token, doc["csrf_token"]).get("/v1/auth/me")
        assert me.status == 200
        assert (await me.json())["csrf_token"] == doc["csrf_token"]
        assert me.headers["Cache-Control"] == "no-store"


async def test_plain_http_demo_can_turn_secure_off(world: World) -> None:
    async with api(world.dsn, settings(cookie_secure=False)) as client:
        resp = await try_login(client, "admin", PASSWORD)
        morsel = session_cookie(resp)["vgr_session"]
        assert not morsel["secure"]
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Strict"


async def test_failures_look_the_same_and_are_audited(world: World) -> None:
    disable_sql = "UPDATE users SET disabled = true WHERE tenant_id = %s AND username = 'installer'"
    world.sql(disable_sql, (TENANT,))
    async with api(world.dsn) as client:
        answers = []
        for tenant, user, password in [
            (TENANT, "analyst", "wrong password!"),
            (TENANT, "nobody", PASSWORD),
            ("no-such-bank", "analyst", PASSWORD),
            (TENANT, "installer", PASSWORD),  # disabled
            (TENANT, "lending-core", PASSWORD),  # integration: no password login
        ]:
            resp = await try_login(client, user, password, tenant)
            answers.append((resp.status, await resp.json()))
    assert {str(a) for a in answers} == {str(answers[0])}
    assert answers[0][0] == 401
    assert answers[0][1]["error"]["code"] == "invalid_credentials"
    rows = world.sql(
        "SELECT tenant_id, username, detail->>'reason' FROM audit_log "
        "WHERE action = 'login_failed' ORDER BY id"
    )
    assert rows == [
        (TENANT, "analyst", "wrong_password"),
        (TENANT, "nobody", "unknown_user"),
        (None, "analyst", "unknown_user"),
        (TENANT, "installer", "disabled"),
        (TENANT, "lending-core", "no_password_login"),
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ('{"tenant": "acme-finance"}', "application/json", 400, "invalid_request"),
        ("not json", "application/json", 400, "invalid_request"),
        ('{"tenant": "a", "username": "b", "password": "c", "x": 1}', "application/json", 400,
         "invalid_request"),
        ('{"tenant": "a\\u0000", "username": "b", "password": "c"}', "application/json", 400,
         "invalid_request"),
        ('{"tenant": "a", "username": "b", "password": "c"}', "text/plain", 415,
         "unsupported_media_type"),
        ('{"tenant": "a", "username": "' + "u" * 200 + '", "password": "c"}', "application/json",
         400, "invalid_request"),
    ],
)  # fmt: skip
async def test_malformed_logins_are_refused_plainly(
    world: World, body: str, content_type: str, status: int, code: str
) -> None:
    async with api(world.dsn) as client:
        resp = await client.post(
            "/v1/auth/login", data=body, headers={"Content-Type": content_type}
        )
        assert resp.status == status
        assert await error_code(resp) == code


async def test_csrf_is_required_and_checked_for_cookie_posts(world: World) -> None:
    alert = world.alerts["unassigned"]
    async with api(world.dsn) as client:
        me = await login(client, "analyst")
        path = f"/v1/alerts/{alert}/ack"
        for headers in ({"X-CSRF-Token": ""}, {"X-CSRF-Token": me.csrf[:-1] + "x"}):
            resp = await client.post(path, headers={"Cookie": f"vgr_session={me.token}"} | headers)
            assert resp.status == 403
            assert await error_code(resp) == "csrf_failed"
        resp = await client.post(path, headers={"Cookie": f"vgr_session={me.token}"})
        assert await error_code(resp) == "csrf_failed"
        other = await login(client, "admin")
        resp = await client.post(
            path, headers={"Cookie": f"vgr_session={me.token}", "X-CSRF-Token": other.csrf}
        )
        assert await error_code(resp) == "csrf_failed"
        assert world.sql("SELECT status FROM alerts WHERE id = %s", (alert,)) == [("open",)]
        assert (await me.post(path)).status == 200
        # GET needs no token; a Bearer key is never asked for one (refused on role instead)
        assert (await client.get("/v1/auth/me", headers={"Cookie": f"vgr_session={me.token}"})
                ).status == 200  # fmt: skip
        resp = await As(client, key=world.keys[TENANT]).post("/v1/auth/logout")
        assert await error_code(resp) == "forbidden"


async def test_logout_ends_the_session(world: World) -> None:
    async with api(world.dsn) as client:
        me = await login(client, "recovery")
        no_csrf = As(client, me.token, "wrong")
        assert await error_code(await no_csrf.post("/v1/auth/logout")) == "csrf_failed"
        resp = await me.post("/v1/auth/logout")
        assert resp.status == 200
        cleared = session_cookie(resp)["vgr_session"]
        assert cleared.value == ""
        assert cleared["max-age"] == "0"
        resp = await me.get("/v1/auth/me")
        assert resp.status == 401
        assert await error_code(resp) == "unauthorized"
    assert world.sql("SELECT count(*) FROM sessions") == [(0,)]
    assert world.sql("SELECT username FROM audit_log WHERE action = 'logout'") == [("recovery",)]


@pytest.mark.parametrize(
    "expire",
    [
        "UPDATE sessions SET last_seen_at = now() - interval '31 minutes'",  # idle
        "UPDATE sessions SET expires_at = now() - interval '1 second'",  # absolute
        "UPDATE users SET disabled = true WHERE username = 'analyst'",  # disabled
    ],
)
async def test_sessions_expire(world: World, expire: str) -> None:
    async with api(world.dsn) as client:
        me = await login(client, "analyst")
        assert (await me.get("/v1/auth/me")).status == 200
        world.sql(expire)
        resp = await me.get("/v1/alerts")
        assert resp.status == 401
        assert await error_code(resp) == "unauthorized"


async def test_idle_timeout_slides_with_use(world: World) -> None:
    async with api(world.dsn, settings(session_idle_s=60)) as client:
        me = await login(client, "analyst")
        world.sql("UPDATE sessions SET last_seen_at = now() - interval '50 seconds'")
        assert (await me.get("/v1/auth/me")).status == 200  # touches last_seen_at
        (age,) = world.sql("SELECT extract(epoch FROM now() - last_seen_at) FROM sessions")[0]
        assert float(age) < 5


async def test_disabling_a_user_ends_its_sessions(world: World) -> None:
    async with api(world.dsn) as client:
        me = await login(client, "analyst")
        with psycopg.connect(world.dsn) as conn:
            disable_user(conn, TENANT, "analyst")
        assert (await me.get("/v1/auth/me")).status == 401
        assert (await try_login(client, "analyst", PASSWORD)).status == 401
    assert world.sql("SELECT count(*) FROM sessions") == [(0,)]


async def test_a_new_login_replaces_the_session_it_carries(world: World) -> None:
    async with api(world.dsn) as client:
        first = await login(client, "admin")
        body = {"tenant": TENANT, "username": "admin", "password": PASSWORD}
        resp = await client.post("/v1/auth/login", json=body,
                                 headers={"Cookie": f"vgr_session={first.token}"})  # fmt: skip
        assert resp.status == 200
        assert (await first.get("/v1/auth/me")).status == 401
    assert world.sql("SELECT count(*) FROM sessions") == [(1,)]


async def _attempts(world: World, user: str, tenant: str, n: int) -> list[tuple[int, str]]:
    out = []
    async with api(world.dsn, settings(login_user_free=3, login_delay_base_s=30)) as client:
        for _ in range(n):
            resp = await try_login(client, user, "not the password", tenant)
            out.append((resp.status, resp.headers.get("Retry-After", "") and "set"))
        resp = await try_login(client, user, PASSWORD, tenant)  # even the right password waits
        out.append((resp.status, await error_code(resp)))
    return out


async def test_throttle_does_not_reveal_whether_the_user_exists(world: World) -> None:
    real = await _attempts(world, "analyst", TENANT, 5)
    ghost = await _attempts(world, "ghost", TENANT, 5)
    no_tenant = await _attempts(world, "analyst", "nobank", 5)
    expected = [(401, ""), (401, ""), (401, ""), (429, "set"), (429, "set"),
                (429, "too_many_attempts")]  # fmt: skip
    assert real == expected
    assert ghost == expected
    assert no_tenant == expected


async def test_lockout_waits_retry_after_and_doubles(world: World) -> None:
    cfg = settings(login_user_free=2, login_delay_base_s=1.0, login_delay_max_s=8)
    async with api(world.dsn, cfg) as client:
        for _ in range(2):
            assert (await try_login(client, "analyst", "wrong wrong")).status == 401
        resp = await try_login(client, "analyst", PASSWORD)
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "1"
        await asyncio.sleep(1.1)
        assert (await try_login(client, "analyst", "wrong wrong")).status == 401
        resp = await try_login(client, "analyst", PASSWORD)
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "2"
        await asyncio.sleep(2.1)
        assert (await try_login(client, "analyst", PASSWORD)).status == 200  # clears the count
        assert (await try_login(client, "analyst", "wrong wrong")).status == 401
    key = 'user:["' + TENANT + '","analyst"]'
    assert world.sql("SELECT failures FROM login_throttle WHERE key = %s", (key,)) == [(1,)]


async def test_parallel_guesses_cannot_pass_the_limit(world: World) -> None:
    async with api(world.dsn, settings(login_user_free=3, login_delay_base_s=60)) as client:
        answers = await asyncio.gather(
            *(try_login(client, "admin", f"guess number {i}") for i in range(12))
        )
    statuses = sorted(r.status for r in answers)
    assert statuses == [401] * 3 + [429] * 9


async def test_per_ip_limit_covers_many_usernames(world: World) -> None:
    async with api(world.dsn, settings(login_ip_free=4, login_delay_base_s=60)) as client:
        statuses = [(await try_login(client, f"user{i}", "wrong wrong")).status for i in range(6)]
        assert statuses == [401] * 4 + [429] * 2
        # a forged X-Forwarded-For is not believed from an untrusted peer
        body = {"tenant": TENANT, "username": "admin", "password": PASSWORD}
        resp = await client.post("/v1/auth/login", json=body,
                                 headers={"X-Forwarded-For": "203.0.113.9"})  # fmt: skip
        assert resp.status == 429


async def test_unknown_users_cost_as_much_time_as_wrong_passwords(world: World) -> None:
    cfg = settings(argon2_time_cost=2, argon2_memory_kib=16 * 1024, login_user_free=100)
    with psycopg.connect(world.dsn) as conn:  # the analyst's hash with these parameters
        conn.execute("UPDATE users SET password_hash = %s WHERE username = 'analyst'",
                     (passwords_for(cfg).hash(PASSWORD),))  # fmt: skip
    async with api(world.dsn, cfg) as client:
        await try_login(client, "nobody", "warm up")

        async def timed(user: str) -> float:
            start = time.perf_counter()
            resp = await try_login(client, user, "wrong password")
            assert resp.status == 401
            return time.perf_counter() - start

        wrong = [await timed("analyst") for _ in range(6)]
        unknown = [await timed(f"nobody{i}") for i in range(6)]
    assert statistics.median(unknown) > 0.5 * statistics.median(wrong)
    assert statistics.median(wrong) > 0.5 * statistics.median(unknown)


async def test_login_rehashes_when_parameters_change(world: World) -> None:
    (old,) = world.sql("SELECT password_hash FROM users WHERE username = 'admin' "
                       "AND tenant_id = %s", (TENANT,))[0]  # fmt: skip
    assert ",t=1," in old
    async with api(world.dsn, settings(argon2_time_cost=2)) as client:
        await login(client, "admin")
        (new,) = world.sql("SELECT password_hash FROM users WHERE username = 'admin' "
                           "AND tenant_id = %s", (TENANT,))[0]  # fmt: skip
        assert new != old
        assert ",t=2," in new
        await login(client, "admin")  # the new hash verifies
    assert world.sql("SELECT detail->>'rehashed' FROM audit_log WHERE action = 'login_succeeded' "
                     "ORDER BY id") == [("true",), ("false",)]  # fmt: skip


async def test_login_is_per_tenant(world: World) -> None:
    async with api(world.dsn) as client:
        mine = await login(client, "analyst", TENANT)
        theirs = await login(client, "analyst", OTHER)
        assert (await (await mine.get("/v1/auth/me")).json())["user"]["tenant_id"] == TENANT
        assert (await (await theirs.get("/v1/auth/me")).json())["user"]["tenant_id"] == OTHER


def test_user_commands_take_the_password_from_a_file_never_argv(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "cloud.toml"
    cfg.write_text(
        f'kind = "cloud"\n[database]\ndsn = "{world.dsn}"\n'
        "[api]\nargon2_time_cost = 1\nargon2_memory_kib = 1024\nargon2_parallelism = 1\n"
    )
    pw = tmp_path / "pw"
    pw.write_text("a long enough password\n")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    base = ["api", "user", "create", "--config", str(cfg), "--tenant", TENANT]
    args = parser.parse_args([*base, "--username", "li.wei", "--role", "analyst",
                              "--password-file", str(pw)])  # fmt: skip
    assert args.func(args) == 0
    assert args.func(args) == 1  # exists
    assert "user_exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--username", "x", "--role", "analyst", "--password", "p"])
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--username", "x", "--role", "integration"])
    pw.write_text("short\n")
    args = parser.parse_args([*base, "--username", "z", "--role", "analyst",
                              "--password-file", str(pw)])  # fmt: skip
    assert args.func(args) == 1
    assert "weak_password" in capsys.readouterr().err
    (hash_,) = world.sql("SELECT password_hash FROM users WHERE username = 'li.wei'")[0]
    assert passwords_for(settings()).verify(hash_, "a long enough password")
    args = parser.parse_args(["api", "user", "disable", "--config", str(cfg), "--tenant", TENANT,
                              "--username", "li.wei"])  # fmt: skip
    assert args.func(args) == 0
    assert world.sql("SELECT disabled FROM users WHERE username = 'li.wei'") == [(True,)]
    actions = world.sql("SELECT action FROM audit_log WHERE action LIKE 'user_%%' AND "
                        "detail->>'username' = 'li.wei' ORDER BY id")  # fmt: skip
    assert actions == [("user_created",), ("user_disabled",)]
