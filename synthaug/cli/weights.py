"""``synthaug weights list|info|verify|publish|reseal|docs``: the weights registry from the command line."""

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
    verify = sub.add_parser("verify", help="check the file sha256 and the embedded tensor hash of every (or one) "
                            "entry and rebuild each network; exit status 1 if any check fails")
    verify.add_argument("name", nargs="?", help="registry name or path (default: all, malformed cards included)")
    verify.set_defaults(func=_verify)
    pub = sub.add_parser("publish", help="copy a trained weights file into a registry folder under a new name")
    pub.add_argument("source", help="path to a .safetensors file written by `synthaug train`")
    pub.add_argument("--name", required=True, help="registry name (e.g. context_ct_a)")
    pub.add_argument("--dest", help="registry folder (default: the shipped synthaug/weights folder)")
    pub.add_argument("--metrics", help="JSON file with a metrics object (or a list of rows: the row whose 'weights' "
                     "equals the source card's name is taken)")
    pub.add_argument("--notes", help="replace the card's notes (e.g. how a staged training was run)")
    pub.add_argument("--accept-unhashed", action="store_true",
                     help="publish a file that carries no tensor content hash (written by an older synthaug): you "
                     "vouch for its tensors, and the published copy embeds a hash computed now")
    pub.set_defaults(func=_publish)
    reseal = sub.add_parser("reseal", help="re-embed a registry entry's edited card into its weights file (tensors "
                            "byte for byte) and record the new sha256 in the card")
    reseal.add_argument("names", nargs="*", help="registry names")
    reseal.add_argument("--all", action="store_true", help="every shipped entry")
    reseal.set_defaults(func=_reseal)
    docs = sub.add_parser("docs", help="write the Markdown model card of every shipped entry (docs/model_cards)")
    docs.add_argument("--out", required=True, help="folder for <name>.md files")
    docs.set_defaults(func=_docs)


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
    import sys

    from synthaug.weights.registry import verify

    results = verify(args.name)
    for r in results:
        if r.ok and r.integrity is not None:
            print(f"{r.name}: ok (file sha256 {r.integrity.sha256[:16]}... matches its card; tensor hash "
                  f"{r.integrity.tensor_sha256[:16]}... matches the file's; {r.parameters:,} parameters)")
        else:
            print(f"{r.name}: FAILED", file=sys.stderr)
            for problem in r.problems:
                print(f"  - {problem}", file=sys.stderr)
    failed = sum(not r.ok for r in results)
    if failed:
        print(f"{failed} of {len(results)} weights entries failed verification", file=sys.stderr)
    return 1 if failed else 0


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
    result = publish(args.source, name=args.name, dest=Path(args.dest) if args.dest else None, metrics=metrics,
                     notes=args.notes, accept_unhashed=args.accept_unhashed)
    if result.hash_added:
        print(f"note: {args.source} carried no tensor content hash; on your --accept-unhashed the published copy "
              f"embeds one computed now ({result.card.tensor_sha256}). It certifies the tensors from here on, not "
              "that they are the ones originally trained.")
    print(f"published {result.card.name} to {result.path} (sha256 {result.card.sha256}, tensor hash "
          f"{result.card.tensor_sha256})")
    return 0


def _reseal(args: argparse.Namespace) -> int:
    from synthaug.errors import ValidationError
    from synthaug.weights.registry import builtin_dir, list_weights, reseal

    if args.all == bool(args.names):
        raise ValidationError("weights reseal: give registry names or --all (not both).")
    names = args.names or [c.name for c in list_weights() if (builtin_dir() / "cards" / f"{c.name}.json").is_file()]
    for name in names:
        card = reseal(name)
        print(f"{name}: sha256 {card.sha256}, tensor hash {card.tensor_sha256}")
    return 0


def _docs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synthaug.weights.card_markdown import write_markdown_cards

    for path in write_markdown_cards(Path(args.out)):
        print(path)
    return 0
