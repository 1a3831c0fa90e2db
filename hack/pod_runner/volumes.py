"""Pod volumes as local directories, and the container-path -> local-path map of a container's mounts.

A local process cannot see the container's filesystem layout, so every path the pod spec itself names
(mount paths, the working directory, the termination message path) is mapped to a local directory,
and occurrences of those paths in the command, args and env values are rewritten. Code that hard-codes
a container path without passing it through the spec does not see the mapping (see hack/README.md).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .environment import ContainerConfigError, EnvironmentResolver
from .identity import DEFAULT_TOKEN_SECONDS, request_token
from .kube_api import JSON

log = logging.getLogger(__name__)


@dataclass
class PathMap:
    """Container paths and the local paths that stand in for them; the longest match wins."""

    pairs: list[tuple[str, str]] = field(default_factory=list)

    def add(self, container_path: str, local_path: Path) -> None:
        self.pairs.append((container_path.rstrip("/") or "/", str(local_path)))
        self.pairs.sort(key=lambda pair: len(pair[0]), reverse=True)

    def translate(self, text: str) -> str:
        """Rewrites container paths that appear as whole path prefixes anywhere in text."""
        for container_path, local_path in self.pairs:
            if container_path == "/":
                continue
            pattern = re.compile(r"(?<![\w.\-/])" + re.escape(container_path) + r"(?=$|[/\s:;,=\"'])")
            text = pattern.sub(local_path.replace("\\", "\\\\"), text)
        return text


def _write_files(target: Path, files: dict[str, bytes], items: list[JSON] | None, mode: int | None) -> None:
    """Writes the keys (or only the listed items, at their paths) of a ConfigMap/Secret-like source."""
    chosen = [(i["key"], i["path"], i.get("mode")) for i in items] if items else [(k, k, None) for k in files]
    for key, rel_path, item_mode in chosen:
        if key not in files:
            raise ContainerConfigError(f"volume item key {key!r} not found")
        path = target / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[key])
        path.chmod(item_mode if item_mode is not None else (mode if mode is not None else 0o644))


class VolumeBuilder:
    """Materialises the volumes of one pod under its directory."""

    def __init__(self, resolver: EnvironmentResolver, pod_dir: Path) -> None:
        self.resolver = resolver
        self.api = resolver.api
        self.pod = resolver.pod
        self.pod_dir = pod_dir

    def build(self) -> dict[str, Path]:
        local: dict[str, Path] = {}
        for volume in self.pod["spec"].get("volumes") or []:
            local[volume["name"]] = self.build_one(volume)
        return local

    def build_one(self, volume: JSON) -> Path:
        name = volume["name"]
        target = self.pod_dir / "volumes" / name
        if "persistentVolumeClaim" in volume:
            return self.claim_dir(volume["persistentVolumeClaim"]["claimName"])
        if "hostPath" in volume:
            path = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            return path
        target.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            return target
        if "configMap" in volume:
            src = volume["configMap"]
            files = self.resolver.config_map_bytes(src["name"], src.get("optional"))
            _write_files(target, files or {}, src.get("items"), src.get("defaultMode"))
            return target
        if "secret" in volume:
            src = volume["secret"]
            files = self.resolver.secret_bytes(src["secretName"], src.get("optional"))
            _write_files(target, files or {}, src.get("items"), src.get("defaultMode"))
            return target
        if "downwardAPI" in volume:
            self.write_downward(target, volume["downwardAPI"].get("items") or [])
            return target
        if "projected" in volume:
            for source in volume["projected"].get("sources") or []:
                self.write_projected(target, source)
            return target
        kinds = sorted(set(volume) - {"name"})
        raise ContainerConfigError(f"volume {name!r}: type {kinds} is not supported by the pod runner")

    def claim_dir(self, claim_name: str) -> Path:
        """The directory of the PersistentVolume bound to the claim (hostPath or local)."""
        namespace = self.pod["metadata"]["namespace"]
        claim = self.api.get_or_none(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim_name}")
        if claim is None:
            raise ContainerConfigError(f'persistentvolumeclaim "{claim_name}" not found')
        volume_name = claim["spec"].get("volumeName")
        if not volume_name:
            raise ContainerConfigError(f'persistentvolumeclaim "{claim_name}" is not bound')
        pv = self.api.get(f"/api/v1/persistentvolumes/{volume_name}")
        source = pv["spec"].get("hostPath") or pv["spec"].get("local")
        if not source:
            raise ContainerConfigError(f"persistentvolume {volume_name!r} is neither hostPath nor local")
        path = Path(source["path"])
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_downward(self, target: Path, items: list[JSON]) -> None:
        container = self.pod["spec"]["containers"][0]
        for item in items:
            if "fieldRef" in item:
                value = self.resolver.field_value(item["fieldRef"]["fieldPath"])
            else:
                value = self.resolver.resource_value(item["resourceFieldRef"], container)
            path = target / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value)

    def write_projected(self, target: Path, source: JSON) -> None:
        if "configMap" in source:
            src = source["configMap"]
            files = self.resolver.config_map_bytes(src["name"], src.get("optional"))
            _write_files(target, files or {}, src.get("items"), None)
        elif "secret" in source:
            src = source["secret"]
            files = self.resolver.secret_bytes(src["name"], src.get("optional"))
            _write_files(target, files or {}, src.get("items"), None)
        elif "downwardAPI" in source:
            self.write_downward(target, source["downwardAPI"].get("items") or [])
        elif "serviceAccountToken" in source:
            self.write_token(target, source["serviceAccountToken"])
        else:
            raise ContainerConfigError(f"projected volume source {sorted(source)} is not supported")

    def write_token(self, target: Path, spec: JSON) -> None:
        """A bound service-account token from the TokenRequest API, as the kubelet writes it."""
        token = request_token(
            self.api, self.pod, spec.get("audience"), spec.get("expirationSeconds", DEFAULT_TOKEN_SECONDS)
        )
        path = target / spec["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(token)
        os.chmod(path, 0o600)


def container_paths(container: JSON, volumes: dict[str, Path], pod_dir: Path) -> PathMap:
    """The mounts of the container (with subPath), its termination log and working directory."""
    paths = PathMap()
    for mount in container.get("volumeMounts") or []:
        local = volumes.get(mount["name"])
        if local is None:
            raise ContainerConfigError(f"volumeMount {mount['name']!r} refers to no volume of the pod")
        if mount.get("subPath"):
            local = local / mount["subPath"]
            local.mkdir(parents=True, exist_ok=True)
        paths.add(mount["mountPath"], local)
    paths.add(container.get("terminationMessagePath") or "/dev/termination-log", pod_dir / "termination-log")
    return paths
