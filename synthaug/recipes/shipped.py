"""The recipes that ship with synthaug (package data in ``synthaug/recipes/library/``), by name.

    >>> "context_ct" in recipe_names()
    True
    >>> load_shipped("context_ct").transforms[0].name
    'context_texture'

``synthaug recipe list|show|path`` print them; ``recipe_path(name)`` is what ``SYNTHAUG_RECIPE`` takes.
"""

from __future__ import annotations

from pathlib import Path

from synthaug._validate import closest
from synthaug.errors import DataError
from synthaug.recipes.recipe import Recipe, load_recipe

__all__ = ["LIBRARY", "recipe_names", "recipe_path", "load_shipped"]

#: The folder of shipped recipe files (inside the installed package).
LIBRARY = Path(__file__).resolve().parent / "library"


def recipe_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in LIBRARY.glob("*.json")))


def recipe_path(name: str) -> Path:
    """The file of shipped recipe ``name`` (a path to an existing file is returned as is)."""
    p = Path(name)
    if p.suffix in (".json", ".yaml", ".yml") and p.is_file():
        return p
    path = LIBRARY / f"{name}.json"
    if not path.is_file():
        names = recipe_names()
        raise DataError(f"no shipped recipe named {name!r}; shipped: {list(names)}.{closest(str(name), names)} "
                        "(or pass the path of your own recipe file).")
    return path


def load_shipped(name: str) -> Recipe:
    """The validated shipped recipe ``name`` (or a recipe file path)."""
    return load_recipe(recipe_path(name))
