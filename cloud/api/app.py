"""The API application: connection pools, JSON errors, access control, the routes.

Every route comes from a module's :class:`~cloud.api.policy.Routes` table
listed in :data:`ROUTE_TABLES`, so every route has a declared policy; the
access-control middleware refuses one that somehow has none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import web
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from cloud.api import (
    alerts,
    audit,
    auth,
    cases,
    cockpit,
    commands,
    devices,
    lending,
    live,
    loans,
    openapi,
    people,
    pois,
    policies,
    prometheus,
    queue,
    regions,
    static,
    tenants,
    tracks,
    vehicles,
    webhook_routes,
)
from cloud.api.clientip import parse_networks
from cloud.api.errors import json_errors, no_store
from cloud.api.middleware import access_control
from cloud.api.passwords import Passwords
from cloud.api.policy import RoutePolicy, Routes, RouteSpec
from cloud.api.state import PASSWORDS, POLICIES, POOL, SETTINGS, SYNC_POOL, TRUSTED_PROXIES
from cloud.config import ApiSettings
from cloud.webhooks.config import WebhookSettings

ROUTE_TABLES: tuple[Routes, ...] = (
    auth.routes,
    alerts.routes,
    vehicles.routes,
    audit.routes,
    lending.routes,
    tenants.routes,
    people.routes,
    tracks.routes,
    policies.routes,
    loans.routes,
    devices.routes,
    regions.routes,
    pois.routes,
    cockpit.routes,
    prometheus.routes,
    live.routes,
    static.routes,
    queue.routes,
    cases.routes,
    commands.routes,
    webhook_routes.routes,
    openapi.routes,
)


def route_specs() -> Iterator[RouteSpec]:
    for table in ROUTE_TABLES:
        yield from table.specs


def passwords_for(settings: ApiSettings) -> Passwords:
    return Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        max_concurrent=settings.max_concurrent_hashes,
    )


def build_app(
    dsn: str,
    *,
    settings: ApiSettings | None = None,
    pool_min: int = 1,
    pool_max: int = 8,
    sync_pool_max: int = 2,
    commander: commands.CommanderFactory | None = None,
    webhooks: WebhookSettings | None = None,
) -> web.Application:
    """The API. ``commander`` makes what sends tracker commands (none: chase routes
    answer 503); ``webhooks`` are the ``[webhooks]`` settings (SSRF guard, secret overlap)."""
    settings = settings or ApiSettings()
    app = web.Application(middlewares=[json_errors, access_control], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app[PASSWORDS] = passwords_for(settings)
    app[TRUSTED_PROXIES] = parse_networks(settings.trusted_proxies)
    policies: dict[web.AbstractRoute, RoutePolicy] = {}
    for spec in route_specs():
        policies[app.router.add_route(spec.method, spec.path, spec.handler)] = spec.policy
    app[POLICIES] = policies
    app[regions.BASEMAPS] = regions.BasemapCache()  # encoded basemaps, made on demand
    prometheus.install(app)  # /metrics: allowed networks, request counts
    app[commands.COMMANDER] = commander
    app[webhook_routes.WEBHOOKS] = webhooks or WebhookSettings()
    openapi.install(app, route_specs())  # GET /openapi.json, built once

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn, min_size=pool_min, max_size=pool_max, open=False, name="api"
        )
        sync_pool: ConnectionPool[Any] = ConnectionPool(
            dsn, min_size=1, max_size=sync_pool_max, open=False, name="api-sync"
        )
        await pool.open(wait=True, timeout=30.0)
        try:
            await asyncio.to_thread(sync_pool.open, wait=True, timeout=30.0)
            app[POOL], app[SYNC_POOL] = pool, sync_pool
            await asyncio.to_thread(app[PASSWORDS].warm_up)
            yield
        finally:
            await asyncio.to_thread(sync_pool.close)
            await pool.close()

    app.cleanup_ctx.append(database)
    live.install(app)  # the live map's feed: after the pools, stopped before them
    app.on_response_prepare.append(no_store)
    return app
