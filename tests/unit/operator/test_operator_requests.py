"""What one run costs the API server before its first Job, and what a new operator process writes for it.

The Reconciler is driven pass by pass as the daemon drives it, with a recording client in place of the
API server: the watches' summaries (Observation) stand in for kopf's indexes. The scale benchmark
(bench/operator_scale.py) measures the same counts on the real control plane (requests_per_run).
"""

from __future__ import annotations

import copy
from typing import Any, cast

from tarot_operator.config import OperatorConfig
from tarot_operator.kube import ApiError, Kube
from tarot_operator.observe import (
    DeploymentSummary,
    summarize_config,
    summarize_job,
)
from tarot_operator.patching import merge_patch
from tarot_operator.reconcile import Observation, Reconciler, RunMemory

RUN: dict[str, Any] = {
    "apiVersion": "tarot.dev/v1alpha1",
    "kind": "TarotRun",
    "metadata": {"name": "r1", "namespace": "ns", "uid": "u-1", "generation": 1, "resourceVersion": "1"},
    "spec": {
        "model": {"name": "tiny"},
        "training": {"maxSteps": 4, "numGenerations": 4, "perDeviceTrainBatchSize": 4},
        "resources": {"cpu": "100m", "memory": "256Mi", "kueueQueue": "q"},
        "storage": {"size": "1Gi"},
    },
}


class FakeApi:
    """Creates and merge patches, recorded; the run's status patches are applied to `run`."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = copy.deepcopy(run)
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        where = f"{path}/{body['metadata']['name']}"
        self.calls.append(("POST", where))
        if where in self.objects:
            raise ApiError(409, "AlreadyExists")
        self.objects[where] = copy.deepcopy(body)
        return body

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("PATCH", path))
        if path.endswith("/status"):
            status = self.run.setdefault("status", {})
            self.run["status"] = _merged(status, body["status"])
            version = int(self.run["metadata"]["resourceVersion"]) + 1
            self.run["metadata"]["resourceVersion"] = str(version)
            return copy.deepcopy(self.run)
        return {}

    def of_kind(self, plural: str) -> list[dict[str, Any]]:
        return [obj for where, obj in self.objects.items() if f"/{plural}/" in where]

    def seen(self, available: bool) -> Observation:
        """What the watches would show: the Jobs, the sandbox Deployment, the ConfigMap."""
        jobs = [s for s in (summarize_job(j) for j in self.of_kind("jobs")) if s is not None]
        [deployment] = self.of_kind("deployments") or [None]
        [config] = self.of_kind("configmaps") or [None]
        return Observation(
            jobs=jobs,
            pods=[],
            deployment=None
            if deployment is None
            else DeploymentSummary(deployment["metadata"]["name"], available, deployment["spec"]["replicas"]),
            config=None if config is None else summarize_config(config),
        )


def _merged(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def reconciler(api: FakeApi) -> Reconciler:
    return Reconciler(cast(Kube, api), OperatorConfig(sandbox_image="s:1", trainer_image="t:1"))


async def first_job(api: FakeApi, memory: RunMemory) -> None:
    """The daemon's passes until the data Job: the run is new, then its sandbox becomes available."""
    await reconciler(api).reconcile(copy.deepcopy(api.run), memory, api.seen(available=False))
    # Woken by its own status write and by the Deployment's rollout (not available yet): writes nothing.
    await reconciler(api).reconcile(copy.deepcopy(api.run), memory, api.seen(available=False))
    await reconciler(api).reconcile(copy.deepcopy(api.run), memory, api.seen(available=True))
    assert [where.rsplit("/", 1)[1] for where in (w for _, w in api.calls) if "/jobs/" in where] == [
        "r1-data"
    ]


async def settled(api: FakeApi, memory: RunMemory) -> None:
    """The first Job, then the pass its watch event wakes (it shows Queued), then one that writes nothing."""
    await first_job(api, memory)
    await reconciler(api).reconcile(copy.deepcopy(api.run), memory, api.seen(available=True))
    before = len(api.calls)
    await reconciler(api).reconcile(copy.deepcopy(api.run), memory, api.seen(available=True))
    assert len(api.calls) == before


