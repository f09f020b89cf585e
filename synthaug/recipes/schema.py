"""The published JSON Schema of recipes, derived from the records that read them.

Nothing here is written by hand per field: the top-level keys and their bounds come from the
:mod:`synthaug.recipes.recipe` records (``bounded`` fields), each transform's ``options`` from its core's
options record (names, types from the annotations, defaults, the ``Args:`` line as description) through the
registry. ``synthaug recipe schema`` prints it; ``docs/recipe.schema.json`` is the committed copy for editors
(``"$schema"`` in a recipe file), and a test keeps it equal to this output.

The schema checks structure (keys, types, bounds, transform names). What it cannot express — an option's
cross-field rules, weights that exist, labels that the dataset has — is checked by :func:`load_recipe` and
``synthaug recipe check``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from synthaug.recipes.recipe import (
    _FORMAT_VERSION,
    _TOP_KEYS,
    Budget,
    DeformSpec,
    GateSpec,
    Recipe,
    Schedule,
    Targeting,
    TransformSpec,
)
from synthaug.recipes.registry import TransformDecl, declarations
from synthaug.transforms.options import options_doc

__all__ = ["SCHEMA_ID", "recipe_schema", "schema_json"]

SCHEMA_ID = "https://github.com/synthaug/synthaug/blob/main/docs/recipe.schema.json"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _type_schema(tp: Any) -> dict[str, Any] | None:
    """JSON Schema of a Python annotation; None for a type JSON cannot carry (e.g. an in-memory StyleBank)."""
    if tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str or tp is pathlib.Path:
        return {"type": "string"}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        parts: list[dict[str, Any]] = []
        for a in args:
            s = _type_schema(a)
            if s is not None and s not in parts:
                parts.append(s)
        if not parts:
            return None
        if all(set(p) == {"type"} for p in parts):
            names = [p["type"] for p in parts]
            return {"type": names[0] if len(names) == 1 else names}
        return parts[0] if len(parts) == 1 else {"anyOf": parts}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _type_schema(args[0])
            return {"type": "array", **({"items": item} if item else {})}
        items = [_type_schema(a) or {} for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if origin in (Mapping, dict, typing.Mapping, typing.Dict):  # noqa: UP006 - typing aliases seen at run time
        value = _type_schema(args[1]) if len(args) == 2 else None
        return {"type": "object", **({"additionalProperties": value} if value else {})}
    if origin in (Sequence, list, typing.Sequence, typing.List):  # noqa: UP006
        item = _type_schema(args[0]) if args else None
        return {"type": "array", **({"items": item} if item else {})}
    return None


def _json_default(value: Any) -> Any:
    """A field default as JSON (tuples as arrays, paths as strings); ``...`` when it has no JSON form."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, pathlib.PurePath):
        return str(value)
    if isinstance(value, (tuple, list)):
        items = [_json_default(v) for v in value]
        return ... if any(i is ... for i in items) else items
    if isinstance(value, Mapping):
        items = {str(k): _json_default(v) for k, v in value.items()}
        return ... if any(v is ... for v in items.values()) else items
    return ...


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return _json_default(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return _json_default(f.default_factory())
    return ...


def _arg_lines(record: type, names: Sequence[str]) -> dict[str, str]:
    """``{option: its description}`` from the record's ``Args:`` block (continuation lines joined)."""
    entries: list[tuple[list[str], list[str]]] = []
    for line in options_doc(record).splitlines():
        m = re.match(r"^    ([a-z_][a-z0-9_, ]*):\s*(.*)$", line)
        if m:
            entries.append(([x.strip() for x in m.group(1).split(",")], [m.group(2).strip()]))
        elif entries and line.strip():
            entries[-1][1].append(line.strip())
    return {n: " ".join(text).strip() for keys, text in entries for n in keys if n in names}


def _record_properties(record: type, names: Sequence[str] | None = None) -> dict[str, Any]:
    """``properties`` of a dataclass record: type from the annotation, bounds/doc from ``bounded`` metadata,
    default, and the ``Args:`` line when the record has one."""
    hints = typing.get_type_hints(record)
    chosen = [f for f in dataclasses.fields(record) if names is None or f.name in names]
    docs = _arg_lines(record, [f.name for f in chosen])
    props: dict[str, Any] = {}
    for f in chosen:
        schema = dict(_type_schema(hints[f.name]) or {})
        low, high = f.metadata.get("low"), f.metadata.get("high")
        if low is not None:
            schema["minimum"] = low
        if high is not None:
            schema["maximum"] = high
        default = _field_default(f)
        if default is not ...:
            schema["default"] = default
        doc = f.metadata.get("doc") or docs.get(f.name)
        if doc:
            schema["description"] = doc
        props[f.name] = schema
    return props


def _closed(properties: Mapping[str, Any], required: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": dict(properties), "additionalProperties": False}
    if required:
        out["required"] = list(required)
    out.update(extra)
    return out


def _transform_schema(decl: TransformDecl) -> dict[str, Any]:
    props = _record_properties(TransformSpec)
    props["name"] = {"const": decl.name, "description": decl.description}
    props["options"] = _closed(_record_properties(decl.options, decl.recipe_options))
    props["deform"] = {"anyOf": [{"type": "boolean"}, {"$ref": "#/$defs/deform"}, {"type": "null"}]}
    return _closed(props, required=["name"], title=decl.name)


def recipe_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a recipe file, for the transforms registered now."""
    top = _record_properties(Recipe, [k for k in _TOP_KEYS if k not in ("$schema", "synthaug_recipe", "transforms")])
    top = {k: v for k, v in top.items() if k in _TOP_KEYS}
    top["$schema"] = {"type": "string", "description": "this schema's address, for editors (ignored by synthaug)"}
    top["synthaug_recipe"] = {"const": _FORMAT_VERSION, "description": "recipe format version"}
    top["transforms"] = {
        "type": "array",
        "description": "at most one transform per sample; probabilities sum to at most 1 ([] = synthesis off)",
        "items": {"oneOf": [{"$ref": f"#/$defs/transform_{d.name}"} for d in declarations()]},
    }
    top["schedule"] = {"anyOf": [{"$ref": "#/$defs/schedule"}, {"type": "null"}]}
    top["budget"] = {"anyOf": [{"$ref": "#/$defs/budget"}, {"type": "null"}]}
    top["gate"] = {"anyOf": [{"$ref": "#/$defs/gate"}, {"type": "null"}]}
    top["targeting"] = {"anyOf": [{"$ref": "#/$defs/targeting"}, {"type": "null"}]}
    targeting = _record_properties(Targeting)
    targeting["class_weights"]["minProperties"] = 1
    targeting["class_weights"]["additionalProperties"] = {"type": "number", "minimum": 0.0}
    targeting["class_weights"].pop("minimum", None)
    deform = _record_properties(DeformSpec)
    # the record's default (False) is "no deform block"; inside a block, "enabled" defaults to true
    deform["enabled"].update(default=True, description="false switches a deform block off")
    defs: dict[str, Any] = {
        "deform": _closed(deform),
        "schedule": _closed(_record_properties(Schedule)),
        "budget": _closed(_record_properties(Budget)),
        "gate": _closed(_record_properties(GateSpec), required=["checker"]),
        "targeting": _closed(targeting, required=["class_weights"]),
    }
    for d in declarations():
        defs[f"transform_{d.name}"] = _transform_schema(d)
    return {
        "$schema": _DRAFT,
        "$id": SCHEMA_ID,
        "title": "synthaug augmentation recipe",
        "description": "Validated in full by synthaug.recipes.load_recipe and `synthaug recipe check`.",
        **_closed({k: top[k] for k in _TOP_KEYS}, required=["transforms"], **{"$defs": defs}),
    }


def schema_json() -> str:
    """:func:`recipe_schema` as the text of ``docs/recipe.schema.json`` (stable key order, newline at the end)."""
    return json.dumps(recipe_schema(), indent=2) + "\n"
