"""One reconciliation of a run: observe its children, ask the planner, apply the plan.

The planner (tarot_jobs.lifecycle.planner) decides everything; this module only turns its answer into
API requests: create the children it lists that do not exist (adopting any that do: names are
deterministic, a 409 means "already there"), suspend or resume Jobs, write the status as a minimal
merge patch, and hand the events to the caller. Reads come from the watches' in-memory indexes, so a
run whose children did not change costs no API request at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from tarot_jobs.lifecycle import planner
from tarot_jobs.lifecycle.types import ChildKind, ChildRef, ChildState, ObservedChild, Plan, RunEvent
from tarot_jobs.spec.model import TarotRunSpec

from . import metrics
from .access import progress_account, progress_role, progress_role_binding
from .config import JobSandbox, OperatorConfig
from .events import run_event
from .generation import (
    GENERATION_SERVER,
    generation_server_deployment,
    generation_server_service,
    generation_server_url,
)
from .jobs import JobSettings, needs_rendezvous_service, rendezvous_service, stage_job
from .kube import ApiError, Kube, collection_path
from .names import GROUP, JSON, PLURAL, VERSION, child_name
from .observe import (
    ConfigSummary,
    DeploymentSummary,
    JobSummary,
    PodSummary,
    config_digest,
    observe_job,
    observe_sandbox,
)
from .patching import merge_patch
from .run_spec import parse_spec, spec_yaml
from .sandbox import sandbox_deployment, sandbox_network_policy, sandbox_service, sandbox_url
from .workspace import run_config, workspace_claim

log = logging.getLogger(__name__)

# Children that are services (created here, observed or not), not stage Jobs.
_RESOURCES = {
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims"),
    "ConfigMap": ("v1", "configmaps"),
    "Service": ("v1", "services"),
    "ServiceAccount": ("v1", "serviceaccounts"),
    "Deployment": ("apps/v1", "deployments"),
    "NetworkPolicy": ("networking.k8s.io/v1", "networkpolicies"),
    "Role": ("rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io/v1", "rolebindings"),
    "Job": ("batch/v1", "jobs"),
    "Event": ("v1", "events"),
}


def object_path(kind: str, namespace: str, name: str | None = None) -> str:
    api_version, plural = _RESOURCES[kind]
    path = collection_path(api_version, plural, namespace)
    return path if name is None else f"{path}/{name}"


def status_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"


@dataclass
class RunMemory:
    """What this operator process knows of one run beyond the watches: which objects it made sure of."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ensured: set[str] = field(default_factory=set)  # "Kind/name" created or found to exist
    config_data: dict[str, str] | None = None  # the ConfigMap data last written
    config_digest: str | None = None  # the digest of the ConfigMap's data found by a new process (index)
    config_key: tuple[Any, ...] | None = None  # what config_data was rendered from (spec, URLs, policy)
    sandbox_stopped: bool = False
    # The vLLM server's Deployment: True once made sure it runs (1 replica), False once scaled to 0,
    # None when this process does not know (no index watches it; see _stop_generation_server).
    generation_server: bool | None = None
    last_error: str | None = None  # the last reconcile error told to the run as an Event
    # The run as the last status patch returned it, and the resourceVersion it replaced: until the
    # watch delivers a newer version, the live body is older than what this process wrote.
    written: JSON | None = None
    replaced_version: str | None = None
    # The parsed spec and the (uid, generation) it was parsed at: the API server bumps the generation on
    # every spec change, so a wake-up for anything else (a child, a status patch) does not parse it again.
    spec: tuple[tuple[Any, Any], TarotRunSpec] | None = None
    # Whether this process has taken over what the watches show of the run's earlier children (first pass).
    adopted: bool = False
    # The children's summaries as the last pass read them from the indexes: a watch event whose summary
    # is the same (a Deployment's rollout counters, a Job's status timestamps) changes no decision, so
    # it does not wake the run (handlers.py).
    seen_jobs: dict[str, JobSummary] = field(default_factory=dict)
    seen_deployment: DeploymentSummary | None = None

    def freshest(self, run: JSON) -> JSON:
        """The live body, unless the status this process wrote is newer than it.

        The watch may first deliver versions written between this process's read and its write (kopf's
        finalizer patch, a train pod's progress): those are older than the write too. resourceVersions
        are etcd revisions, so they compare as integers; should one not be an integer, only the version
        the write replaced counts as older."""
        if self.written is None:
            return run
        version = run["metadata"].get("resourceVersion")
        if version == self.replaced_version or _older(
            version, self.written["metadata"].get("resourceVersion")
        ):
            return self.written
        self.written = self.replaced_version = None
        return run


