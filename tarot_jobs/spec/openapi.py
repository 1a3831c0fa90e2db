"""Pydantic model -> Kubernetes structural OpenAPI v3 schema (what a CRD version's schema must be).

Pydantic writes JSON Schema 2020-12; a CRD needs the structural subset of OpenAPI v3:
no $ref (inlined), no anyOf with null (optional fields are simply not required; the API
server drops nulls of non-nullable fields, as pydantic treats them as unset), numeric
exclusive bounds as booleans, no propertyNames / uniqueItems / additionalProperties:false
(unknown fields are pruned, and rejected under kubectl's default strict field validation).
Map keys restricted by propertyNames become a CEL rule on the map.

Defaults: with `defaults=True` every field's default (default factories too) becomes a
schema `default` (the API server fills them in, as pydantic does). Extra rules and schema
patches that the models cannot carry (CEL mirrors of their validators) come in through `Extras`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

JSON = dict[str, Any]

# The size and multiple limits, kept as they are and written in this order.
_LIMITS = (
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)
# Keywords passed through unchanged (the rest is translated or dropped on purpose below).
_KEPT = {
    "type",
    "description",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    *_LIMITS,
    "required",
}
_DROPPED = {"title", "additionalProperties", "propertyNames", "uniqueItems", "$defs", "default", "anyOf"}


@dataclass(frozen=True)
class Rule:
    """One `x-kubernetes-validations` entry."""

    rule: str
    message: str
    field_path: str | None = None
    message_expression: str | None = None
    reason: str | None = None

    def as_schema(self) -> JSON:
        entry: JSON = {"rule": self.rule, "message": self.message}
        if self.message_expression:
            entry["messageExpression"] = self.message_expression
        if self.field_path:
            entry["fieldPath"] = self.field_path
        if self.reason:
            entry["reason"] = self.reason
        return entry


@dataclass
class Extras:
    """What the generator adds to the models' own schema, keyed by model class name.

    `model_rules[Model]`: rules on that model's object; `field_rules[(Model, alias)]`: rules on
    that field's schema; `field_patches[(Model, alias)]`: schema keywords merged into that
    field's schema (a nested "additionalProperties"/"items" dict is merged one level down).
    Every key must match a model and field, or generation fails, so a rename cannot silently
    drop a rule.
    """

    model_rules: Mapping[str, list[Rule]] = field(default_factory=dict)
    field_rules: Mapping[tuple[str, str], list[Rule]] = field(default_factory=dict)
    field_patches: Mapping[tuple[str, str], JSON] = field(default_factory=dict)


class _DefaultFactoriesToo(GenerateJsonSchema):
    """Pydantic leaves default factories out of JSON Schema; a CRD needs their values as defaults."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            schema = {**schema, "default": factory()}  # type: ignore[call-arg]
            schema.pop("default_factory")
        return super().default_schema(schema)


def structural_schema(model: type[BaseModel], extras: Extras | None = None, *, defaults: bool) -> JSON:
    """The Kubernetes structural schema of `model` (camelCase, by alias)."""
    source = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_DefaultFactoriesToo)
    converter = _Converter(source.get("$defs", {}), extras or Extras(), defaults)
    result = converter.model(model.__name__, source)
    converter.check_extras_used()
    return _ordered(result)


# Keyword order in the generated YAML (for reading it and for stable diffs); others follow, sorted.
_ORDER = [
    "description",
    "type",
    "format",
    "enum",
    "pattern",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    *_LIMITS,
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "required",
    "default",
    "items",
    "additionalProperties",
    "properties",
    "x-kubernetes-validations",
]


def _ordered(schema: JSON) -> JSON:
    rank = {key: i for i, key in enumerate(_ORDER)}
    out: JSON = {}
    for key in sorted(schema, key=lambda k: (rank.get(k, len(_ORDER)), k)):
        value = schema[key]
        if key in ("items", "additionalProperties") and isinstance(value, dict):
            value = _ordered(value)
        elif key == "properties":
            value = {name: _ordered(prop) for name, prop in value.items()}
        out[key] = value
    return out


