"""The API application: a connection pool, JSON errors, the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from psycopg_pool import AsyncConnectionPool

from cloud.api import lending


def build_app(dsn: str, *, pool_min: int = 1, pool_max: int = 8) -> web.Application:
    app = web.Application(middlewares=[lending.json_errors], client_max_size=64 * 1024)

    async def database(app: web.Application) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(dsn, min_size=pool_min, max_size=pool_max, open=False,
                                   name="api")  # fmt: skip
        await pool.open(wait=True, timeout=30.0)
        app[lending.POOL] = pool
        try:
            yield
        finally:
            await pool.close()

    app.cleanup_ctx.append(database)
    lending.add_routes(app)
    return app
