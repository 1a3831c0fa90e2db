"""From a pod to the exact local process to start: argv, environment, working directory, paths."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .environment import ContainerConfigError, EnvironmentResolver, expand
from .identity import write_identity
from .kube_api import JSON, KubeApi
from .volumes import PathMap, VolumeBuilder, container_paths

# Variables of the runner's own environment that pods may need on this machine (opt-in list).
PASS_ENV_VARIABLE = "TAROT_POD_RUNNER_PASS_ENV"
_PYTHON_NAMES = {"python", "python3", f"python3.{sys.version_info.minor}"}


class StartError(Exception):
    """The container cannot be started at all (the kubelet's StartError, exit code 128)."""


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    paths: PathMap
    termination_log: Path


def pod_dir(state_dir: Path, pod: JSON) -> Path:
    meta = pod["metadata"]
    return state_dir / "pods" / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"


def _base_env(pod: JSON, api: KubeApi, home: Path, kubeconfig: Path | None) -> dict[str, str]:
    """What a container gets before the pod's own env: PATH with this Python first, the service env,
    and KUBECONFIG with the pod's ServiceAccount identity (see identity.py)."""
    python_bin = str(Path(sys.executable).parent)
    server = urlparse(api.host)
    env = {
        "PATH": f"{python_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "HOSTNAME": pod["metadata"]["name"],
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "KUBERNETES_SERVICE_HOST": server.hostname or "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(server.port or 443),
    }
    for name in filter(None, os.environ.get(PASS_ENV_VARIABLE, "").split(",")):
        if name in os.environ and name != "KUBECONFIG":  # never the runner's own (admin) credentials
            env[name] = os.environ[name]
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return env


def _executable(name: str, path: str) -> str:
    """python/python3 run in the repo's Python environment (this interpreter); others via the pod's PATH."""
    if name in _PYTHON_NAMES:
        return sys.executable
    if "/" in name:
        return name
    found = shutil.which(name, path=path)
    if found is None:
        raise StartError(f'exec: "{name}": executable file not found in $PATH')
    return found


def prepare(api: KubeApi, pod: JSON, node: JSON | None, state_dir: Path) -> Launch:
    """Raises ContainerConfigError (retried) or StartError (the container fails to start)."""
    container = pod["spec"]["containers"][0]
    directory = pod_dir(state_dir, pod)
    home = directory / "home"
    home.mkdir(parents=True, exist_ok=True)
    resolver = EnvironmentResolver(api, pod, node)
    volumes = VolumeBuilder(resolver, directory).build()
    paths = container_paths(container, volumes, directory)

    own_env = resolver.container_env(container)
    kubeconfig = write_identity(api, pod, directory / "serviceaccount")
    env = _base_env(pod, api, home, kubeconfig)
    env.update({name: paths.translate(value) for name, value in own_env.items()})

    words = [*(container.get("command") or []), *(container.get("args") or [])]
    if not container.get("command"):
        raise StartError(
            "container has no command: images are not pulled, so the image's entrypoint is "
            "unknown to the pod runner; set spec.containers[0].command"
        )
    argv = [paths.translate(expand(word, own_env)) for word in words]
    argv[0] = _executable(argv[0], env["PATH"])

    working_dir = container.get("workingDir") or ""
    translated = paths.translate(working_dir) if working_dir else ""
    if translated and translated != working_dir:
        cwd = Path(translated)
    else:
        cwd = directory / "rootfs" / working_dir.lstrip("/")
    cwd.mkdir(parents=True, exist_ok=True)
    if not os.access(argv[0], os.X_OK):
        raise StartError(f'exec: "{argv[0]}": permission denied or not found')
    termination_log = directory / "termination-log"
    termination_log.unlink(missing_ok=True)
    return Launch(argv=argv, env=env, cwd=cwd, paths=paths, termination_log=termination_log)


__all__ = ["ContainerConfigError", "Launch", "StartError", "pod_dir", "prepare"]
