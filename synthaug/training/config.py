"""Dataclass configs, read from JSON files and overridden by ``--key value`` flags.

Configs hold plain values only (they are stored in checkpoints and model cards), so a checkpoint
rebuilds its model without re-typing options.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from synthaug._validate import closest
from synthaug.errors import ValidationError

__all__ = ["config_to_dict", "config_from_dict", "read_config", "apply_overrides"]

T = TypeVar("T")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return json.loads(json.dumps(d))  # tuples -> lists: the exact form stored in checkpoints


def config_from_dict(cls: type[T], d: dict[str, Any]) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in d if k not in fields]
    if unknown:
        k = unknown[0]
        raise ValidationError(f"unknown option {k!r} for {cls.__name__}.{closest(k, fields)} Options: {sorted(fields)}")
    kwargs = {}
    for k, v in d.items():
        default = fields[k].default
        if isinstance(default, tuple):
            if not isinstance(v, (list, tuple)):
                example = ",".join(str(x) for x in default) or "..."
                raise ValidationError(
                    f"option {k!r} of {cls.__name__} must be a list, got {v!r}; write it as JSON, e.g. "
                    f"{k}=[{example}] (in a shell, quote it: '{k}=[{example}]')."
                )
            v = tuple(v)
        elif isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(v, str):
            raise ValidationError(
                f"option {k!r} of {cls.__name__} must be a number, got the text {v!r}; write it as a number, "
                f"e.g. {k}={default}."
            )
        kwargs[k] = v
    return cls(**kwargs)


def read_config(cls: type[T], path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        d = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ValidationError(f"config file {str(path)!r} does not exist.") from exc
    except json.JSONDecodeError as exc:
        raise ValidationError(f"config file {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(d, dict):
        raise ValidationError(f"config file {str(path)!r} must hold a JSON object.")
    return d


def apply_overrides(cls: type, base: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["iterations=100", "widths=[16,32]"]`` -> values parsed as JSON when possible, else strings."""
    fields = {f.name for f in dataclasses.fields(cls)}
    out = dict(base)
    for item in overrides:
        if "=" not in item:
            raise ValidationError(f"option {item!r} must look like key=value (e.g. iterations=2000).")
        k, v = item.split("=", 1)
        k = k.strip().replace("-", "_")
        if k not in fields:
            raise ValidationError(f"unknown option {k!r} for {cls.__name__}.{closest(k, fields)} Options: {sorted(fields)}")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out