class _Converter:
    def __init__(self, defs: JSON, extras: Extras, defaults: bool) -> None:
        self.defs = defs
        self.extras = extras
        self.defaults = defaults
        self.used: set[Any] = set()

    def check_extras_used(self) -> None:
        unused = (
            set(self.extras.model_rules) | set(self.extras.field_rules) | set(self.extras.field_patches)
        ) - self.used
        if unused:
            raise ValueError(
                f"CRD extras name models or fields that do not exist: {sorted(map(str, unused))}"
            )

    def model(self, name: str, schema: JSON) -> JSON:
        out = self.node(schema)
        for prop_name, prop in schema.get("properties", {}).items():
            out["properties"][prop_name] = self.field(name, prop_name, prop)
        self.add_rules(out, self.extras.model_rules.get(name), name)
        return out

    def field(self, model: str, name: str, schema: JSON) -> JSON:
        out = self.resolve(schema)
        if self.defaults and "default" in schema and schema["default"] is not None:
            out["default"] = self.default_value(out, schema["default"])
        patch = self.extras.field_patches.get((model, name))
        if patch is not None:
            self.used.add((model, name))
            for key, value in patch.items():
                if isinstance(value, dict) and isinstance(out.get(key), dict):
                    out[key] = {**out[key], **value}
                else:
                    out[key] = copy.deepcopy(value)
        self.add_rules(out, self.extras.field_rules.get((model, name)), (model, name))
        return out

    def add_rules(self, out: JSON, rules: list[Rule] | None, key: Any) -> None:
        if rules is None:
            return
        self.used.add(key)
        out.setdefault("x-kubernetes-validations", []).extend(rule.as_schema() for rule in rules)

    def resolve(self, schema: JSON) -> JSON:
        """Convert a field's schema: inline $ref, unwrap `X | None`, recurse into items and maps."""
        if "$ref" in schema:
            name = schema["$ref"].removeprefix("#/$defs/")
            resolved = self.model(name, self.defs[name])
            if "description" in schema:  # the field's description beats the class docstring
                resolved["description"] = schema["description"]
            return resolved
        if "anyOf" in schema:
            branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
            if len(branches) != 1:
                raise ValueError(f"only `X | None` unions can be a CRD schema, not {schema['anyOf']}")
            inner = self.resolve(branches[0])
            if "description" in schema:
                inner["description"] = schema["description"]
            return inner
        if "patternProperties" in schema:  # dict[Key, V] with a key pattern: V for every key, checked by CEL
            ((pattern, values),) = schema["patternProperties"].items()
            schema = {k: v for k, v in schema.items() if k != "patternProperties"}
            schema["additionalProperties"] = values
            schema["propertyNames"] = {**schema.get("propertyNames", {}), "pattern": pattern}
        out = self.node(schema)
        if "items" in schema:
            out["items"] = self.resolve(schema["items"])
        if isinstance(schema.get("additionalProperties"), dict):
            out["additionalProperties"] = self.resolve(schema["additionalProperties"])
            self.map_keys(out, schema.get("propertyNames"))
        return out

    def node(self, schema: JSON) -> JSON:
        """The keywords of one schema node, translated; properties are filled in by the caller."""
        translated = {"$ref", "properties", "items", "const", "exclusiveMinimum", "exclusiveMaximum"}
        unknown = set(schema) - _KEPT - _DROPPED - translated
        unknown -= {k for k in schema if k.startswith("x-kubernetes-")}
        if unknown:
            raise ValueError(f"no CRD translation for JSON Schema keywords {sorted(unknown)} in {schema}")
        out: JSON = {
            k: copy.deepcopy(v) for k, v in schema.items() if k in _KEPT or k.startswith("x-kubernetes-")
        }
        if "const" in schema:
            out["enum"] = [schema["const"]]
        for bound, base in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if bound in schema:  # JSON Schema 2020 number -> OpenAPI v3 boolean beside the bound
                out[base] = schema[bound]
                out[bound] = True
        if "enum" in out and "type" not in out:
            out["type"] = _json_type(out["enum"][0])
        if "properties" in schema:
            out["type"] = "object"
            out["properties"] = {}
        if out.get("required") == []:
            del out["required"]
        return out

    def map_keys(self, out: JSON, names: JSON | None) -> None:
        """propertyNames (not structural) -> a CEL rule over the map's keys, plus a size bound."""
        if not names:
            return
        if "$ref" in names:
            names = self.defs[names["$ref"].removeprefix("#/$defs/")]
        rules = out.setdefault("x-kubernetes-validations", [])
        if "enum" in names:
            allowed = [str(v) for v in names["enum"]]
            out.setdefault("maxProperties", len(allowed))
            rules.append(
                Rule(
                    rule=f"self.all(k, k in {cel_list(allowed)})",
                    message=f"keys must be one of: {', '.join(allowed)}",
                ).as_schema()
            )
        checks, what = [], []
        if "minLength" in names:
            checks.append(f"size(k) >= {names['minLength']}")
            what.append(f"at least {names['minLength']} characters long")
        if "maxLength" in names:
            checks.append(f"size(k) <= {names['maxLength']}")
            what.append(f"at most {names['maxLength']} characters long")
        if "pattern" in names:
            checks.append(f"k.matches({cel_string(names['pattern'])})")
            what.append(f"match {names['pattern']}")
        unknown = set(names) - {"enum", "type", "title", "description", "minLength", "maxLength", "pattern"}
        if unknown:
            raise ValueError(f"no CRD translation for map key constraints {sorted(unknown)}")
        if checks:
            rules.append(
                Rule(
                    rule=f"self.all(k, {' && '.join(checks)})", message=f"keys must be {' and '.join(what)}"
                ).as_schema()
            )

    def default_value(self, schema: JSON, value: Any) -> Any:
        """A default as the object holds it: unset (None) fields left out, recursively.

        A nested model's default is written out whole rather than as `{}`: the API server checks
        each default against the CEL rules without filling in the nested defaults first."""
        if isinstance(value, dict):
            inner = schema.get("properties", {})
            return {
                k: self.default_value(inner.get(k, schema.get("additionalProperties", {})), v)
                for k, v in value.items()
                if v is not None
            }
        return value


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def cel_string(value: str) -> str:
    """`value` as a CEL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cel_list(values: list[str]) -> str:
    """`values` as a CEL list literal of strings."""
    return "[" + ", ".join(cel_string(v) for v in values) + "]"
