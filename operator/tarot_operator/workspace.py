"""The run's workspace volume and the ConfigMap that hands its spec (and chosen policy) to the Jobs."""

from __future__ import annotations

from tarot_jobs.spec.model import TarotRunSpec

from .names import JSON, POLICY_KEY, SPEC_KEY, config_name, metadata


def workspace_claim(run: JSON, name: str, spec: TarotRunSpec) -> JSON:
    """The PVC every Job mounts at /workspace: data, the model cache, checkpoints, evaluations."""
    claim: JSON = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(run, name, "workspace"),
        "spec": {
            # One writer at a time (the Jobs run one after another); a multi-node phase needs
            # ReadWriteMany storage, which the cluster's storage class must provide.
            "accessModes": ["ReadWriteMany" if spec.resources.nodes > 1 else "ReadWriteOnce"],
            "resources": {"requests": {"storage": spec.storage.size}},
        },
    }
    if spec.storage.storage_class is not None:
        claim["spec"]["storageClassName"] = spec.storage.storage_class
    return claim


def run_config(run: JSON, spec_text: str, policy_json: str | None) -> JSON:
    """spec.yaml for every Job; policy.json (the operator's selection) once the policy is chosen."""
    data = {SPEC_KEY: spec_text}
    if policy_json is not None:
        data[POLICY_KEY] = policy_json
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(run, config_name(run["metadata"]["name"]), "config"),
        "data": data,
    }
