"""The run's progress identity: a ServiceAccount whose Role may only get/patch this run's status."""

from __future__ import annotations

from .names import GROUP, JSON, PLURAL, metadata, progress_account_name


def _progress_object(run: JSON, api_version: str, kind: str) -> JSON:
    """The head of each of the three: one name (the account's) and the `progress` component."""
    name = progress_account_name(run["metadata"]["name"])
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata(run, name, "progress")}


def progress_account(run: JSON) -> JSON:
    return {
        **_progress_object(run, "v1", "ServiceAccount"),
        # Only the train Jobs mount its token, explicitly (a projected volume); nothing gets it by default.
        "automountServiceAccountToken": False,
    }


def progress_role(run: JSON) -> JSON:
    return {
        **_progress_object(run, "rbac.authorization.k8s.io/v1", "Role"),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": [f"{PLURAL}/status"],
                "resourceNames": [run["metadata"]["name"]],
                "verbs": ["get", "patch"],
            }
        ],
    }


def progress_role_binding(run: JSON) -> JSON:
    name = progress_account_name(run["metadata"]["name"])
    return {
        **_progress_object(run, "rbac.authorization.k8s.io/v1", "RoleBinding"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": run["metadata"]["namespace"]}],
    }
