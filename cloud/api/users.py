"""People who log in: created and disabled from the command line, looked up at login.

Integration users (the lending core) have API keys instead (:mod:`cloud.api.keys`)
and can never log in with a password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg

from cloud.api import audit
from cloud.api.passwords import Passwords, check_new_password
from cloud.api.policy import PEOPLE

Conn = psycopg.Connection[Any]
AConn = psycopg.AsyncConnection[Any]
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class UserError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class LoginUser:
    id: int
    tenant_id: str
    username: str
    role: str
    password_hash: str | None
    disabled: bool

    @property
    def may_log_in(self) -> bool:
        return not self.disabled and self.role in PEOPLE and self.password_hash is not None


async def for_login(conn: AConn, tenant_id: str, username: str) -> LoginUser | None:
    cur = await conn.execute(
        "SELECT id, tenant_id, username, role, password_hash, disabled FROM users "
        "WHERE tenant_id = %s AND username = %s",
        (tenant_id, username),
    )
    row = await cur.fetchone()
    return None if row is None else LoginUser(*row)


async def tenant_exists(conn: AConn, tenant_id: str) -> bool:
    cur = await conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,))
    return await cur.fetchone() is not None


async def store_rehash(conn: AConn, user_id: int, old_hash: str, new_hash: str) -> None:
    """Replace the hash made with old parameters (unless it changed meanwhile)."""
    await conn.execute(
        "UPDATE users SET password_hash = %s WHERE id = %s AND password_hash = %s",
        (new_hash, user_id, old_hash),
    )


def create_user(conn: Conn, passwords: Passwords, tenant_id: str, username: str, role: str,
                password: str, *, actor: str = "cli", actor_id: int | None = None,
                ip: str | None = None) -> int:  # fmt: skip
    """A new person who logs in with ``password``; UserError if it cannot be created."""
    if role not in PEOPLE:
        raise UserError("invalid_role", f"role must be one of {', '.join(sorted(PEOPLE))}")
    if not USERNAME.match(username):
        raise UserError("invalid_username", "letters, digits and . _ @ - (at most 64)")
    try:
        check_new_password(password)
    except ValueError as exc:
        raise UserError("weak_password", str(exc)) from None
    password_hash = passwords.hash(password)
    with conn.transaction():
        if conn.execute("SELECT 1 FROM tenants WHERE id = %s", (tenant_id,)).fetchone() is None:
            raise UserError("tenant_not_found", f"no tenant {tenant_id!r}")
        row = conn.execute(
            "INSERT INTO users (tenant_id, username, role, password_hash) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (tenant_id, username) DO NOTHING RETURNING id",
            (tenant_id, username, role, password_hash),
        ).fetchone()
        if row is None:
            raise UserError("user_exists", f"{tenant_id}/{username} exists")
        entry = audit.Entry("user_created", tenant_id, actor_id, actor, ip, "user", str(row[0]),
                            {"username": username, "role": role})  # fmt: skip
        audit.write_sync(conn, entry)
    return int(row[0])


def disable_user(conn: Conn, tenant_id: str, username: str, *, actor: str = "cli") -> int:
    """Disable the user and end its sessions at once; its id, or UserError ``user_not_found``."""
    with conn.transaction():
        row = conn.execute(
            "UPDATE users SET disabled = true WHERE tenant_id = %s AND username = %s RETURNING id",
            (tenant_id, username),
        ).fetchone()
        if row is None:
            raise UserError("user_not_found", f"no user {tenant_id}/{username}")
        ended = conn.execute("DELETE FROM sessions WHERE user_id = %s", (row[0],)).rowcount
        entry = audit.Entry("user_disabled", tenant_id, None, actor, None, "user", str(row[0]),
                            {"username": username, "sessions_ended": ended})  # fmt: skip
        audit.write_sync(conn, entry)
    return int(row[0])


@dataclass(frozen=True, slots=True)
class UserChange:
    """What an admin changes about a person (None: unchanged), and who the admin is."""

    role: str | None = None
    disabled: bool | None = None


def update_user(conn: Conn, tenant_id: str, user_id: int, change: UserChange, *,
                actor: str, actor_id: int | None, ip: str | None) -> None:  # fmt: skip
    """Change a person's role or disabled flag, audited; disabling ends its sessions at once.

    A new role applies to the person's next request (sessions read the role live).

    UserError ``user_not_found`` (integration users too: they are managed as keys),
    ``invalid_role``, or ``self_change`` when an admin would disable or demote itself.
    """
    if change.role is not None and change.role not in PEOPLE:
        raise UserError("invalid_role", f"role must be one of {', '.join(sorted(PEOPLE))}")
    with conn.transaction():
        row = conn.execute(
            "SELECT username, role, disabled FROM users WHERE id = %s AND tenant_id = %s "
            "AND role <> 'integration' FOR UPDATE",
            (user_id, tenant_id),
        ).fetchone()
        if row is None:
            raise UserError("user_not_found", "no such user")
        username, role, disabled = str(row[0]), str(row[1]), bool(row[2])
        demoted = change.role is not None and change.role != role
        if user_id == actor_id and (change.disabled or demoted):
            raise UserError("self_change", "an admin cannot disable or demote itself")
        if demoted:
            conn.execute("UPDATE users SET role = %s WHERE id = %s", (change.role, user_id))
            entry = audit.Entry("user_role_changed", tenant_id, actor_id, actor, ip, "user",
                                str(user_id), {"username": username, "from_role": role,
                                               "to_role": change.role})  # fmt: skip
            audit.write_sync(conn, entry)
        if change.disabled is not None and change.disabled != disabled:
            conn.execute("UPDATE users SET disabled = %s WHERE id = %s", (change.disabled, user_id))
            detail: dict[str, object] = {"username": username}
            if change.disabled:
                ended = conn.execute("DELETE FROM sessions WHERE user_id = %s", (user_id,)).rowcount
                detail["sessions_ended"] = ended
            action = "user_disabled" if change.disabled else "user_enabled"
            audit.write_sync(conn, audit.Entry(action, tenant_id, actor_id, actor, ip, "user",
                                               str(user_id), detail))  # fmt: skip
