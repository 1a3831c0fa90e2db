"""The operator process: kopf (standalone), Prometheus metrics, and liveness/readiness endpoints."""

from __future__ import annotations

import asyncio
import logging

import kopf
from aiohttp import web
from prometheus_client import start_http_server

from .config import OperatorConfig
from .handlers import OperatorState, build_registry
from .kube import Kube

log = logging.getLogger(__name__)


async def start_health_server(port: int, ready: asyncio.Event) -> web.AppRunner:
    """/healthz answers while the event loop runs; /readyz once kopf has started its watches."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready.is_set():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="starting\n")

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


async def serve(config: OperatorConfig) -> None:
    kube = Kube.connect()
    state = OperatorState(config, kube)
    ready = asyncio.Event()
    start_http_server(config.metrics_port)
    health = await start_health_server(config.health_port, ready)
    log.info(
        "tarot operator: %s, metrics on :%d, health on :%d",
        ", ".join(config.namespaces) or "all namespaces",
        config.metrics_port,
        config.health_port,
    )
    try:
        await kopf.operator(
            registry=build_registry(state),
            standalone=True,
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            ready_flag=ready,
        )
    finally:
        await health.cleanup()
        await kube.close()


def run(config: OperatorConfig, verbose: bool = False) -> None:
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN)
    if not verbose:
        # kopf logs every handler call ("Handler ... succeeded") per watch event: noise at scale.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)  # a line per request
    asyncio.run(serve(config))
