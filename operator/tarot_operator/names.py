"""Names, labels and owner references of a run's children: deterministic, so a restart adopts them."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from tarot_jobs.lifecycle.types import ChildKind, ChildRef
from tarot_jobs.pipeline.workspace import Workspace

GROUP = "tarot.dev"
VERSION = "v1alpha1"
PLURAL = "tarotruns"
KIND = "TarotRun"
API_VERSION = f"{GROUP}/{VERSION}"

MANAGED_BY = "tarot-operator"
RUN_LABEL = "tarot.dev/run"
CHILD_LABEL = "tarot.dev/child"  # the ChildRef suffix of a Job (and its pods): how an observation maps back
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"

WORKSPACE_MOUNT = "/workspace"
# The run's workspace volume as every stage pod sees it (its layout: tarot_jobs/pipeline/workspace.py).
POD_WORKSPACE = Workspace(PurePosixPath(WORKSPACE_MOUNT))
IMAGE_USER = 65532  # the numeric non-root USER of tarot's images (images/*/Containerfile)
CONFIG_MOUNT = "/etc/tarot"
SPEC_KEY = "spec.yaml"
POLICY_KEY = "policy.json"

JSON = dict[str, Any]
INDEXED_KINDS = (ChildKind.TRAIN,)  # kinds that repeat, one child per index


def child_name(run: str, ref: ChildRef) -> str:
    return f"{run}-{ref.suffix()}"


def config_name(run: str) -> str:
    return f"{run}-config"


def progress_account_name(run: str) -> str:
    return f"{run}-progress"


def component(ref: ChildRef) -> str:
    """app.kubernetes.io/component: the kind without its before/after flavour."""
    return "evaluate" if ref.kind in (ChildKind.EVALUATE_BEFORE, ChildKind.EVALUATE_AFTER) else ref.kind.value


def labels(run: str, component_name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "tarot",
        "app.kubernetes.io/instance": run,
        "app.kubernetes.io/component": component_name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        RUN_LABEL: run,
    }


def owner_reference(run: JSON) -> JSON:
    """The run as the controller of a child: deleting the run garbage-collects the child."""
    meta = run["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(run: JSON, name: str, component_name: str, extra_labels: dict[str, str] | None = None) -> JSON:
    meta = run["metadata"]
    return {
        "name": name,
        "namespace": meta["namespace"],
        "labels": {**labels(meta["name"], component_name), **(extra_labels or {})},
        "ownerReferences": [owner_reference(run)],
    }


def parse_child(suffix: str) -> ChildRef | None:
    """The ChildRef whose suffix() is `suffix` (None for a label this operator did not write)."""
    for kind in ChildKind:
        if suffix == kind.value and kind not in INDEXED_KINDS:
            return ChildRef(kind)
    kind_value, _, index = suffix.rpartition("-")
    for kind in INDEXED_KINDS:
        if kind_value == kind.value and index.isdigit():
            return ChildRef(kind, int(index))
    return None
