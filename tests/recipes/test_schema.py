"""The published recipe JSON Schema: derived, committed, and in agreement with the loader.

The validator below covers exactly the keywords the schema uses (a test fails if the schema starts using
one it does not know), so the agreement tests do not depend on an optional ``jsonschema`` install.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from synthaug.cli.main import main
from synthaug.errors import ValidationError
from synthaug.recipes import Recipe, declarations, recipe_names, recipe_path, recipe_schema
from synthaug.recipes.schema import schema_json

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "recipe.schema.json"

_KNOWN = {"$schema", "$id", "$defs", "$ref", "title", "description", "default", "type", "properties",
          "additionalProperties", "required", "items", "prefixItems", "minItems", "maxItems", "minimum", "maximum",
          "enum", "const", "anyOf", "oneOf", "minProperties"}
_TYPES = {"object": dict, "array": list, "string": str, "null": type(None), "boolean": bool}


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def errors(value: Any, schema: dict, root: dict, at: str = "$") -> list[str]:
    """Violations of ``schema`` by ``value`` (a draft 2020-12 subset: the keywords in ``_KNOWN``)."""
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return errors(value, target, root, at)
    out: list[str] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            return [f"{at}: {value!r} is not {names}"]
    if "const" in schema and value != schema["const"]:
        out.append(f"{at}: {value!r} != {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} not in {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{at}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{at}: {value} > {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in value:
                out.append(f"{at}: missing {k!r}")
        if len(value) < schema.get("minProperties", 0):
            out.append(f"{at}: fewer than {schema['minProperties']} properties")
        for k, v in value.items():
            if k in props:
                out += errors(v, props[k], root, f"{at}.{k}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{at}: unknown key {k!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += errors(v, schema["additionalProperties"], root, f"{at}.{k}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
            out.append(f"{at}: {len(value)} items")
        prefix = schema.get("prefixItems", [])
        for i, v in enumerate(value):
            sub = prefix[i] if i < len(prefix) else schema.get("items")
            if sub is not None:
                out += errors(v, sub, root, f"{at}[{i}]")
    if "anyOf" in schema and not any(not errors(value, s, root, at) for s in schema["anyOf"]):
        out.append(f"{at}: matches none of anyOf")
    if "oneOf" in schema and sum(not errors(value, s, root, at) for s in schema["oneOf"]) != 1:
        out.append(f"{at}: does not match exactly one of oneOf")
    return out


def _keywords(node: Any, seen: set[str], in_props: bool = False) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if not in_props:
                seen.add(k)
            _keywords(v, seen, in_props=(k in ("properties", "$defs") and not in_props))
    elif isinstance(node, list):
        for v in node:
            _keywords(v, seen)


def _loader_accepts(d: dict) -> bool:
    try:
        Recipe.from_dict(d)
    except ValidationError:
        return False
    return True


SCHEMA = recipe_schema()


def test_committed_schema_is_the_derived_one():
    assert COMMITTED.read_text() == schema_json(), (
        "docs/recipe.schema.json is stale: regenerate it with `synthaug recipe schema --out docs/recipe.schema.json`"
    )


def test_cli_prints_and_writes_the_schema(capsys, tmp_path):
    assert main(["recipe", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMA
    assert main(["recipe", "schema", "--out", str(tmp_path / "s.json")]) == 0
    assert (tmp_path / "s.json").read_text() == schema_json()


def test_validator_knows_every_keyword_the_schema_uses():
    seen: set[str] = set()
    _keywords(SCHEMA, seen)
    assert seen <= _KNOWN, f"teach the test validator {sorted(seen - _KNOWN)}"


def test_every_registered_transform_and_option_is_in_the_schema():
    defs = SCHEMA["$defs"]
    for decl in declarations():
        options = defs[f"transform_{decl.name}"]["properties"]["options"]["properties"]
        assert set(options) == set(decl.recipe_options)


@pytest.mark.parametrize("name", recipe_names())
def test_shipped_recipes_validate(name):
    data = json.loads(recipe_path(name).read_text())
    assert errors(data, SCHEMA, SCHEMA) == []


def _base() -> dict:
    return {"seed": 0, "transforms": [{"name": "gaussian_mixture", "probability": 0.5, "deform": {"enabled": True}}],
            "schedule": {"warmup_epochs": 1}, "budget": {"num_epochs": 2}, "targeting": {"class_weights": {"1": 2.0}},
            "gate": {"checker": "segmenter_ct_a"}}


def _bounded_paths() -> list[tuple[tuple, dict]]:
    """(path into a recipe, property schema) for every bounded number in the recipe records."""
    defs = SCHEMA["$defs"]
    found = [(("seed",), SCHEMA["properties"]["seed"]), (("channel",), SCHEMA["properties"]["channel"])]
    found.append((("transforms", 0, "probability"), defs["transform_gaussian_mixture"]["properties"]["probability"]))
    for block, key in (("deform", ("transforms", 0, "deform")), ("schedule", ("schedule",)), ("budget", ("budget",)),
                       ("gate", ("gate",)), ("targeting", ("targeting",))):
        for name, prop in defs[block]["properties"].items():
            if "minimum" in prop or "maximum" in prop:
                found.append(((*key, name), prop))
    return found


def _set(d: dict, path: tuple, value: Any) -> dict:
    d = copy.deepcopy(d)
    node = d
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return d


@pytest.mark.parametrize("path,prop", _bounded_paths(), ids=lambda x: ".".join(map(str, x)) if isinstance(x, tuple) else "")
def test_schema_and_loader_agree_on_bounds(path, prop):
    assert _loader_accepts(_base()) and errors(_base(), SCHEMA, SCHEMA) == []
    step = 1 if prop["type"] in ("integer", ["integer", "null"]) else 1e-3
    for bound, outside in (("minimum", -step), ("maximum", step)):
        if bound not in prop:
            continue
        at = _set(_base(), path, prop[bound])
        beyond = _set(_base(), path, prop[bound] + outside)
        assert _loader_accepts(at) and errors(at, SCHEMA, SCHEMA) == []
        assert not _loader_accepts(beyond) and errors(beyond, SCHEMA, SCHEMA) != []


@pytest.mark.parametrize("mutation", [
    ("unknown top-level key", lambda d: {**d, "sed": 0}),
    ("unknown transform", lambda d: _set(d, ("transforms", 0, "name"), "gausian_mixture")),
    ("unknown option", lambda d: _set(d, ("transforms", 0, "options"), {"gama_std": 0.1})),
    ("option of the wrong type", lambda d: _set(d, ("transforms", 0, "options"), {"gamma_std": "wide"})),
    ("unknown deform key", lambda d: _set(d, ("transforms", 0, "deform"), {"points": 4})),
    ("integer field given a float", lambda d: _set(d, ("budget", "num_epochs"), 2.5)),
    ("empty class weights", lambda d: _set(d, ("targeting", "class_weights"), {})),
    ("gate without checker", lambda d: _set(d, ("gate",), {"threshold": 0.5})),
    ("missing transforms", lambda d: {k: v for k, v in d.items() if k != "transforms"}),
    ("future format version", lambda d: {**d, "synthaug_recipe": 2}),
], ids=lambda m: m[0] if isinstance(m, tuple) else "")
def test_schema_and_loader_refuse_the_same_mistakes(mutation):
    bad = mutation[1](_base())
    assert errors(bad, SCHEMA, SCHEMA) != []
    assert not _loader_accepts(bad)


def test_a_recipe_may_name_the_schema_for_editors():
    d = {"$schema": "../docs/recipe.schema.json", **_base()}
    assert errors(d, SCHEMA, SCHEMA) == [] and _loader_accepts(d)
