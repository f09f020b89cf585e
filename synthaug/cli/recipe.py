"""``synthaug recipe list|show|path|schema|check|preview``: the shipped recipes and what a recipe does to your data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("recipe", help="shipped recipes; check a recipe against a dataset; preview it",
                              description="Recipes say which synthaug transforms run on training batches (nnU-Net "
                              "trainer, synthaug expand). RECIPE is a shipped recipe name or a recipe file.")
    sub = p.add_subparsers(dest="recipe_command", metavar="ACTION")
    sub.add_parser("list", help="the shipped recipes and their descriptions").set_defaults(func=_list)
    s = sub.add_parser("show", help="print a recipe (validated) as JSON")
    s.add_argument("recipe")
    s.set_defaults(func=_show)
    a = sub.add_parser("path", help="the file of a shipped recipe (for SYNTHAUG_RECIPE)")
    a.add_argument("recipe")
    a.set_defaults(func=_path)
    j = sub.add_parser("schema", help="the recipe JSON Schema (derived from the recipe and options records)",
                       description="Prints the JSON Schema of recipe files (draft 2020-12) for the transforms "
                       "registered now; docs/recipe.schema.json is the committed copy.")
    j.add_argument("--out", type=Path, help="write it to this file instead of printing it")
    j.set_defaults(func=_schema)
    c = sub.add_parser("check", help="validate a recipe against an nnU-Net raw dataset for the path that runs it",
                       description="Builds every transform with the dataset's label names, verifies weights, refuses "
                       "generators trained on the dataset's test cases and keys the chosen path ignores.")
    c.add_argument("recipe")
    c.add_argument("--dataset", required=True, type=Path, help="nnU-Net raw dataset folder")
    c.add_argument("--for", dest="path", choices=("trainer", "expand"), default="trainer",
                   help="who runs it: nnUNetTrainerSynthAug (default) or synthaug expand")
    c.set_defaults(func=_check)
    v = sub.add_parser("preview", help="captioned grid of what the recipe makes of a few training cases")
    v.add_argument("recipe")
    v.add_argument("--dataset", required=True, type=Path, help="nnU-Net raw dataset folder")
    v.add_argument("--out", required=True, type=Path, help="PNG file to write")
    v.add_argument("--cases", type=int, default=3, help="training cases to show (default 3)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--device", default="cpu")
    v.set_defaults(func=_preview)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _list(args: argparse.Namespace) -> int:
    from synthaug.recipes.shipped import load_shipped, recipe_names

    for name in recipe_names():
        r = load_shipped(name)
        what = ", ".join(f"{t.name} p={t.probability:g}" for t in r.transforms) or "synthesis off"
        print(f"{name:24s} {what}\n{'':24s} {r.description[:160]}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from synthaug.recipes.shipped import load_shipped

    print(json.dumps(load_shipped(args.recipe).to_dict(), indent=2))
    return 0


def _path(args: argparse.Namespace) -> int:
    from synthaug.recipes.shipped import recipe_path

    print(recipe_path(args.recipe))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from synthaug.recipes.schema import schema_json

    text = schema_json()
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from synthaug.recipes.preview import check_recipe

    r = check_recipe(args.recipe, args.dataset, path=args.path)
    print(f"ok: {r.recipe} runs on {r.dataset} through {r.path}: transforms {list(r.transforms)}, "
          f"weights {list(r.weights) or '-'} (verified, no test case in their training), labels {list(r.labels)}")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from synthaug.recipes.preview import preview_recipe

    print(preview_recipe(args.recipe, args.dataset, args.out, cases=args.cases, seed=args.seed, device=args.device))
    return 0
