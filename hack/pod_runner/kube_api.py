"""A thin JSON client for the Kubernetes API: plain dicts in and out, list+watch, patches.

The credentials come from the kubeconfig through the `kubernetes` package's loader (which handles
embedded and file-based certificates); requests go through httpx so that objects stay plain JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

JSON = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer from the API server, with its HTTP status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class KubeApi:
    """Minimal REST access to one API server, thread-safe (httpx.Client is)."""

    def __init__(self, kubeconfig: str, timeout: float = 30.0) -> None:
        # Imported here: tests/conftest.py imports this module, and the unit tests run without kubernetes.
        from kubernetes.client import Configuration
        from kubernetes.config import kube_config
        from tarot_operator.kube import tls_context

        cfg = Configuration()
        kube_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
        self.host = cfg.host.rstrip("/")
        # The cluster's CA file (a path even when the kubeconfig embeds it): pods get it as their ca.crt.
        self.ca_file: str | None = cfg.ssl_ca_cert
        headers = {}
        token = (cfg.api_key or {}).get("authorization")
        if token:
            headers["Authorization"] = token
        tls = tls_context(cfg)
        self._client = httpx.Client(base_url=self.host, headers=headers, verify=tls, timeout=timeout)
        # Watches are long-lived: no read timeout, the server closes them (timeoutSeconds).
        self._stream_client = httpx.Client(
            base_url=self.host, headers=headers, verify=tls, timeout=httpx.Timeout(30.0, read=None)
        )

    def close(self) -> None:
        self._client.close()
        self._stream_client.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        content = None if body is None else json.dumps(body)
        response = self._client.request(
            method, path, params=params, content=content, headers={"Content-Type": content_type}
        )
        if response.status_code >= 300:
            raise ApiError(response.status_code, _message(response.text))
        return response.json() if response.content else {}

    def get_text(self, path: str, params: dict[str, Any] | None = None) -> str:
        """A GET whose answer is not JSON (a pod's log)."""
        response = self._client.get(path, params=params)
        if response.status_code >= 300:
            raise ApiError(response.status_code, _message(response.text))
        return response.text

    def get(self, path: str, params: dict[str, Any] | None = None) -> JSON:
        return self.request("GET", path, params=params)

    def get_or_none(self, path: str) -> JSON | None:
        try:
            return self.get(path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def create(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body)

    def merge_patch(self, path: str, body: JSON) -> JSON:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def strategic_patch(self, path: str, body: JSON) -> JSON:
        return self.request("PATCH", path, body, content_type="application/strategic-merge-patch+json")

    def delete(self, path: str, body: JSON | None = None) -> JSON:
        try:
            return self.request("DELETE", path, body)
        except ApiError as err:
            if err.status == 404:
                return {}
            raise

    def watch(
        self,
        path: str,
        resource_version: str,
        params: dict[str, Any] | None = None,
        timeout_seconds: int = 300,
    ) -> Iterator[JSON]:
        """Yields watch events ({"type", "object"}) from resource_version until the server ends the watch."""
        query = dict(params or {})
        query.update(
            watch="1",
            resourceVersion=resource_version,
            timeoutSeconds=str(timeout_seconds),
            allowWatchBookmarks="true",
        )
        # The server ends the watch after timeout_seconds; a connection silent for longer is dead
        # (bookmarks arrive meanwhile), so reading gives up then instead of blocking forever.
        timeout = httpx.Timeout(30.0, read=timeout_seconds + 30.0)
        with self._stream_client.stream("GET", path, params=query, timeout=timeout) as response:
            if response.status_code >= 300:
                raise ApiError(response.status_code, _message(response.read().decode()))
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", text))
    except ValueError:
        return text
