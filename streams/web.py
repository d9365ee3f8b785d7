"""The web side of cityorder's helper services (the ledger, adapters, webhooks): ``/metrics``
and ``/healthz`` on a port of their own, served beside the service's main coroutine; a service
adds its own pages (the ledger its ``/readyz``).

The worker (Faust's web server) and the console (the console itself) keep their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.metrics import scrape


def metrics_app(registry: CollectorRegistry) -> web.Application:
    """``/metrics`` (``registry`` in Prometheus's text format; ``?name[]=...`` for some series
    only) and ``/healthz`` (the process answers)."""
    app = web.Application()

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=scrape(registry, request.query),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


async def serve_beside(run: Callable[[], Awaitable[None]], app: web.Application, port: int) -> None:
    """Serve ``app`` on ``port`` (all interfaces: Prometheus scrapes from elsewhere) while
    ``run()`` runs, and stop serving when it ends or is cancelled."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    try:
        await run()
    finally:
        await runner.cleanup()
