"""A lender's webhook receiver for the demo: checks each signature, counts, answers 204.

Runs on a thread of the ``vgr demo`` process on a loopback port; the demo
registers it as the demo tenant's endpoint, so the dispatcher really delivers
(and the cockpit's webhook health has something to show).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

from aiohttp import web

from cloud.localsvc import free_port


class DemoReceiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.secret = ""
        self.received: Counter[str] = Counter()  # event type -> count
        self.bad_signatures = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="demo-webhooks", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/vgr-webhooks"

    async def _handle(self, request: web.Request) -> web.Response:
        from standardwebhooks import Webhook

        body = await request.read()
        try:
            doc = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return web.Response(status=400, text="bad signature")
        kind = doc.get("type") if isinstance(doc, dict) else None
        self.received[str(kind)] += 1
        return web.Response(status=204)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/vgr-webhooks", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
