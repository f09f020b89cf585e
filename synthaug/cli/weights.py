"""``synthaug weights list|info|verify``: the weights registry from the command line."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("weights", help="list, describe and verify shipped generator weights")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="one line per known weights entry")
    ls.set_defaults(func=_list)
    info = sub.add_parser("info", help="the full model card of one entry (JSON)")
    info.add_argument("name", help="registry name or path to a .safetensors file")
    info.add_argument("--markdown", action="store_true", help="a human-readable Markdown model card instead of JSON")
    info.set_defaults(func=_info)
    verify = sub.add_parser("verify", help="check sha256 and rebuild every (or one) network")
    verify.add_argument("name", nargs="?", help="registry name or path (default: all)")
    verify.set_defaults(func=_verify)
    pub = sub.add_parser("publish", help="copy a trained weights file into a registry folder under a new name")
    pub.add_argument("source", help="path to a .safetensors file written by `synthaug train`")
    pub.add_argument("--name", required=True, help="registry name (e.g. context_ct_a)")
    pub.add_argument("--dest", help="registry folder (default: the shipped synthaug/weights folder)")
    pub.add_argument("--metrics", help="JSON file with a metrics object (or a list of rows: the row whose 'weights' "
                     "equals the source card's name is taken)")
    pub.add_argument("--notes", help="replace the card's notes (e.g. how a staged training was run)")
    pub.set_defaults(func=_publish)


def _list(args: argparse.Namespace) -> int:
    from synthaug.weights.registry import list_weights

    cards = list_weights()
    if not cards:
        print("no weights found (shipped folder empty and SYNTHAUG_WEIGHTS_PATH unset)")
        return 0
    for c in cards:
        what = f"{c.source_modality}->{c.target_modality}" if c.source_modality else c.modality
        print(f"{c.name:28s} {c.family:10s} {c.architecture:20s} {what:10s} labels={c.n_labels:<3d} trained on {', '.join(c.training_cases)}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from synthaug.weights.registry import card_of

    card = card_of(args.name)
    if args.markdown:
        from synthaug.weights.card_markdown import card_to_markdown

        print(card_to_markdown(card))
        return 0
    print(json.dumps(card.to_dict(), indent=2, sort_keys=True))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from synthaug.weights.registry import list_weights, load

    names = [args.name] if args.name else [c.name for c in list_weights()]
    for name in names:
        net, card = load(name)
        print(f"{name}: ok (sha256 {card.sha256[:16]}..., {sum(p.numel() for p in net.parameters()):,} parameters)")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synthaug.errors import ValidationError
    from synthaug.weights.registry import publish
    from synthaug.weights.store import read_card

    metrics = None
    if args.metrics:
        data = json.loads(Path(args.metrics).read_text())
        if isinstance(data, list):
            src_name = read_card(Path(args.source)).name
            rows = [r for r in data if r.get("weights") == src_name]
            if not rows:
                raise ValidationError(f"{args.metrics} has no row for weights {src_name!r}.")
            data = rows[0]
        metrics = data
    card = publish(args.source, name=args.name, dest=Path(args.dest) if args.dest else None, metrics=metrics,
                   notes=args.notes)
    print(f"published {card.name} (sha256 {card.sha256})")
    return 0