def _older(version: str | None, than: str | None) -> bool:
    if version is None or than is None or not (version.isdigit() and than.isdigit()):
        return False
    return int(version) < int(than)


@dataclass
class Observation:
    """The run's children as the watches saw them."""

    jobs: list[JobSummary]
    pods: list[PodSummary]
    deployment: DeploymentSummary | None
    config: ConfigSummary | None = None


class Reconciler:
    def __init__(self, kube: Kube, config: OperatorConfig) -> None:
        self.kube = kube
        self.config = config

    async def reconcile(self, run: JSON, memory: RunMemory, seen: Observation) -> Plan | None:
        run = memory.freshest(run)  # never plan from a status older than the one this process wrote
        meta = run["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        status = dict(run.get("status") or {})
        try:
            spec = self._spec(run, memory)
        except ValidationError as exc:
            await self._reject(run, status, planner.invalid_spec(status, exc, datetime.now(UTC)))
            return None
        if not memory.adopted:
            self.adopt(run, memory, seen)
        observed = self.observe(spec, status, memory, seen)
        plan = planner.plan(spec, status, observed, datetime.now(UTC), generation=meta.get("generation"))
        jobs = {job.ref: job for job in seen.jobs}
        await self.apply_children(run, spec, plan, memory, jobs, seen.deployment)
        await self.apply_suspension(run, plan, jobs)
        # Events go out before the status that records their transition: a crash in between makes the
        # next process emit them again (at least once) rather than never.
        await asyncio.gather(*(self.post_event(run, event) for event in plan.events))
        patch = merge_patch(status, plan.status)
        if patch:
            written = await self._patch_status(namespace, name, patch)
            if written:
                memory.written, memory.replaced_version = written, meta.get("resourceVersion")
        metrics.update_run(namespace, name, plan.status)
        return plan

    @staticmethod
    def _spec(run: JSON, memory: RunMemory) -> TarotRunSpec:
        meta = run["metadata"]
        key = (meta.get("uid"), meta.get("generation"))
        if memory.spec is not None and memory.spec[0] == key and key[1] is not None:
            return memory.spec[1]
        spec = parse_spec(run)
        memory.spec = (key, spec)
        return spec

    @staticmethod
    def adopt(run: JSON, memory: RunMemory, seen: Observation) -> None:
        """What a restarted (or newly elected) operator need not create again, from the watches alone.

        The sandbox Deployment is created only after the workspace PVC, the ConfigMap, the sandbox's
        Service and NetworkPolicy exist, and every Job only after all of them: so a Deployment or a Job
        in the index proves those exist, and the first pass of a new process writes nothing for them."""
        memory.adopted = True
        name = run["metadata"]["name"]
        sandbox = child_name(name, ChildRef(ChildKind.SANDBOX))
        workspace = f"PersistentVolumeClaim/{child_name(name, ChildRef(ChildKind.WORKSPACE))}"
        if seen.deployment is not None:
            memory.ensured |= {
                workspace,
                f"Service/{sandbox}",
                f"NetworkPolicy/{sandbox}",
                f"Deployment/{sandbox}",
            }
        if seen.jobs:
            memory.ensured.add(workspace)
        if seen.config is not None:
            memory.config_digest = seen.config.digest

    def observe(
        self, spec: TarotRunSpec, status: JSON, memory: RunMemory, seen: Observation
    ) -> dict[ChildRef, ObservedChild]:
        live = (status.get("curriculum") or {}).get("live")
        observed = {job.ref: observe_job(job, seen.pods, live) for job in seen.jobs}
        workspace = ChildRef(ChildKind.WORKSPACE)
        if any(key.startswith("PersistentVolumeClaim/") for key in memory.ensured):
            observed[workspace] = ObservedChild(workspace, ChildState.RUNNING)
        sandbox = observe_sandbox(seen.deployment)
        if sandbox is not None:
            observed[sandbox.ref] = sandbox
        return observed

    # -- children ---------------------------------------------------------------------------

    async def apply_children(
        self,
        run: JSON,
        spec: TarotRunSpec,
        plan: Plan,
        memory: RunMemory,
        jobs: dict[ChildRef, JobSummary],
        deployment: DeploymentSummary | None,
    ) -> None:
        name = run["metadata"]["name"]
        services: list[Awaitable[None]] = []
        for ref in plan.children:
            if ref.kind is ChildKind.WORKSPACE:
                services.append(self._ensure(memory, run, workspace_claim(run, child_name(name, ref), spec)))
                services.append(self._ensure_config(memory, run, spec, plan))
            elif ref.kind is ChildKind.SANDBOX:
                services.append(self._ensure_sandbox_network(memory, run, ref))
            elif ref.kind is ChildKind.GENERATION_SERVER:
                services.append(self._ensure_generation_server(memory, run, spec))
        await asyncio.gather(*services)
        # The sandbox Deployment last: its presence in the index then proves the others exist (adopt).
        if ChildRef(ChildKind.SANDBOX) in plan.children:
            await self._ensure_sandbox(memory, run, spec, ChildRef(ChildKind.SANDBOX))
        # Jobs only after the ConfigMap holds what they read (a train pod needs policy.json at start).
        for ref in plan.children:
            if ref.kind not in planner.SERVICE_KINDS and ref not in jobs:
                await self._create_job(memory, run, spec, plan, ref)
        if ChildRef(ChildKind.SANDBOX) not in plan.children:
            await self._stop_sandbox(memory, run, deployment)
        if GENERATION_SERVER not in plan.children:
            await self._stop_generation_server(memory, run, spec, plan.status)

    async def _ensure_sandbox_network(self, memory: RunMemory, run: JSON, ref: ChildRef) -> None:
        name = child_name(run["metadata"]["name"], ref)
        await asyncio.gather(
            self._ensure(memory, run, sandbox_network_policy(run, name, self.config.metrics_scrapers)),
            self._ensure(memory, run, sandbox_service(run, name)),
        )

    async def _ensure_sandbox(self, memory: RunMemory, run: JSON, spec: TarotRunSpec, ref: ChildRef) -> None:
        name = child_name(run["metadata"]["name"], ref)
        if f"Deployment/{name}" in memory.ensured:
            return  # before building it: the builder is the costliest of the children's
        image = spec.images.sandbox or self.config.sandbox_image
        replicas = 0 if self.config.job_sandbox is JobSandbox.IN_PROCESS else spec.sandbox.replicas
        deployment = sandbox_deployment(
            run,
            name,
            spec,
            image,
            replicas,
            self.config.pod_labels,
            self.config.pod_scheduling,
            self.config.sandbox_confinement,
        )
        await self._ensure(memory, run, deployment)

    async def _stop_sandbox(self, memory: RunMemory, run: JSON, deployment: DeploymentSummary | None) -> None:
        """A finished run's sandbox serves nobody: scale it to zero (kept, like the finished Jobs)."""
        if deployment is None or memory.sandbox_stopped:
            return
        if deployment.replicas == 0:  # stopped before (by this or an earlier process)
            memory.sandbox_stopped = True
            return
        path = object_path("Deployment", run["metadata"]["namespace"], deployment.name)
        await self._ignore_missing(self.kube.merge_patch(path, {"spec": {"replicas": 0}}))
        memory.sandbox_stopped = True

    async def _ensure_generation_server(self, memory: RunMemory, run: JSON, spec: TarotRunSpec) -> None:
        """The vLLM server with one replica: created, or scaled back up (after a suspension, or found by a
        restarted operator in either state)."""
        server = spec.training.generation_server()
        assert server is not None  # the planner lists the server only for generation vllm-server
        name = child_name(run["metadata"]["name"], GENERATION_SERVER)
        await self._ensure(memory, run, generation_server_service(run, name, server))
        if memory.generation_server:
            return
        namespace = run["metadata"]["namespace"]
        deployment = generation_server_deployment(
            run,
            name,
            spec,
            server,
            spec.images.vllm_server or self.config.vllm_server_image,
            self.config.pod_labels,
            self.config.pod_scheduling,
        )
        try:
            await self.kube.create(object_path("Deployment", namespace), deployment)
            log.info("created the vLLM server %s/%s", namespace, name)
        except ApiError as err:
            if err.status != 409:
                raise
            await self.kube.merge_patch(object_path("Deployment", namespace, name), {"spec": {"replicas": 1}})
        memory.generation_server = True

    async def _stop_generation_server(
        self, memory: RunMemory, run: JSON, spec: TarotRunSpec, status: JSON
    ) -> None:
        """No train step needs the vLLM server (training is over, or the run failed or is suspended): scale it
        to zero so that its GPUs go back; it is kept, like the sandbox, until the run is deleted.

        No index watches it, so a process that has not seen it yet stops it once training has started
        (a 404 when it never existed is ignored): a restarted operator never leaves GPUs held."""
        server = spec.training.generation_server()
        if memory.generation_server is False or server is None or server.url is not None:
            return
        phases = (status.get("curriculum") or {}).get("phases") or []
        if memory.generation_server is None and not (phases and phases[0].get("startTime")):
            return  # training has not started: nothing to stop
        name = child_name(run["metadata"]["name"], GENERATION_SERVER)
        path = object_path("Deployment", run["metadata"]["namespace"], name)
        await self._ignore_missing(self.kube.merge_patch(path, {"spec": {"replicas": 0}}))
        memory.generation_server = False

    async def _create_job(
        self, memory: RunMemory, run: JSON, spec: TarotRunSpec, plan: Plan, ref: ChildRef
    ) -> None:
        if ref.kind is ChildKind.TRAIN:
            # The train stage reports live progress with this identity (may patch only this run's status).
            await asyncio.gather(
                self._ensure(memory, run, progress_account(run)),
                self._ensure(memory, run, progress_role(run)),
                self._ensure(memory, run, progress_role_binding(run)),
            )
            if needs_rendezvous_service(spec, ref):
                await self._ensure(memory, run, rendezvous_service(run, ref))
        phases = len((plan.status.get("curriculum") or {}).get("phases") or []) or 1
        settings = JobSettings(
            image=spec.images.trainer or self.config.trainer_image,
            model_cache=self.config.model_cache,
            suspend=ref in plan.create_suspended,
            pod_labels=self.config.pod_labels,
            phases=phases,
            scheduling=self.config.pod_scheduling,
        )
        job = stage_job(run, ref, spec, settings)
        try:
            await self.kube.create(object_path("Job", run["metadata"]["namespace"]), job)
            log.info("created Job %s/%s", run["metadata"]["namespace"], job["metadata"]["name"])
        except ApiError as err:
            if err.status != 409:  # 409: it exists (a restart, or the watch has not shown it yet): adopt it
                raise

    async def _ensure(self, memory: RunMemory, run: JSON, obj: JSON) -> None:
        """Create `obj` unless this process already made sure of it; an existing one is adopted."""
        key = f"{obj['kind']}/{obj['metadata']['name']}"
        if key in memory.ensured:
            return
        try:
            await self.kube.create(object_path(obj["kind"], run["metadata"]["namespace"]), obj)
        except ApiError as err:
            if err.status != 409:
                raise
        memory.ensured.add(key)

    async def _ensure_config(self, memory: RunMemory, run: JSON, spec: TarotRunSpec, plan: Plan) -> None:
        """spec.yaml for the Jobs, and policy.json once the planner has selected the policy."""
        url = None
        if self.config.job_sandbox is JobSandbox.SERVICE:
            sandbox = child_name(run["metadata"]["name"], ChildRef(ChildKind.SANDBOX))
            url = sandbox_url(sandbox, run["metadata"]["namespace"])
        server = spec.training.generation_server()
        server_url = None
        if server is not None and server.url is None:
            name = child_name(run["metadata"]["name"], GENERATION_SERVER)
            server_url = generation_server_url(name, run["metadata"]["namespace"], server.port)
        policy = None
        if plan.selection is not None:
            policy = json.dumps(plan.selection.model_dump(mode="json"))
        key = (spec, url, server_url, policy)
        last = memory.config_key
        if memory.config_data is not None and last is not None and last[0] is spec and last[1:] == key[1:]:
            return  # the same inputs as the data last written: no need to render spec.yaml again
        config = run_config(run, spec_yaml(spec, url, server_url), policy)
        memory.config_key = key
        if memory.config_data == config["data"]:
            return
        namespace, name = run["metadata"]["namespace"], config["metadata"]["name"]
        if memory.config_data is None and memory.config_digest is not None:
            # A new process: the ConfigMap exists (the index saw it); write it only if its data differs.
            found, memory.config_digest = memory.config_digest, None
            if found == config_digest(config["data"]):
                memory.config_data = config["data"]
                return
            await self.kube.merge_patch(object_path("ConfigMap", namespace, name), {"data": config["data"]})
            memory.config_data = config["data"]
            return
        if memory.config_data is None:
            try:
                await self.kube.create(object_path("ConfigMap", namespace), config)
                memory.config_data = config["data"]
                return
            except ApiError as err:
                if err.status != 409:
                    raise
        await self.kube.merge_patch(object_path("ConfigMap", namespace, name), {"data": config["data"]})
        memory.config_data = config["data"]

    # -- suspension -------------------------------------------------------------------------

    async def apply_suspension(self, run: JSON, plan: Plan, jobs: dict[ChildRef, JobSummary]) -> None:
        namespace = run["metadata"]["namespace"]
        for ref in plan.suspend:
            job = jobs.get(ref)
            if job is not None and not job.suspended and not job.complete and job.failed_reason is None:
                await self._set_suspend(namespace, job, True)
        for ref in plan.children:
            job = jobs.get(ref)
            # Resume only what the operator suspended: a Kueue Job's suspension belongs to Kueue.
            if job is not None and job.suspended and not job.kueue and ref not in plan.suspend:
                await self._set_suspend(namespace, job, False)

    async def _set_suspend(self, namespace: str, job: JobSummary, suspend: bool) -> None:
        path = object_path("Job", namespace, job.name)
        await self._ignore_missing(self.kube.merge_patch(path, {"spec": {"suspend": suspend}}))
        log.info("%s Job %s/%s", "suspended" if suspend else "resumed", namespace, job.name)

    async def post_event(self, run: JSON, event: RunEvent) -> None:
        await self.kube.create(object_path("Event", run["metadata"]["namespace"]), run_event(run, event))

    # -- status -----------------------------------------------------------------------------

    async def _patch_status(self, namespace: str, name: str, patch: JSON) -> JSON:
        """The run as the API server holds it after the patch ({} when the run is gone)."""
        return await self._ignore_missing(
            self.kube.merge_patch(status_path(namespace, name), {"status": patch})
        )

    async def _reject(self, run: JSON, status: JSON, plan: Plan) -> None:
        """A spec the model rejects: the Failed status and the event the planner planned (invalid_spec)."""
        patch = merge_patch(status, plan.status)
        if patch:
            meta = run["metadata"]
            await self._patch_status(meta["namespace"], meta["name"], patch)
        for event in plan.events:
            await self.post_event(run, event)

    @staticmethod
    async def _ignore_missing(request: Awaitable[JSON]) -> JSON:
        try:
            return await request
        except ApiError as err:
            if err.status != 404:  # the object (or the run) was deleted meanwhile
                raise
            return {}
