"""Typed keys for what the application and each request carry."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
from psycopg import AsyncConnection, Connection
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from cloud.api.clientip import Network
from cloud.api.passwords import Passwords
from cloud.api.policy import Caller, RoutePolicy
from cloud.api.sessions import Session
from cloud.config import ApiSettings

POOL: Final = web.AppKey[AsyncConnectionPool[AsyncConnection[Any]]]("api_pool")
# Blocking connections for library code written for psycopg's sync API
# (cloud.risk.alerts.set_status), used from worker threads.
SYNC_POOL: Final = web.AppKey[ConnectionPool[Connection[Any]]]("api_sync_pool")
SETTINGS: Final = web.AppKey("api_settings", ApiSettings)
PASSWORDS: Final = web.AppKey("api_passwords", Passwords)
POLICIES: Final = web.AppKey[dict[web.AbstractRoute, RoutePolicy]]("api_policies")
TRUSTED_PROXIES: Final = web.AppKey[tuple[Network, ...]]("api_trusted_proxies")

CALLER: Final = web.RequestKey("api_caller", Caller)
SESSION: Final = web.RequestKey("api_session", Session)
CLIENT_IP: Final = web.RequestKey[str | None]("api_client_ip")
