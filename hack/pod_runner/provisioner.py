"""Binds every pending PersistentVolumeClaim to a hostPath PersistentVolume: a directory per claim.

The cluster has no storage driver, and the scheduler will not place a pod whose claim is unbound. This
does what a static provisioner does: it creates a PV pre-bound to the claim (claimRef) and lets the real
PV controller bind the pair. When the claim is deleted the PV is Released; then the PV and its
directory are removed.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from .kube_api import JSON, ApiError, KubeApi

log = logging.getLogger(__name__)

PROVISIONED_LABEL = "tarot.dev/provisioned-by"
PROVISIONER = "pod-runner"


def volume_for(claim: JSON, root: Path) -> JSON:
    meta, spec = claim["metadata"], claim["spec"]
    path = root / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{meta['uid']}", "labels": {PROVISIONED_LABEL: PROVISIONER}},
        "spec": {
            "capacity": {
                "storage": ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            },
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "storageClassName": spec.get("storageClassName") or "",
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def provision_once(api: KubeApi, root: Path) -> None:
    for claim in api.get("/api/v1/persistentvolumeclaims")["items"]:
        if claim["spec"].get("volumeName") or (claim.get("status") or {}).get("phase") != "Pending":
            continue
        volume = volume_for(claim, root)
        directory = Path(volume["spec"]["hostPath"]["path"])
        directory.mkdir(parents=True, exist_ok=True)
        # World-writable, as local-path-provisioner (kind's) makes its directories: a hostPath volume
        # ignores a pod's fsGroup, and the pods of the real node run as a non-root user.
        directory.chmod(0o777)
        try:
            api.create("/api/v1/persistentvolumes", volume)
            log.info(
                "provisioned %s for claim %s/%s",
                volume["metadata"]["name"],
                claim["metadata"]["namespace"],
                claim["metadata"]["name"],
            )
        except ApiError as err:
            if err.status != 409:
                raise
    selector = {"labelSelector": f"{PROVISIONED_LABEL}={PROVISIONER}"}
    for volume in api.get("/api/v1/persistentvolumes", params=selector)["items"]:
        if (volume.get("status") or {}).get("phase") == "Released":
            api.delete(f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
            shutil.rmtree(volume["spec"]["hostPath"]["path"], ignore_errors=True)


def provision_forever(api: KubeApi, root: Path, stop: threading.Event, period: float = 1.0) -> None:
    while not stop.is_set():
        try:
            provision_once(api, root)
        except Exception as err:  # keep provisioning through API hiccups
            log.warning("provisioning pass failed: %s", err)
        stop.wait(period)
