"""The environment variables a container sees: env, envFrom, the downward API and $(VAR) expansion.

Semantics follow the kubelet: envFrom first, then env in order (later entries win), values may refer
to variables defined before them as $(NAME), and $$ escapes a dollar. A missing ConfigMap, Secret or
key that is not optional is an error (the kubelet's CreateContainerConfigError) that the runner
retries, so objects created after the pod still work.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from .kube_api import JSON, KubeApi

_REFERENCE = re.compile(r"\$\$|\$\(([^)]+)\)")
_FIELD_WITH_KEY = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ContainerConfigError(Exception):
    """The pod refers to something that does not exist (yet) or that this runner cannot provide."""


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: known names are replaced, unknown ones kept verbatim, $$ -> $."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(substitute, value)


class EnvironmentResolver:
    """Looks up ConfigMaps and Secrets of a pod's namespace and evaluates downward API fields."""

    def __init__(self, api: KubeApi, pod: JSON, node: JSON | None) -> None:
        self.api = api
        self.pod = pod
        self.node = node or {}
        self.namespace: str = pod["metadata"]["namespace"]

    def container_env(self, container: JSON) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self.config_map_data(
                    source["configMapRef"]["name"], source["configMapRef"].get("optional")
                )
            elif "secretRef" in source:
                data = self.secret_data(source["secretRef"]["name"], source["secretRef"].get("optional"))
            else:
                raise ContainerConfigError(f"envFrom entry {source} has neither configMapRef nor secretRef")
            for key, value in data.items():
                env[prefix + key] = value
        for item in container.get("env") or []:
            name = item["name"]
            if "valueFrom" in item:
                resolved = self.value_from(name, item["valueFrom"], container)
                if resolved is not None:
                    env[name] = resolved
            else:
                env[name] = expand(item.get("value", ""), env)
        return env

    def value_from(self, name: str, source: JSON, container: JSON) -> str | None:
        if "fieldRef" in source:
            return self.field_value(source["fieldRef"]["fieldPath"])
        if "resourceFieldRef" in source:
            return self.resource_value(source["resourceFieldRef"], container)
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            return self._key(self.config_map_data(ref["name"], ref.get("optional")), ref, "ConfigMap", name)
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            return self._key(self.secret_data(ref["name"], ref.get("optional")), ref, "Secret", name)
        raise ContainerConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")

    def _key(self, data: dict[str, str], ref: JSON, kind: str, env_name: str) -> str | None:
        if ref["key"] in data:
            return data[ref["key"]]
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f"env {env_name}: key {ref['key']!r} not found in {kind} {ref['name']!r}")

    def field_value(self, path: str) -> str:
        meta, spec, status = self.pod["metadata"], self.pod["spec"], self.pod.get("status") or {}
        simple: dict[str, Any] = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.hostIP": status.get("hostIP", ""),
            "status.hostIPs": ",".join(ip["ip"] for ip in status.get("hostIPs") or []),
            "status.podIP": status.get("podIP", ""),
            "status.podIPs": ",".join(ip["ip"] for ip in status.get("podIPs") or []),
        }
        if path in simple:
            return str(simple[path])
        keyed = _FIELD_WITH_KEY.match(path)
        if keyed:
            return str((meta.get(keyed.group(1)) or {}).get(keyed.group(2), ""))
        if path in ("metadata.labels", "metadata.annotations"):
            items = meta.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
        raise ContainerConfigError(f"downward API field {path!r} is not supported")

    def resource_value(self, ref: JSON, container: JSON) -> str:
        """limits.cpu etc.; an unset limit falls back to the node's allocatable, as on a real kubelet."""
        resource: str = ref["resource"]
        kind, _, name = resource.partition(".")
        resources = container.get("resources") or {}
        raw = (resources.get(kind) or {}).get(name)
        if raw is None and kind == "requests":
            raw = (resources.get("limits") or {}).get(name)
        if raw is None:
            raw = ((self.node.get("status") or {}).get("allocatable") or {}).get(name, "0")
        divisor = Decimal(parse_quantity(ref.get("divisor", "1")))
        value = Decimal(parse_quantity(raw)) / (divisor or Decimal(1))
        return str(math.ceil(value))

    def config_map_data(self, name: str, optional: bool | None) -> dict[str, str]:
        return {
            k: v.decode(errors="replace") for k, v in (self.config_map_bytes(name, optional) or {}).items()
        }

    def secret_data(self, name: str, optional: bool | None) -> dict[str, str]:
        return {k: v.decode(errors="replace") for k, v in (self.secret_bytes(name, optional) or {}).items()}

    def config_map_bytes(self, name: str, optional: bool | None) -> dict[str, bytes] | None:
        """The ConfigMap's data and binaryData as file contents; None when missing and optional."""
        obj = self._source("configmaps", "configmap", name, optional)
        if obj is None:
            return None
        files = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return files

    def secret_bytes(self, name: str, optional: bool | None) -> dict[str, bytes] | None:
        """The Secret's decoded data; None when missing and optional."""
        obj = self._source("secrets", "secret", name, optional)
        if obj is None:
            return None
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}

    def _source(self, resource: str, kind: str, name: str, optional: bool | None) -> JSON | None:
        """The namespace's ConfigMap or Secret `name`; None when missing and optional (an error, as the
        kubelet's, when missing and not)."""
        obj = self.api.get_or_none(f"/api/v1/namespaces/{self.namespace}/{resource}/{name}")
        if obj is None and not optional:
            raise ContainerConfigError(f'{kind} "{name}" not found')
        return obj
