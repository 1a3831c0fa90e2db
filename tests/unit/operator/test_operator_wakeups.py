"""The wake-up handlers reach a run's reconcile loop, from kopf's own invocation, and coalesce.

Each handler is called the way kopf calls it: `invocation.invoke` with the watch event's cause, which
awaits an `async def` handler on the event loop and runs a plain `def` one in kopf's thread pool. The
loop runs in asyncio's debug mode, where a call into the loop from another thread (such as
`asyncio.Event.set()` from a thread-pool handler: asyncio is not thread-safe) raises instead of
racing, so a wake-up that is not delivered on the loop fails here every time rather than once in a
while in production (a lost wake-up leaves the run waiting for its resync timer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

import kopf
import pytest
from kopf._core.actions import invocation
from kopf._core.intents import causes
from tarot_operator.config import OperatorConfig
from tarot_operator.handlers import OperatorState, build_registry
from tarot_operator.kube import Kube
from tarot_operator.names import CHILD_LABEL, GROUP, PLURAL, RUN_LABEL, VERSION
from tarot_operator.observe import summarize_deployment, summarize_job
from tarot_operator.reconcile import Observation, RunMemory

NAMESPACE, RUN = "ns", "r1"
KEY = (NAMESPACE, RUN)
BOUND_S = 1.0  # a wake-up on the loop takes a few loop iterations; the resync timer is 60 s


def _child(kind: str, name: str, **extra: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "tarot-operator", RUN_LABEL: RUN}
    return {"kind": kind, "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels}, **extra}


RUN_BODY: dict[str, Any] = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "TarotRun",
    "metadata": {"name": RUN, "namespace": NAMESPACE, "uid": "u-1", "generation": 1},
    "spec": {},
}
EVENTS: dict[str, tuple[kopf.Resource, dict[str, Any]]] = {
    "job-changed": (kopf.Resource("batch", "v1", "jobs"), _child("Job", f"{RUN}-data")),
    "sandbox-changed": (kopf.Resource("apps", "v1", "deployments"), _child("Deployment", f"{RUN}-sandbox")),
    "pod-changed": (
        kopf.Resource("", "v1", "pods"),
        _child("Pod", f"{RUN}-data-x", status={"phase": "Succeeded"}),
    ),
    "run-changed": (kopf.Resource(GROUP, VERSION, PLURAL), RUN_BODY),
}


class CountingReconciler:
    """Stands in for the Reconciler: counts the passes; a pass may be held open by `gate`."""

    def __init__(self) -> None:
        self.passes = 0
        self.gate: asyncio.Event | None = None

    async def reconcile(self, run: dict[str, Any], memory: RunMemory, seen: Observation) -> None:
        self.passes += 1
        if self.gate is not None:
            await self.gate.wait()

    async def reached(self, passes: int) -> bool:
        """Whether the count reaches `passes` within the bound; then a pause, for any pass too many."""
        deadline = time.monotonic() + BOUND_S
        while self.passes < passes and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.2)  # many loop iterations: a spurious extra pass would have started
        return self.passes == passes


def _on_debug_loop(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Runs `scenario` on a fresh loop in asyncio's debug mode.

    The loop is closed without awaiting what is left on it: a task whose wake-up was lost to a call
    from another thread can never finish, and awaiting it would hang the test instead of failing it."""
    loop = asyncio.new_event_loop()
    loop.set_debug(True)
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()


async def _woken(waiter: asyncio.Future[Any]) -> bool:
    """Whether `waiter` completes within the bound (not cancelled on timeout: see _on_debug_loop)."""
    await asyncio.wait({waiter}, timeout=BOUND_S)
    return waiter.done()


def _state() -> OperatorState:
    # The wake-ups and the loop never reach the API: the reconciler is replaced where one runs.
    return OperatorState(OperatorConfig(), cast(Kube, object()))


def _handler(registry: kopf.OperatorRegistry, handler_id: str) -> Callable[..., Any]:
    handlers = [*registry._watching.get_all_handlers(), *registry._spawning.get_all_handlers()]
    [fn] = [h.fn for h in handlers if h.id == handler_id]
    return fn


async def _deliver(registry: kopf.OperatorRegistry, handler_id: str) -> None:
    """One watch event to one handler, as kopf's watcher delivers it (kopf._core.actions.execution)."""
    await _deliver_body(registry, handler_id, EVENTS[handler_id][1])


async def _deliver_body(registry: kopf.OperatorRegistry, handler_id: str, body: dict[str, Any]) -> None:
    resource = EVENTS[handler_id][0]
    cause = causes.WatchingCause(
        logger=logging.getLogger("test"),
        indices={},  # kopf passes the indexes to every handler; none of these reads one
        memo=kopf.Memo(),
        resource=resource,
        patch=kopf.Patch(),
        body=kopf.Body(body),
        type="MODIFIED",
        event={"type": "MODIFIED", "object": body},
    )
    kwargs = {"param": None, "retry": 0, "started": None, "runtime": None}
    await invocation.invoke(
        _handler(registry, handler_id), settings=kopf.OperatorSettings(), kwargsrc=cause, kwargs=kwargs
    )


