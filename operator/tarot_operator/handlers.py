"""kopf handlers: they only observe and apply; every decision is the planner's.

- a daemon per TarotRun is its reconcile loop: it reconciles, then sleeps until something about the
  run changes (a wake-up) or `resync_seconds` pass (the timer). Creation, operator restarts (resume)
  and spec updates all start or wake it; one loop per run means a run is never reconciled twice at once.
- indexes keep small summaries of the runs' Jobs, their pods (for termination messages) and the sandbox
  Deployments, keyed by (namespace, run): reads cost no API request. kopf fills every index before
  any handler runs, so a restarted operator sees every existing child before it could create one.
- event handlers on those children (and on the run itself, e.g. a status patch from a train pod)
  wake the run's loop.
- deletion: children are garbage-collected through their ownerReferences; with
  storage.retainOnDelete the workspace PVC's ownerReference is dropped first.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
import kopf

from tarot_jobs.lifecycle.types import ChildKind, ChildRef, RunEvent

from . import metrics
from .config import OperatorConfig
from .kube import ApiError, Kube
from .names import GROUP, MANAGED_BY, PLURAL, RUN_LABEL, VERSION, child_name
from .observe import (
    ConfigSummary,
    DeploymentSummary,
    JobSummary,
    PodSummary,
    summarize_config,
    summarize_deployment,
    summarize_job,
    summarize_pod,
)
from .reconcile import Observation, Reconciler, RunMemory, object_path

log = logging.getLogger(__name__)

FINALIZER = "tarot.dev/finalizer"
ANNOTATION_PREFIX = "tarot.dev"
ERROR_BACKOFF_S = 5.0
# Label filters (kopf's `labels=`): a value, or kopf.PRESENT for any value.
MANAGED: dict[str, Any] = {
    "app.kubernetes.io/managed-by": MANAGED_BY,
    RUN_LABEL: kopf.PRESENT,
}
RunKey = tuple[str, str]


class OperatorState:
    """Per-process state shared by the handlers: the reconciler and each run's memory."""

    def __init__(self, config: OperatorConfig, kube: Kube) -> None:
        self.config = config
        self.kube = kube
        self.reconciler = Reconciler(kube, config)
        self.runs: dict[RunKey, RunMemory] = {}

    def memory(self, key: RunKey) -> RunMemory:
        return self.runs.setdefault(key, RunMemory())

    def wake(self, key: RunKey) -> None:
        """Wake the run's reconcile loop, if it has one. Only on the event loop: asyncio.Event is not
        thread-safe (set from another thread, the loop may not see it until something else wakes it)."""
        memory = self.runs.get(key)
        if memory is not None:
            memory.wake.set()


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base, neither stored nor read: every event is a creation without handlers to kopf, and
    only the deletion handler (with its finalizer) and the daemons, indexes and event handlers act."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def _values(index: kopf.Index[RunKey, Any], key: RunKey) -> list[Any]:
    store: Iterable[Any] = index.get(key, ())
    return [value for value in store if value is not None]


