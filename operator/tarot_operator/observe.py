"""From what the watches saw (Jobs, their pods, the sandbox Deployment) to the planner's ObservedChild.

Pure functions over small summaries: the operator keeps only these summaries in memory (kopf
indexes), never whole objects, so 500 runs stay cheap to hold.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tarot_jobs.lifecycle.types import ChildKind, ChildRef, ChildState, ObservedChild

from .jobs import CONTAINER, EXIT_BAD_INPUT, JOB_INDEX_ANNOTATION
from .names import CHILD_LABEL, JSON, KUEUE_QUEUE_LABEL, parse_child

MAX_FAILURE = 2000  # characters of a pod's message kept in a failure reason


@dataclass(frozen=True)
class JobSummary:
    name: str
    ref: ChildRef
    suspended: bool
    kueue: bool  # carries a Kueue queue label: Kueue, not the operator, decides when it runs
    complete: bool
    failed_reason: str | None  # the Failed condition's reason (BackoffLimitExceeded, PodFailurePolicy...)
    failed_message: str
    failures: int  # pods that failed (status.failed): the retries used


@dataclass(frozen=True)
class PodSummary:
    name: str
    job: str
    phase: str
    message: str  # the container's termination message (the stage's result, or the log's tail)
    exit_code: int | None
    completion_index: int
    created: str


@dataclass(frozen=True)
class DeploymentSummary:
    name: str
    available: bool
    replicas: int = 1  # spec.replicas: 0 once a finished run's sandbox was scaled down


@dataclass(frozen=True)
class ConfigSummary:
    """The run's ConfigMap as the watch saw it: only a digest of its data (what the Jobs read)."""

    name: str
    digest: str


def _condition(obj: JSON, type_: str) -> JSON | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def summarize_job(job: JSON) -> JobSummary | None:
    labels = job["metadata"].get("labels") or {}
    ref = parse_child(labels.get(CHILD_LABEL, ""))
    if ref is None:
        return None
    failed = _condition(job, "Failed")
    return JobSummary(
        name=job["metadata"]["name"],
        ref=ref,
        suspended=bool((job.get("spec") or {}).get("suspend")),
        kueue=KUEUE_QUEUE_LABEL in labels,
        complete=_condition(job, "Complete") is not None,
        failed_reason=None if failed is None else str(failed.get("reason") or "Failed"),
        failed_message="" if failed is None else str(failed.get("message") or ""),
        failures=int((job.get("status") or {}).get("failed") or 0),
    )


def summarize_pod(pod: JSON) -> PodSummary | None:
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    job = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
    if job is None:
        return None
    status = pod.get("status") or {}
    message, exit_code = "", None
    for container in status.get("containerStatuses") or []:
        if container.get("name") == CONTAINER:
            terminated = (container.get("state") or {}).get("terminated") or {}
            message = str(terminated.get("message") or "")
            exit_code = terminated.get("exitCode")
    index = (meta.get("annotations") or {}).get(JOB_INDEX_ANNOTATION, "0")
    return PodSummary(
        name=meta["name"],
        job=job,
        phase=str(status.get("phase") or "Pending"),
        message=message,
        exit_code=exit_code,
        completion_index=int(index) if str(index).isdigit() else 0,
        created=str(meta.get("creationTimestamp") or ""),
    )


def summarize_deployment(deployment: JSON) -> DeploymentSummary:
    replicas = (deployment.get("spec") or {}).get("replicas")
    return DeploymentSummary(
        name=deployment["metadata"]["name"],
        available=_condition(deployment, "Available") is not None,
        replicas=1 if replicas is None else int(replicas),
    )


def config_digest(data: dict[str, str]) -> str:
    """A digest of a ConfigMap's data: the index holds a few bytes per run, not the data."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def summarize_config(config: JSON) -> ConfigSummary:
    return ConfigSummary(
        name=config["metadata"]["name"], digest=config_digest(dict(config.get("data") or {}))
    )


def parse_result(message: str) -> dict[str, Any] | None:
    """A stage's JSON result from a termination message; None when the message is not one."""
    try:
        result = json.loads(message)
    except ValueError:
        return None
    return result if isinstance(result, dict) else None


def observe_job(job: JobSummary, pods: list[PodSummary], live: JSON | None) -> ObservedChild:
    """A Job as the planner sees it; `live` is status.curriculum.live (a train Job's progress)."""
    mine = sorted((p for p in pods if p.job == job.name), key=lambda p: p.created)
    if job.failed_reason is not None:
        return ObservedChild(job.ref, ChildState.FAILED, failure=_failure(job, mine), retries=job.failures)
    if job.complete:
        # Rank 0 of a multi-node phase speaks for the Job.
        done = [p for p in mine if p.phase == "Succeeded"]
        done.sort(key=lambda p: p.completion_index)
        if not done:
            # The pod's watch event has not arrived yet; its arrival wakes the run again.
            return ObservedChild(job.ref, ChildState.RUNNING, retries=job.failures)
        return ObservedChild(
            job.ref, ChildState.SUCCEEDED, result=parse_result(done[0].message), retries=job.failures
        )
    if job.suspended:
        state = ChildState.QUEUED if job.kueue else ChildState.SUSPENDED
        return ObservedChild(job.ref, state, retries=job.failures)
    progress = (
        live if job.ref.kind is ChildKind.TRAIN and live and live.get("phase") == job.ref.index else None
    )
    return ObservedChild(job.ref, ChildState.RUNNING, progress=progress, retries=job.failures)


def _failure(job: JobSummary, pods: list[PodSummary]) -> str:
    """'Reason: message' for the planner: BadInput when the stage said its input is at fault."""
    failed = [p for p in pods if p.phase == "Failed"]
    last = failed[-1] if failed else None
    tail = last.message.strip()[-MAX_FAILURE:] if last is not None else ""
    exit_note = f" (exit code {last.exit_code})" if last is not None and last.exit_code is not None else ""
    if job.failed_reason == "PodFailurePolicy" or (last is not None and last.exit_code == EXIT_BAD_INPUT):
        detail = tail or job.failed_message
        return f"BadInput: {detail}{exit_note}"
    detail = f"{job.failed_message}; last pod{exit_note}: {tail}" if tail else job.failed_message
    return f"{job.failed_reason}: {detail}"


def observe_sandbox(deployment: DeploymentSummary | None) -> ObservedChild | None:
    if deployment is None:
        return None
    state = ChildState.RUNNING if deployment.available else ChildState.QUEUED
    return ObservedChild(ChildRef(ChildKind.SANDBOX), state)
