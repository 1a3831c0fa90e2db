"""The run's progress identity: a ServiceAccount whose Role may only get/patch this run's status."""

from __future__ import annotations

from .names import GROUP, JSON, PLURAL, metadata, progress_account_name


def progress_account(run: JSON) -> JSON:
    name = progress_account_name(run["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(run, name, "progress"),
        # Only the train Jobs mount its token, explicitly (a projected volume); nothing gets it by default.
        "automountServiceAccountToken": False,
    }


def progress_role(run: JSON) -> JSON:
    run_name = run["metadata"]["name"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(run, progress_account_name(run_name), "progress"),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": [f"{PLURAL}/status"],
                "resourceNames": [run_name],
                "verbs": ["get", "patch"],
            }
        ],
    }


def progress_role_binding(run: JSON) -> JSON:
    name = progress_account_name(run["metadata"]["name"])
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(run, name, "progress"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": run["metadata"]["namespace"]}],
    }
