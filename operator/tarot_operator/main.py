"""The operator process: kopf (standalone), Prometheus metrics, and liveness/readiness endpoints.

With a leader election Lease (several replicas), the process first waits to hold the Lease (standby:
healthy and ready, doing nothing), then starts kopf; it exits at once if it loses the Lease, so that
two replicas never drive the same runs.
"""

from __future__ import annotations

import asyncio
import logging
import os

import kopf
from aiohttp import web
from prometheus_client import start_http_server

from .config import OperatorConfig
from .handlers import OperatorState, build_registry
from .kube import Kube
from .leader import LeaderElector, LeaseSettings
from .metrics import LEADER

log = logging.getLogger(__name__)


async def start_health_server(
    port: int, ready: asyncio.Event, elector: LeaderElector | None = None
) -> web.AppRunner:
    """/healthz answers while the event loop runs; /readyz once kopf has started its watches, or while
    this replica is a standby waiting for the leader election Lease."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if ready.is_set():
            return web.Response(text="ok\n")
        if elector is not None and elector.standby:
            return web.Response(text="standby\n")
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
    elector = None
    if config.leader_election_lease is not None:
        settings = LeaseSettings.parse(config.leader_election_lease, config.leader_election_lease_seconds)
        elector = LeaderElector(kube, settings)
    start_http_server(config.metrics_port)
    health = await start_health_server(config.health_port, ready, elector)
    log.info(
        "tarot operator: %s, metrics on :%d, health on :%d",
        ", ".join(config.namespaces) or "all namespaces",
        config.metrics_port,
        config.health_port,
    )
    keeper: asyncio.Task[None] | None = None
    try:
        if elector is not None:
            await elector.acquire()
            keeper = asyncio.create_task(elector.keep(_lost))
        LEADER.set(1)
        await kopf.operator(
            registry=build_registry(state),
            standalone=True,  # no kopf peering: one replica works at a time (leader.py), or the only one
            clusterwide=not config.namespaces,
            namespaces=list(config.namespaces),
            ready_flag=ready,
        )
    finally:
        LEADER.set(0)
        if keeper is not None:
            keeper.cancel()
        if elector is not None:
            await elector.release()
        await health.cleanup()
        await kube.close()


def _lost() -> None:
    """The Lease could not be renewed in time: another replica may take it any moment, so stop now, without
    any further write (the pod's restart makes this process a standby again)."""
    log.critical("lost the leader election lease: exiting")
    logging.shutdown()
    os._exit(1)


def run(config: OperatorConfig, verbose: bool = False) -> None:
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.PLAIN)
    if not verbose:
        # kopf logs every handler call ("Handler ... succeeded") per watch event: noise at scale.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.DEBUG if verbose else logging.WARNING)  # a line per request
    asyncio.run(serve(config))
