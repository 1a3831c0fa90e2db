"""The pod's ServiceAccount identity, handed to its process as a kubeconfig.

A kubelet mounts a bound token, the cluster CA and the namespace at /var/run/secrets/kubernetes.io/
serviceaccount, and clients find them there (in-cluster config). A local process cannot see that path,
so the runner writes the same three files into the pod's directory, plus a kubeconfig that points at
them, and sets KUBECONFIG. Clients that try in-cluster first and fall back to KUBECONFIG (kopf,
`kubernetes.config.load_config()`, client-go's usual loading rules, kubectl) then talk to the API
server as the pod's ServiceAccount, so the real RBAC decides what they may do.

The token comes from the TokenRequest API, bound to the pod (it stops working when the pod is deleted).
Its 3607 s lifetime is the kubelet's default for kube-api-access volumes; the API server extends such
tokens (--service-account-extend-token-expiration, on by default), so no refresh is needed in tests.
`automountServiceAccountToken: false` on the pod, or on the ServiceAccount when the pod does not say,
means no identity at all: no token, no KUBECONFIG.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from .environment import ContainerConfigError
from .kube_api import JSON, ApiError, KubeApi

# The kubelet's expirationSeconds for the kube-api-access projected volume.
DEFAULT_TOKEN_SECONDS = 3607


def account_name(pod: JSON) -> str:
    return str(pod["spec"].get("serviceAccountName") or "default")


def request_token(
    api: KubeApi, pod: JSON, audience: str | None = None, expiration_seconds: int = DEFAULT_TOKEN_SECONDS
) -> str:
    """A token of the pod's ServiceAccount bound to the pod (TokenRequest), as the kubelet requests it."""
    meta = pod["metadata"]
    account = account_name(pod)
    request: JSON = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [audience] if audience else [],
            "expirationSeconds": expiration_seconds,
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
        },
    }
    try:
        answer = api.create(
            f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token", request
        )
    except ApiError as err:
        raise ContainerConfigError(f"service account token for {account!r}: {err}") from err
    return str(answer["status"]["token"])


def automounts(api: KubeApi, pod: JSON) -> bool:
    """The pod's automountServiceAccountToken, else its ServiceAccount's, else true (Kubernetes' rule)."""
    own = pod["spec"].get("automountServiceAccountToken")
    if own is not None:
        return bool(own)
    namespace = pod["metadata"]["namespace"]
    account = api.get_or_none(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account_name(pod)}")
    if account is None:  # admission rejects such pods; one created before its account waits for it
        raise ContainerConfigError(f'serviceaccount "{account_name(pod)}" not found')
    return account.get("automountServiceAccountToken") is not False


def write_identity(api: KubeApi, pod: JSON, directory: Path) -> Path | None:
    """token, ca.crt, namespace and a kubeconfig using them under directory; None when not mounted."""
    if not automounts(api, pod):
        return None
    directory.mkdir(parents=True, exist_ok=True)
    token = directory / "token"
    token.write_text(request_token(api, pod))
    os.chmod(token, 0o600)
    (directory / "namespace").write_text(pod["metadata"]["namespace"])
    cluster: JSON = {"server": api.host}
    if api.ca_file:
        shutil.copyfile(api.ca_file, directory / "ca.crt")
        cluster["certificate-authority"] = str(directory / "ca.crt")
    kubeconfig = directory / "kubeconfig"
    user = f"system:serviceaccount:{pod['metadata']['namespace']}:{account_name(pod)}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": user, "user": {"tokenFile": str(token)}}],
        "contexts": [
            {
                "name": "pod",
                "context": {"cluster": "cluster", "user": user, "namespace": pod["metadata"]["namespace"]},
            }
        ],
        "current-context": "pod",
    }
    kubeconfig.write_text(yaml.safe_dump(document, sort_keys=False))
    os.chmod(kubeconfig, 0o600)
    return kubeconfig