def build_registry(state: OperatorState) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    config = state.config

    @kopf.on.login(id="login", registry=registry)
    def login(logger: kopf.Logger, settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as the operator's own client: in-cluster account, else the kubeconfig.
        return kopf.login_via_client(logger=logger, settings=settings)

    @kopf.on.startup(id="settings", registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
        # No create/update/field handler reads kopf's diff base (its last-handled-configuration annotation):
        # not writing it saves a PATCH of every new run, and the watch event and wake-up that follow it.
        settings.persistence.diffbase_storage = NoDiffBase()
        # Watching named namespaces needs no cluster-wide reads: with scanning off, kopf watches the
        # names as given instead of listing namespaces and CRDs (which a namespace-scoped Role can't).
        settings.scanning.disabled = bool(config.namespaces)
        # A watch that goes silent (a dropped connection, a stuck proxy) is ended and restarted
        # rather than waited on forever.
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.connect_timeout = 10
        settings.networking.request_timeout = 60
        settings.networking.connect_timeout = 10

    # -- indexes: small summaries of the children, keyed by their run ---------------------------

    @kopf.index("batch", "v1", "jobs", id="tarot_jobs", labels=MANAGED, registry=registry)
    def tarot_jobs(body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any) -> Any:
        summary = summarize_job(dict(body))
        return None if summary is None else {_run_key(namespace, labels): summary}

    @kopf.index("", "v1", "pods", id="tarot_pods", labels=MANAGED, registry=registry)
    def tarot_pods(body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any) -> Any:
        summary = summarize_pod(dict(body))
        return None if summary is None else {_run_key(namespace, labels): summary}

    sandboxes: dict[str, Any] = {**MANAGED, "app.kubernetes.io/component": "sandbox"}

    @kopf.index("apps", "v1", "deployments", id="tarot_sandboxes", labels=sandboxes, registry=registry)
    def tarot_sandboxes(body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any) -> Any:
        return {_run_key(namespace, labels): summarize_deployment(dict(body))}

    # The run's ConfigMap, as a digest of its data: a restarted operator finds it unchanged without a request.
    configs: dict[str, Any] = {**MANAGED, "app.kubernetes.io/component": "config"}

    @kopf.index("", "v1", "configmaps", id="tarot_configs", labels=configs, registry=registry)
    def tarot_configs(body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any) -> Any:
        return {_run_key(namespace, labels): summarize_config(dict(body))}

    # -- wake-ups ----------------------------------------------------------------------------
    # `async def`: kopf awaits these on the event loop, where asyncio.Event.set() must be called
    # (a plain `def` would run in kopf's thread pool, and asyncio is not thread-safe).

    # A child's event wakes its run only if the child's summary differs from what the run's last pass
    # saw: most events of a rollout or a running Job change nothing the planner reads. A deletion, or a
    # run with no pass yet, always wakes it.
    def wake_unless_seen(
        namespace: str | None, labels: kopf.Labels, type: str | None, seen: Callable[[RunMemory], bool]
    ) -> None:
        key = _run_key(namespace, labels)
        memory = state.runs.get(key)
        if memory is not None and type != "DELETED" and seen(memory):
            return
        state.wake(key)

    @kopf.on.event("batch", "v1", "jobs", id="job-changed", labels=MANAGED, registry=registry)
    async def job_changed(
        body: kopf.Body, namespace: str | None, labels: kopf.Labels, type: str | None, **_: Any
    ) -> None:
        summary = summarize_job(dict(body))
        wake_unless_seen(
            namespace,
            labels,
            type,
            lambda memory: summary is not None and memory.seen_jobs.get(summary.name) == summary,
        )

    @kopf.on.event("apps", "v1", "deployments", id="sandbox-changed", labels=sandboxes, registry=registry)
    async def sandbox_changed(
        body: kopf.Body, namespace: str | None, labels: kopf.Labels, type: str | None, **_: Any
    ) -> None:
        summary = summarize_deployment(dict(body))
        wake_unless_seen(namespace, labels, type, lambda memory: memory.seen_deployment == summary)

    @kopf.on.event("", "v1", "pods", id="pod-changed", labels=MANAGED, registry=registry)
    async def pod_changed(namespace: str | None, labels: kopf.Labels, status: kopf.Status, **_: Any) -> None:
        if status.get("phase") in ("Succeeded", "Failed"):  # a result or a failure to read
            state.wake(_run_key(namespace, labels))

    @kopf.on.event(GROUP, VERSION, PLURAL, id="run-changed", registry=registry)
    async def run_changed(namespace: str | None, name: str, **_: Any) -> None:
        state.wake((namespace or "", name))

    # -- the reconcile loop of one run --------------------------------------------------------

    @kopf.daemon(GROUP, VERSION, PLURAL, id="reconcile", registry=registry, cancellation_timeout=1.0)
    async def drive(namespace: str | None, name: str, body: kopf.Body, **indexes: Any) -> None:
        # kopf passes each index as a keyword argument named by its id (not in its handler protocols).
        jobs: kopf.Index[RunKey, JobSummary] = indexes["tarot_jobs"]
        pods: kopf.Index[RunKey, PodSummary] = indexes["tarot_pods"]
        sandboxes: kopf.Index[RunKey, DeploymentSummary] = indexes["tarot_sandboxes"]
        configs: kopf.Index[RunKey, ConfigSummary] = indexes["tarot_configs"]
        key = (namespace or "", name)  # TarotRuns are namespaced: kopf always names the namespace
        memory = state.memory(key)
        while True:
            memory.wake.clear()
            run = _snapshot(body)  # the live body: kopf updates it with every watch event
            if run["metadata"].get("deletionTimestamp"):
                return
            seen = Observation(
                jobs=_values(jobs, key),
                pods=_values(pods, key),
                deployment=next(iter(_values(sandboxes, key)), None),
                config=None if memory.adopted else next(iter(_values(configs, key)), None),
            )
            memory.seen_jobs = {job.name: job for job in seen.jobs}
            memory.seen_deployment = seen.deployment
            started = time.perf_counter()
            wait = config.resync_seconds
            try:
                plan = await state.reconciler.reconcile(run, memory, seen)
                metrics.RECONCILES.labels("success").inc()
                memory.last_error = None
                if plan is not None and plan.status.get("phase") in ("Succeeded", "Failed"):
                    wait = max(wait, 600.0)  # nothing left to do; woken by any change anyway
            except (ApiError, httpx.HTTPError, OSError) as exc:  # the API server refused or is unreachable
                metrics.RECONCILES.labels("error").inc()
                log.warning(
                    "reconciling %s/%s failed, retrying in %.0f s: %s", namespace, name, ERROR_BACKOFF_S, exc
                )
                await _tell(
                    state, run, memory, f"reconciling failed, retrying every {ERROR_BACKOFF_S:.0f} s: {exc}"
                )
                wait = ERROR_BACKOFF_S
            except Exception:  # a bug: logged with its traceback and counted; the loop of this run goes on
                metrics.RECONCILES.labels("error").inc()
                log.exception(
                    "reconciling %s/%s failed, retrying in %.0f s", namespace, name, ERROR_BACKOFF_S
                )
                wait = ERROR_BACKOFF_S
            finally:
                metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(memory.wake.wait(), timeout=wait)

    # -- deletion -----------------------------------------------------------------------------

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="release", registry=registry)
    async def release(namespace: str | None, name: str, body: kopf.Body, spec: kopf.Spec, **_: Any) -> None:
        namespace = namespace or ""  # TarotRuns are namespaced: kopf always names the namespace
        state.runs.pop((namespace, name), None)
        metrics.forget_run(namespace, name)
        storage = spec.get("storage") or {}
        if storage.get("retainOnDelete"):
            # Without its ownerReference the garbage collector leaves the PVC (and its checkpoints).
            claim = child_name(name, ChildRef(ChildKind.WORKSPACE))
            path = object_path("PersistentVolumeClaim", namespace, claim)
            try:
                await state.kube.merge_patch(path, {"metadata": {"ownerReferences": None}})
                kept = RunEvent(
                    "Normal", "WorkspaceRetained", f"PVC {claim} is kept (storage.retainOnDelete)"
                )
                await state.reconciler.post_event(dict(body), kept)
            except ApiError as err:
                if err.status != 404:
                    raise

    return registry


def _snapshot(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the run for one pass, without metadata.managedFields (the largest part, never read)."""
    meta = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return copy.deepcopy({**{k: v for k, v in body.items() if k != "metadata"}, "metadata": meta})


def _run_key(namespace: str | None, labels: Mapping[str, str]) -> RunKey:
    # kopf's `namespace` is None only for cluster-scoped objects; every resource watched here is namespaced.
    return (namespace or "", labels[RUN_LABEL])


async def _tell(state: OperatorState, run: dict[str, Any], memory: RunMemory, message: str) -> None:
    """A Warning Event on the run for a reconcile error, once per distinct message (no event storm)."""
    if memory.last_error == message:
        return
    memory.last_error = message
    with contextlib.suppress(ApiError, httpx.HTTPError, OSError):
        await state.reconciler.post_event(run, RunEvent("Warning", "ReconcileError", message))
