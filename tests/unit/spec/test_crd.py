"""The generated TarotRun CRD: committed file = `tarot crd`, structural schema, defaults equal to the
models', the bad-spec corpus rejected by `tarot validate`. The API server's side of the corpus is
tests/integration/test_crd_api_server.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from spec_corpus import REPO, BadSpec, bad_specs, example_runs, full_status
from typer.testing import CliRunner

from tarot_jobs.cli import app
from tarot_jobs.cli.output import ExitCode
from tarot_jobs.spec.cel import MUTABLE_WHILE_RUNNING
from tarot_jobs.spec.crd import CRD_FILE, PRINTER_COLUMNS, crd, crd_yaml
from tarot_jobs.spec.model import TarotRunSpec, parse_document
from tarot_jobs.spec.openapi import Extras, Rule, structural_schema

JSON = dict[str, Any]


def _root() -> JSON:
    return crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _walk(schema: JSON, path: str = "") -> list[tuple[str, JSON]]:
    nodes = [(path, schema)]
    for name, prop in schema.get("properties", {}).items():
        nodes += _walk(prop, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        nodes += _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        nodes += _walk(schema["additionalProperties"], f"{path}{{}}")
    return nodes


def apply_defaults(schema: JSON, value: Any) -> Any:
    """Structural defaulting as the API server does it: a missing property with a default gets it,
    then defaulting goes on inside (objects, list items, map values)."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, prop in schema["properties"].items():
            if name not in out and "default" in prop:
                out[name] = prop["default"]
            if name in out:
                out[name] = apply_defaults(prop, out[name])
        return out
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return {k: apply_defaults(schema["additionalProperties"], v) for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def undeclared(schema: JSON, value: Any, path: str = "") -> list[str]:
    """Paths in `value` that `schema` does not declare (the API server would prune them)."""
    if isinstance(value, dict) and "properties" in schema:
        found = []
        for key, inner in value.items():
            if key in schema["properties"]:
                found += undeclared(schema["properties"][key], inner, f"{path}.{key}")
            else:
                found.append(f"{path}.{key}")
        return found
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return [
            p for k, v in value.items() for p in undeclared(schema["additionalProperties"], v, f"{path}.{k}")
        ]
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [p for i, v in enumerate(value) for p in undeclared(schema["items"], v, f"{path}[{i}]")]
    return []


def test_the_committed_crd_is_what_tarot_crd_prints() -> None:
    result = CliRunner().invoke(app, ["crd"])
    assert result.exit_code == 0, result.output
    assert result.output == crd_yaml()
    committed = (REPO / CRD_FILE).read_text(encoding="utf-8")
    assert committed == result.output, f"{CRD_FILE} is stale: run `tarot crd > {CRD_FILE}`"


def test_names_version_and_subresources() -> None:
    spec = crd()["spec"]
    assert crd()["metadata"]["name"] == "tarotruns.tarot.dev"
    assert spec["group"] == "tarot.dev" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "TarotRun",
        "listKind": "TarotRunList",
        "plural": "tarotruns",
        "singular": "tarotrun",
        "shortNames": ["tr"],
        "categories": ["tarot"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert [c["name"].upper() for c in version["additionalPrinterColumns"]] == [
        "PHASE",
        "POLICY",
        "CAPABILITY",
        "PROGRESS",
        "REWARD",
        "ETA",
        "AGE",
    ]


def test_the_schema_is_structural() -> None:
    for path, node in _walk(_root()):
        for forbidden in (
            "$ref",
            "anyOf",
            "oneOf",
            "allOf",
            "not",
            "nullable",
            "uniqueItems",
            "propertyNames",
        ):
            assert forbidden not in node, f"{path or '<root>'}: {forbidden}"
        assert "type" in node, f"{path or '<root>'} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("additionalProperties", {}) is not False, path
        if node["type"] == "array":
            assert "items" in node, path


def test_every_string_and_list_the_cel_rules_read_is_bounded() -> None:
    # The API server estimates CEL cost from these bounds; unbounded ones made it refuse the CRD.
    for path, node in _walk(_root()["properties"]["spec"], "spec"):
        if node["type"] == "string" and "enum" not in node:
            assert "maxLength" in node, path
        if node["type"] == "array":
            assert "maxItems" in node, path


def test_the_crd_defaults_are_the_models_defaults() -> None:
    spec_schema = _root()["properties"]["spec"]
    everything = TarotRunSpec().model_dump(mode="json", exclude_none=True)
    assert spec_schema["default"] == everything
    assert apply_defaults(spec_schema, {}) == everything
    for name, run in example_runs().items():
        # What the API server stores for an example is what `tarot validate --show` prints.
        defaulted = apply_defaults(spec_schema, run["spec"])
        expected = parse_document(run).model_dump(mode="json", exclude_none=True)["spec"]
        assert defaulted == expected, name
        assert undeclared(spec_schema, defaulted) == [], name


def test_the_status_schema_declares_everything_the_planner_writes() -> None:
    status_schema = _root()["properties"]["status"]
    full = full_status()
    assert undeclared(status_schema, full) == []
    assert "default" not in str(status_schema)  # the operator writes status; the server adds nothing
    conditions = status_schema["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert conditions["items"]["required"] == ["lastTransitionTime", "message", "reason", "status", "type"]
    assert status_schema["properties"]["phase"]["enum"] == [
        "Pending",
        "Probing",
        "Selecting",
        "Training",
        "Evaluating",
        "Succeeded",
        "Failed",
        "Suspended",
    ]
    for column in PRINTER_COLUMNS:
        if column["jsonPath"].startswith(".status."):
            node: JSON = status_schema
            for part in column["jsonPath"].removeprefix(".status.").split("."):
                node = node["properties"][part]
            assert node["type"] in {column["type"], "integer" if column["type"] == "number" else ""}


def test_mutable_paths_name_real_fields_and_everything_else_is_guarded() -> None:
    spec_schema = _root()["properties"]["spec"]
    for path in MUTABLE_WHILE_RUNNING:
        node = spec_schema
        for part in path.split("."):
            assert part in node.get("properties", {}), f"MUTABLE_WHILE_RUNNING names no field {path}"
            node = node["properties"][part]
    guarded = {
        rule["fieldPath"].removeprefix(".spec.")
        for rule in _root()["x-kubernetes-validations"]
        if "oldSelf" in rule["rule"]
    }
    sections = set(spec_schema["properties"])
    assert guarded == sections - set(MUTABLE_WHILE_RUNNING)
    assert "suspend" not in guarded and {"model", "dataset", "curriculum", "tiers", "training"} <= guarded
    training_rule = next(
        r for r in _root()["x-kubernetes-validations"] if r.get("fieldPath") == ".spec.training"
    )
    assert "maxRetries" not in training_rule["rule"] and "learningRate" in training_rule["rule"]


@pytest.mark.parametrize("bad", bad_specs(), ids=lambda b: b.case)
def test_tarot_validate_rejects_every_bad_spec_naming_the_field(bad: BadSpec, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad.manifest), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == ExitCode.BAD_INPUT, f"{bad.case}: exit {result.exit_code}\n{result.output}"
    assert bad.field in " ".join(result.output.split()), result.output


@pytest.mark.parametrize("name", sorted(example_runs()))
def test_tarot_validate_accepts_the_example_runs(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(example_runs()[name]), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_the_generator_refuses_what_it_cannot_translate() -> None:
    class Either(BaseModel):
        value: int | str = 0

    with pytest.raises(ValueError, match=r"only `X \| None` unions"):
        structural_schema(Either, defaults=True)

    class Plain(BaseModel):
        count: int = 1

    # A rule keyed by a field that was renamed away must not vanish silently.
    orphan = Extras(field_rules={("Plain", "total"): [Rule(rule="self > 0", message="positive")]})
    with pytest.raises(ValueError, match="do not exist"):
        structural_schema(Plain, orphan, defaults=True)
    assert structural_schema(Plain, defaults=True)["properties"]["count"] == {"type": "integer", "default": 1}
