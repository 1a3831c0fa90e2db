"""Render the chart with the real helm and validate it offline with kubeconform.

helm comes from hack/build-cluster-tools.sh, kubeconform and the monitoring.coreos.com CRDs from
hack/build-chart-tools.sh (both build once into ~/.cache/tarot). Kubernetes' own JSON schemas come from the
`kubernetes-validate` wheel; the CRDs are turned into JSON schemas here, so nothing is downloaded.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "tarot"
# The local control plane's minor version (hack/versions.env); the wheel bundles its schemas.
KUBE_VERSION = "1.36.0"


def tool_dir(script: str) -> Path:
    """Build (once, cached) with a hack/ script and return the directory it prints last."""
    result = subprocess.run(
        ["bash", str(REPO / "hack" / script)], capture_output=True, text=True, timeout=3600
    )
    assert result.returncode == 0, f"hack/{script} failed:\n{result.stderr[-4000:]}"
    return Path(result.stdout.strip().splitlines()[-1])


def helm(helm_bin: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(helm_bin), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
    return result


def render(helm_bin: Path, values: dict[str, Any] | None = None, namespace: str = "tarot-system") -> str:
    """`helm template` with the CRDs, as `helm install` would apply them."""
    args = ["template", "tarot", str(CHART), "--namespace", namespace, "--include-crds"]
    args += ["--kube-version", KUBE_VERSION]
    if values:
        args += ["--values", "-"]
    result = subprocess.run(
        [str(helm_bin), *args],
        input=yaml.safe_dump(values or {}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return result.stdout


def objects(manifest: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(manifest) if doc]


def kubernetes_schemas(out: Path, objs: list[dict[str, Any]]) -> Path:
    """Self-contained JSON schemas of the built-in kinds among `objs`, from the kubernetes-validate wheel.

    The wheel's `<version>-local-strict` schemas share one `_definitions.json` through the absolute reference
    `/api/_definitions.json#/$defs/...`, which only its own resolver maps; kubeconform cannot follow it. So
    each kind's schema gets the definitions it reaches copied into its own `$defs`, with local references.
    """
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = base / f"v{KUBE_VERSION}-local-strict"
    assert folder.is_dir(), f"kubernetes-validate has no schemas for v{KUBE_VERSION} in {base}"
    prefix = "/api/_definitions.json#/$defs/"
    definitions = json.loads((folder / "_definitions.json").read_text().replace(f'"{prefix}', '"#/$defs/'))[
        "$defs"
    ]
    out.mkdir(parents=True, exist_ok=True)
    for obj in objs:
        group, _, version = obj["apiVersion"].rpartition("/")
        name = f"{obj['kind'].lower()}{'-' + group.split('.')[0] if group else ''}-{version}.json"
        source = folder / name
        if not source.is_file():
            continue  # not a built-in kind: the CRD schemas cover it, or kubeconform reports it missing
        schema = json.loads(source.read_text().replace(f'"{prefix}', '"#/$defs/'))
        reached: dict[str, Any] = {}
        pending = [schema]
        while pending:
            for ref in re.findall(r'"\$ref": "#/\$defs/([^"]+)"', json.dumps(pending.pop())):
                if ref not in reached:
                    reached[ref] = definitions[ref]
                    pending.append(definitions[ref])
        schema["$defs"] = reached
        (out / name).write_text(json.dumps(schema))
    return out


def _strict(schema: Any) -> Any:
    """Closes every object schema that lists its properties (as kubeconform's -strict does for built-ins),
    so a misspelt field in a ServiceMonitor fails instead of passing silently."""
    if isinstance(schema, dict):
        out = {key: _strict(value) for key, value in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def crd_schemas(crd_files: list[Path], out: Path) -> Path:
    """Write `<group>/<kind>_<version>.json` JSON schemas from CRDs' openAPIV3Schema."""
    for crd_file in crd_files:
        for crd in yaml.safe_load_all(crd_file.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group = crd["spec"]["group"]
            kind = crd["spec"]["names"]["kind"].lower()
            for version in crd["spec"]["versions"]:
                schema = _strict(version["schema"]["openAPIV3Schema"])
                target = out / group / f"{kind}_{version['name']}.json"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema))
    return out


def kubeconform(
    kubeconform_bin: Path, manifest: str, kube_schema_dir: Path, crd_schema_dir: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Validate strictly against local schemas only (no default remote location: fully offline)."""
    result = subprocess.run(
        [
            str(kubeconform_bin),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            KUBE_VERSION,
            "-schema-location",
            str(kube_schema_dir) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
            "-schema-location",
            str(crd_schema_dir) + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
            "-",
        ],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, json.loads(result.stdout)
