"""Recipes: the framework-independent augmentation engine.

- :mod:`~synthaug.recipes.registry` - every transform declared once (:class:`TransformDecl`); recipes, the
  MONAI and the TorchIO faces are derived from it;
- :mod:`~synthaug.recipes.recipe` - typed recipes (JSON/YAML): transforms, probabilities, schedule,
  targeting, gate, budget;
- :mod:`~synthaug.recipes.batch` - :class:`BatchSynthesizer`: a recipe applied to a training batch on its
  device, with the caller's raw <-> normalised intensity mapping;
- :mod:`~synthaug.recipes.expand` - offline expansion of an nnU-Net raw dataset (resumable, shardable);
- :mod:`~synthaug.recipes.schema` - the published JSON Schema of recipes, derived from the records
  (``synthaug recipe schema``; committed as ``docs/recipe.schema.json``);
- :mod:`~synthaug.recipes.shipped` - the recipes that ship with synthaug (``synthaug recipe list``);
- :mod:`~synthaug.recipes.preview` - a captioned grid of what a recipe makes of a dataset (``synthaug recipe preview``).

Framework adapters (the nnU-Net trainer, MONAI and TorchIO faces) live in :mod:`synthaug.integrations`.
"""

from synthaug.recipes.batch import (
    BatchResult,
    BatchSynthesizer,
    IdentityMapping,
    IntensityMapping,
    build_transform,
    deform_batch,
    regenerate_deep_supervision,
)
from synthaug.recipes.recipe import (
    Budget,
    DeformSpec,
    GateSpec,
    Recipe,
    Schedule,
    Targeting,
    TransformSpec,
    derive_seed,
    load_recipe,
)
from synthaug.recipes.registry import (
    TransformDecl,
    declarations,
    get_transform,
    register_transform,
    transform_names,
    unregister_transform,
)
from synthaug.recipes.schema import recipe_schema
from synthaug.recipes.shipped import load_shipped, recipe_names, recipe_path

__all__ = [
    "BatchResult",
    "BatchSynthesizer",
    "Budget",
    "DeformSpec",
    "GateSpec",
    "IdentityMapping",
    "IntensityMapping",
    "Recipe",
    "Schedule",
    "Targeting",
    "TransformDecl",
    "TransformSpec",
    "build_transform",
    "declarations",
    "deform_batch",
    "derive_seed",
    "get_transform",
    "load_recipe",
    "load_shipped",
    "recipe_names",
    "recipe_path",
    "recipe_schema",
    "register_transform",
    "regenerate_deep_supervision",
    "transform_names",
    "unregister_transform",
]
