"""The control plane is a real one: structural schemas prune, the garbage collector collects, watches
deliver events in order. (Job behaviour is in test_cluster_jobs.py.)"""

from __future__ import annotations

import threading

import pytest
from pod_runner.kube_api import JSON
from pytest_cluster import Cluster

pytestmark = pytest.mark.cluster

GROUP = "proof.tarot.dev"


def _crd(plural: str) -> JSON:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural[:-1], "kind": "Widget" + plural[-3:].capitalize()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "size": {"type": "integer"},
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def test_structural_schema_prunes_unknown_fields(cluster: Cluster, namespace: str) -> None:
    plural = f"widgets{namespace[-5:]}"
    crd = _crd(plural)
    cluster.api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    try:

        def established() -> bool:
            got = cluster.api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{GROUP}")
            return any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (got.get("status") or {}).get("conditions") or []
            )

        cluster.wait_for("the CRD to be established", established)
        path = f"/apis/{GROUP}/v1/namespaces/{namespace}/{plural}"
        body = {
            "apiVersion": f"{GROUP}/v1",
            "kind": crd["spec"]["names"]["kind"],
            "metadata": {"name": "w"},
            "spec": {"size": 3, "labels": {"a": "b"}, "colour": "red"},
            "extra": {"x": 1},
        }
        cluster.api.create(path, body)
        stored = cluster.api.get(f"{path}/w")
        assert stored["spec"] == {"size": 3, "labels": {"a": "b"}}
        assert "extra" not in stored
        # The schema is enforced, not just pruned: a wrong type is rejected with the field named.
        bad = cluster.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            check=False,
            input=(
                f"apiVersion: {GROUP}/v1\nkind: {body['kind']}\n"
                "metadata: {name: bad}\nspec: {size: many}\n"
            ),
        )
        assert bad.returncode != 0 and "spec.size" in bad.stderr
    finally:
        cluster.api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{plural}.{GROUP}")


def _config_map(name: str, data: JSON, owner: JSON | None = None) -> JSON:
    meta: JSON = {"name": name}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
        ]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def test_deleting_an_owner_garbage_collects_its_dependents(cluster: Cluster, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    owner = cluster.api.create(path, _config_map("owner", {"role": "owner"}))
    for i in range(3):
        cluster.api.create(path, _config_map(f"dependent-{i}", {"i": str(i)}, owner))
    bystander = cluster.api.create(path, _config_map("bystander", {}))

    cluster.api.delete(f"{path}/owner", {"propagationPolicy": "Background"})

    def dependents_gone() -> bool:
        names = {item["metadata"]["name"] for item in cluster.api.get(path)["items"]}
        return not any(n.startswith("dependent-") for n in names)

    cluster.wait_for("the garbage collector to delete the dependents", dependents_gone, timeout=60)
    assert cluster.api.get(f"{path}/bystander")["metadata"]["uid"] == bystander["metadata"]["uid"]


def test_watch_sees_events_in_order(cluster: Cluster, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    start = cluster.api.get(path)["metadata"]["resourceVersion"]
    events: list[JSON] = []

    def collect() -> None:
        for event in cluster.api.watch(
            path, start, params={"fieldSelector": "metadata.name=counter"}, timeout_seconds=30
        ):
            events.append(event)
            if event["type"] == "DELETED":
                return

    watcher = threading.Thread(target=collect, daemon=True)
    watcher.start()
    cluster.api.create(path, _config_map("counter", {"n": "0"}))
    for n in (1, 2, 3):
        cluster.api.merge_patch(f"{path}/counter", {"data": {"n": str(n)}})
    cluster.api.delete(f"{path}/counter")
    watcher.join(timeout=30)

    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED", "DELETED"]
    assert [e["object"]["data"]["n"] for e in events[:4]] == ["0", "1", "2", "3"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
