"""Reading a TarotRun object's spec, and the spec fields the operator acts on."""

from __future__ import annotations

from typing import Any

import yaml

from tarot_jobs.spec.model import TarotRunSpec

JSON = dict[str, Any]


def parse_spec(run: JSON) -> TarotRunSpec:
    """The run's spec through the same model as `tarot validate` (the CRD has already checked it)."""
    return TarotRunSpec.model_validate(run.get("spec") or {})


def spec_yaml(spec: TarotRunSpec, sandbox_url: str | None, generation_server_url: str | None = None) -> str:
    """The spec as the stage Jobs read it (a bare spec, camelCase), pointing them at the sandbox and at
    the run's vLLM server (training.vllmServer.url, which the train stage hands trl)."""
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    if sandbox_url is not None and spec.sandbox.url is None:
        data.setdefault("sandbox", {})["url"] = sandbox_url
    server = spec.training.generation_server()
    if generation_server_url is not None and server is not None and server.url is None:
        data["training"].setdefault("vllmServer", {})["url"] = generation_server_url
    return yaml.safe_dump(data, sort_keys=False)