@pytest.mark.parametrize("handler_id", list(EVENTS))
def test_a_wake_up_reaches_the_waiting_loop_of_its_run(handler_id: str) -> None:
    async def scenario() -> None:
        state = _state()
        registry = build_registry(state)
        waiter = asyncio.ensure_future(state.memory(KEY).wake.wait())  # the run's loop, between passes
        await asyncio.sleep(0)
        assert not waiter.done()
        error: BaseException | None = None
        try:
            await _deliver(registry, handler_id)
        except Exception as exc:  # reported with the outcome that matters: did the loop wake?
            error = exc
        assert await _woken(waiter), f"the run's loop was not woken within {BOUND_S} s ({error!r})"
        assert error is None

    _on_debug_loop(scenario)


class Daemon:
    """The real reconcile daemon of one run (its reconciler counted), started and stopped."""

    def __init__(self) -> None:
        self.state = _state()
        self.reconciler = CountingReconciler()
        self.state.reconciler = self.reconciler  # type: ignore[assignment]
        self.registry = build_registry(self.state)
        self.task: asyncio.Task[Any] | None = None

    async def start(self, **seen: list[Any]) -> None:
        """Its first pass done (having seen `seen`: index name -> this run's summaries), waiting."""
        drive = _handler(self.registry, "reconcile")
        indexes: dict[str, dict[Any, Any]] = {
            name: ({KEY: seen[name]} if name in seen else {})
            for name in ("tarot_jobs", "tarot_pods", "tarot_sandboxes", "tarot_configs")
        }
        self.task = asyncio.create_task(
            drive(namespace=NAMESPACE, name=RUN, body=RUN_BODY, logger=logging.getLogger("test"), **indexes)
        )
        assert await self.reconciler.reached(1)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.wait({self.task}, timeout=BOUND_S)

    async def deliver(self, *handler_ids: str) -> None:
        """Events to the handlers, all in one loop iteration."""
        await asyncio.gather(*(_deliver(self.registry, handler_id) for handler_id in handler_ids))


def _on_a_running_daemon(scenario: Callable[[Daemon], Coroutine[Any, Any, None]], **seen: list[Any]) -> None:
    """Runs `scenario` on a started Daemon (having seen `seen`), on a debug loop; stops the daemon after."""

    async def run() -> None:
        daemon = Daemon()
        await daemon.start(**seen)
        try:
            await scenario(daemon)
        finally:
            await daemon.stop()

    _on_debug_loop(run)


def test_wake_ups_arriving_together_make_one_pass() -> None:
    async def scenario(daemon: Daemon) -> None:
        # A burst: the Jobs', the sandbox's, a pod's and the run's own events in one loop iteration.
        await daemon.deliver(*["job-changed"] * 3, *["sandbox-changed"] * 2, "pod-changed", "run-changed")
        assert await daemon.reconciler.reached(2), daemon.reconciler.passes
        await daemon.deliver("job-changed")  # a later event is a later pass
        assert await daemon.reconciler.reached(3), daemon.reconciler.passes

    _on_a_running_daemon(scenario)


def test_wake_ups_during_a_pass_make_one_more_pass() -> None:
    async def scenario(daemon: Daemon) -> None:
        reconciler = daemon.reconciler
        reconciler.gate = asyncio.Event()
        await daemon.deliver("run-changed")
        assert await reconciler.reached(2), reconciler.passes  # and held open
        # While that pass waits on the API server, the children change several times, one by one.
        for handler_id in ["job-changed", "sandbox-changed", "job-changed", "pod-changed"]:
            await daemon.deliver(handler_id)
            await asyncio.sleep(0.01)
        reconciler.gate.set()
        # The changes are seen by one more pass, not by one pass each.
        assert await reconciler.reached(3), reconciler.passes

    _on_a_running_daemon(scenario)


def test_an_event_that_changes_no_summary_does_not_wake() -> None:
    """A rollout's or a Job's status churn: the summary the last pass read is the same, so no pass."""
    _, deployment = EVENTS["sandbox-changed"]
    _, job = EVENTS["job-changed"]
    labelled = {**job, "metadata": {**job["metadata"], "labels": {**job["metadata"]["labels"]}}}
    labelled["metadata"]["labels"][CHILD_LABEL] = "data"
    seen_job = summarize_job(labelled)
    assert seen_job is not None

    async def scenario(daemon: Daemon) -> None:
        await daemon.deliver("sandbox-changed")
        await _deliver_body(daemon.registry, "job-changed", labelled)
        assert await daemon.reconciler.reached(1), daemon.reconciler.passes
        available = {**deployment, "status": {"conditions": [{"type": "Available", "status": "True"}]}}
        await _deliver_body(daemon.registry, "sandbox-changed", available)
        assert await daemon.reconciler.reached(2), daemon.reconciler.passes

    _on_a_running_daemon(scenario, tarot_sandboxes=[summarize_deployment(deployment)], tarot_jobs=[seen_job])
