"""A thin async JSON client for the Kubernetes API: the operator's own writes (creates, patches).

kopf owns the watches; this client makes the few requests the reconciler needs, as plain dicts
(no model classes to convert: with hundreds of runs, serialisation is the operator's main CPU cost).
Credentials come from the in-cluster service account, or from the kubeconfig.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Generator
from typing import Any

import httpx
from kubernetes import config as kube_config
from kubernetes.client import Configuration

from .metrics import API_REQUESTS

JSON = dict[str, Any]

_CORE_GROUPS = {"v1": "/api/v1"}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def collection_path(api_version: str, kind_plural: str, namespace: str) -> str:
    prefix = _CORE_GROUPS.get(api_version, f"/apis/{api_version}")
    return f"{prefix}/namespaces/{namespace}/{kind_plural}"


class _BearerToken(httpx.Auth):
    """The token of the kubernetes client's configuration, read per request.

    In a pod, load_incluster_config stores the service account's token as "BearerToken" and installs
    a refresh hook that re-reads the projected (rotating) token file; a kubeconfig with a token
    stores it the same way. A client-certificate kubeconfig has none, and TLS authenticates.
    """

    def __init__(self, cfg: Configuration) -> None:
        self.cfg = cfg

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.cfg.refresh_api_key_hook is not None:
            self.cfg.refresh_api_key_hook(self.cfg)
        token = self.cfg.get_api_key_with_prefix("BearerToken") or (self.cfg.api_key or {}).get(
            "authorization"
        )
        if token:
            request.headers["Authorization"] = token
        yield request


def tls_context(cfg: Configuration) -> ssl.SSLContext:
    """One TLS context with what a loaded client Configuration names: the cluster's CA, whether to verify,
    and the client certificate (httpx's cert= is deprecated). The pod runner's client uses it too."""
    tls = (
        ssl.create_default_context(cafile=cfg.ssl_ca_cert)
        if cfg.ssl_ca_cert
        else ssl.create_default_context()
    )
    if not cfg.verify_ssl:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    if cfg.cert_file and cfg.key_file:
        tls.load_cert_chain(cfg.cert_file, cfg.key_file)
    return tls


class Kube:
    """Create / patch / get with the operator's credentials; counts its requests by verb."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    @classmethod
    def connect(
        cls, kubeconfig: str | None = None, user_agent: str = "tarot-operator", connections: int = 32
    ) -> Kube:
        """The in-cluster account, else the kubeconfig (`kubeconfig`, else $KUBECONFIG or ~/.kube/config)."""
        cfg = Configuration()
        try:
            if kubeconfig is not None:
                raise kube_config.ConfigException("a kubeconfig is named")
            kube_config.load_incluster_config(client_configuration=cfg)
        except kube_config.ConfigException:
            kube_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        headers = {"User-Agent": user_agent}
        tls = tls_context(cfg)
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        client = httpx.AsyncClient(
            base_url=cfg.host.rstrip("/"),
            headers=headers,
            auth=_BearerToken(cfg),
            verify=tls,
            timeout=30.0,
            limits=limits,
        )
        return cls(client)

    async def close(self) -> None:
        await self.client.aclose()

    async def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> JSON:
        API_REQUESTS.labels(method).inc()
        content = None if body is None else json.dumps(body)
        response = await self.client.request(
            method, path, content=content, headers={"Content-Type": content_type}
        )
        if response.status_code >= 300:
            raise ApiError(response.status_code, _message(response.text))
        return response.json() if response.content else {}

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body)

    async def get(self, path: str) -> JSON:
        return await self.request("GET", path)

    async def replace(self, path: str, body: JSON) -> JSON:
        """PUT: the whole object; with metadata.resourceVersion set, a 409 if it changed since read."""
        return await self.request("PUT", path, body)

    async def merge_patch(self, path: str, body: JSON) -> JSON:
        return await self.request("PATCH", path, body, content_type="application/merge-patch+json")

    async def json_patch(self, path: str, operations: list[JSON]) -> JSON:
        return await self.request("PATCH", path, operations, content_type="application/json-patch+json")


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        return text
