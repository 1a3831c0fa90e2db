"""One operator process for a test module, on the local control plane, stopped cleanly afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline_helpers import SHARED_MODEL_CACHE
from pytest_cluster import Cluster
from tarot_operator.process import OperatorProcess, apply_crd

CRD = Path(__file__).resolve().parents[1] / "crds" / "tarot.dev_tarotruns.yaml"


def runs_being_deleted(cluster: Cluster) -> list[str]:
    """Runs deleted, or in a namespace being deleted: they need the operator to release its finalizer."""
    items = cluster.api.get("/apis/tarot.dev/v1alpha1/tarotruns")["items"]
    terminating = {
        ns["metadata"]["name"]
        for ns in cluster.api.get("/api/v1/namespaces")["items"]
        if ns["metadata"].get("deletionTimestamp")
    }
    return [
        r["metadata"]["name"]
        for r in items
        if r["metadata"].get("deletionTimestamp") or r["metadata"]["namespace"] in terminating
    ]


@contextmanager
def running_operator(cluster: Cluster, log_dir: Path, *extra_args: str) -> Iterator[OperatorProcess]:
    """The CRD applied and `tarot operator run` started; Jobs sandbox in-process (no pod network here)."""
    apply_crd(cluster.kubectl_path, cluster.kubeconfig, CRD)
    log = log_dir / "operator.log"
    process = OperatorProcess(
        cluster.kubeconfig,
        log,
        "--job-sandbox", "in-process",
        "--model-cache", str(SHARED_MODEL_CACHE),
        *extra_args,
    )  # fmt: skip
    process.start()
    try:
        yield process
        # The last test's namespace is being deleted: let the operator release its runs' finalizers first.
        cluster.wait_for(
            "runs being deleted to be released", lambda: not runs_being_deleted(cluster), timeout=90
        )
    finally:
        process.stop()
        print(f"operator log ({log}):\n{process.log_tail(200)}")