async def test_requests_before_the_first_job() -> None:
    api = FakeApi(RUN)
    await first_job(api, RunMemory())
    # 9 on this machine: 5 children, 1 Event (Pending), 1 status write, the Job, then a status write.
    assert len(api.calls) <= 9, api.calls
    creates = sorted(where.split("/")[-2] for verb, where in api.calls if verb == "POST")
    # The five children and the Job, each once; the Events of the run's transitions.
    assert [c for c in creates if c != "events"] == [
        "configmaps",
        "deployments",
        "jobs",
        "networkpolicies",
        "persistentvolumeclaims",
        "services",
    ]
    patches = [where for verb, where in api.calls if verb == "PATCH"]
    assert all(p.endswith("/status") for p in patches)
    # A pass whose plan changes nothing writes nothing: one status write per transition at most.
    assert len(patches) <= 2, patches


async def test_a_new_process_writes_nothing_for_an_unchanged_run() -> None:
    api = FakeApi(RUN)
    await settled(api, RunMemory())
    api.calls.clear()
    # A restarted (or newly elected) operator: empty memory, the watches' indexes already full.
    memory = RunMemory()
    for _ in range(2):
        await reconciler(api).reconcile(copy.deepcopy(api.run), memory, api.seen(available=True))
    assert api.calls == []


async def test_a_new_process_rewrites_a_config_map_that_differs() -> None:
    api = FakeApi(RUN)
    await settled(api, RunMemory())
    [where] = [w for w in api.objects if "/configmaps/" in w]
    api.objects[where]["data"] = {"spec.yaml": "stale"}
    api.calls.clear()
    await reconciler(api).reconcile(copy.deepcopy(api.run), RunMemory(), api.seen(available=True))
    assert api.calls == [("PATCH", where)]


async def test_a_new_process_does_not_scale_down_a_stopped_sandbox_again() -> None:
    api = FakeApi(RUN)
    await first_job(api, RunMemory())
    seen = api.seen(available=True)
    assert seen.deployment is not None
    stopped = DeploymentSummary(seen.deployment.name, True, 0)
    api.calls.clear()
    memory = RunMemory()
    await reconciler(api).apply_children(
        api.run,
        reconciler(api)._spec(api.run, memory),
        _finished_plan(),
        memory,
        {},
        stopped,
    )
    assert not [c for c in api.calls if "deployments" in c[1]]


def _finished_plan() -> Any:
    from tarot_jobs.lifecycle.types import ChildKind, ChildRef, Plan

    return Plan(children=[ChildRef(ChildKind.WORKSPACE)], status={"phase": "Succeeded"})


def test_merge_patch_of_an_unchanged_status_is_empty() -> None:
    assert merge_patch({"phase": "Pending"}, {"phase": "Pending"}) == {}


async def test_a_version_between_the_read_and_the_write_does_not_undo_the_write() -> None:
    """kopf's finalizer patch lands between the first pass's read and its status write: the watch then
    delivers that version (older than the write) and the next pass must plan from the write, not post
    the run's Pending event again."""
    api = FakeApi(RUN)
    api.run["metadata"]["resourceVersion"] = "2"  # the server, after kopf's finalizer patch
    memory = RunMemory()
    await reconciler(api).reconcile(copy.deepcopy(RUN), memory, api.seen(available=False))  # read at 1
    assert api.run["metadata"]["resourceVersion"] == "3"  # the status write
    events = [where for _, where in api.calls if "/events/" in where]
    finalized = copy.deepcopy(RUN)
    finalized["metadata"] |= {"resourceVersion": "2", "finalizers": ["tarot.dev/finalizer"]}
    await reconciler(api).reconcile(finalized, memory, api.seen(available=False))
    assert [where for _, where in api.calls if "/events/" in where] == events
    assert [verb for verb, where in api.calls if where.endswith("/status")] == ["PATCH"]
    # The write's own version, then a newer one (a train pod's patch): the live body again.
    await reconciler(api).reconcile(copy.deepcopy(api.run), memory, api.seen(available=False))
    assert memory.written is None
