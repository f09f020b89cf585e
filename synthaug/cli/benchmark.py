"""``synthaug benchmark ...``: the measurement commands behind the committed reports in benchmarks/results.

- ``synthaug benchmark overhead``: synthesis time per nnU-Net training iteration vs the plain iteration.
- ``synthaug benchmark speed``: time per megavoxel, FLOP/s vs the matmul peak, memory and peer ratios per generator.
- ``synthaug benchmark downstream`` / ``report``: the downstream nnU-Net benchmark and its report.
- ``synthaug benchmark reproduce``: rerun one (arm, seed) of a report from a fresh work folder and compare.
- ``synthaug benchmark restore``: write a committed report's runs back into a work folder (to add seeds or arms).
- ``synthaug benchmark tune``: choose an arm's mixing policy on the training cases' validation fold.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from synthaug.data.scenario_names import scenario_names

__all__ = ["register"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("benchmark", help="measure overhead, speed and downstream Dice (reports)")
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK")

    o = sub.add_parser(
        "overhead",
        help="synthesis time added to one nnU-Net training iteration (side by side with the plain step)",
        description="Build nnUNetTrainerSynthAug for each configuration of a preprocessed dataset, draw one "
        "training batch, and time nnU-Net's plain train_step against the synthesis hook on that batch "
        "(interleaved repeats, medians, ratios). Writes OUT.json and OUT.md.",
    )
    o.add_argument("--preprocessed", required=True, type=Path,
                   help="nnU-Net preprocessed dataset folder ($nnUNet_preprocessed/DatasetXXX_Name)")
    o.add_argument("--configurations", nargs="+", default=["2d", "3d_fullres"], help="default: 2d 3d_fullres")
    o.add_argument("--recipe", required=True, type=Path, help="synthaug recipe (JSON)")
    o.add_argument("--repeats", type=int, default=10, help="measured repeats per variant (default 10)")
    o.add_argument("--warmup", type=int, default=2, help="unmeasured warm-up repeats (default 2)")
    o.add_argument("--device", default="cpu", help="torch device (default cpu)")
    o.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    o.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md (default: print only)")
    o.add_argument("--setup", action="append", default=[],
                   help="a command that prepared the dataset, quoted in the report (repeatable)")
    o.set_defaults(func=_overhead)
    sp = sub.add_parser(
        "speed",
        help="generator transforms: ms/megavoxel, FLOP/s vs the matmul peak, memory, ratios to TorchIO/MONAI/nnU-Net",
        description="Time every shipped generator transform at several volume sizes (real label maps resampled to "
        "each size), interleaved with TorchIO RandomLabelsToImage, MONAI Rand3DElasticd, a plain nnU-Net training "
        "iteration and an fp32 matmul (the peak). Medians, FLOPs (FlopCounterMode), peak memory. Writes OUT.json "
        "and OUT.md (synthaug.benchmark.speed).",
    )
    sp.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md (default: print only)")
    sp.add_argument("--device", default="cpu", help="torch device (default cpu)")
    sp.add_argument("--sizes", nargs="+", default=None, metavar="XxYxZ",
                    help="volume sizes (default 64x64x16 96x96x24 128x128x32)")
    sp.add_argument("--weights", nargs="+", default=None,
                    help="weights names (default: every shipped context/style/translate generator)")
    sp.add_argument("--repeats", type=int, default=5, help="timed rounds per size (default 5)")
    sp.add_argument("--warmup", type=int, default=1, help="unmeasured rounds per size (default 1)")
    sp.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    sp.add_argument("--matmul-size", type=int, default=None, help="edge of the peak matmul (default 2048; CUDA 8192)")
    sp.add_argument("--precisions", nargs="+", default=None, choices=("fp32", "bf16", "fp16"),
                    help="generator precisions timed side by side, with PSNR/SSIM against fp32 (default fp32 bf16; "
                    "on CUDA also fp16)")
    sp.add_argument("--no-peers", action="store_true", help="skip TorchIO and MONAI")
    sp.add_argument("--no-nnunet", action="store_true", help="skip the plain nnU-Net iterations")
    sp.add_argument("--overhead", nargs=2, metavar=("PREPROCESSED", "RECIPE"), default=None,
                    help="also measure synthesis per real nnU-Net iteration (2d and 3d_fullres) on this preprocessed "
                    "dataset with this recipe (synthaug.benchmark.overhead)")
    sp.add_argument("--expansion", nargs=3, metavar=("RAW", "RECIPE", "PER_CASE"), default=None,
                    help="also measure offline expansion throughput with 1 and 2 processes under torchrun (1 thread "
                    "each), outputs compared by sha256")
    sp.add_argument("--note", action="append", default=[], help="a line for the report's Notes (repeatable)")
    sp.set_defaults(func=_speed)
    d = sub.add_parser(
        "downstream",
        help="train nnU-Net per augmentation arm x seed, score the test cases, write the report",
        description="Downstream benchmark (synthaug.benchmark.downstream): built-in --scenario or any nnU-Net raw "
        "--dataset with imagesTs/labelsTs. Refuses generators trained on a test case. Resumable: finished arm x "
        "seed runs are skipped. Writes OUT.md, OUT.json and PNG plots.",
    )
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--scenario", choices=scenario_names(),
                     help="built-in scenario from the open sample data")
    src.add_argument("--dataset", type=Path, help="nnU-Net raw dataset folder with a labelled test split")
    d.add_argument("--profile", default="cpu-quick", help="cpu-quick (default), full or smoke")
    d.add_argument("--work", required=True, type=_folder, help="work folder (nnU-Net folders, runs; reused to resume)")
    d.add_argument("--out", type=Path, default=None, help="report path without suffix (default: WORK/report)")
    d.add_argument("--arms", default=None,
                   help="comma-separated built-in arm names to run (default: all available), or a JSON arms file")
    d.add_argument("--seeds", type=int, nargs="+", default=None, help="override the profile's seeds")
    d.add_argument("--parallel", type=int, default=None, help="override the profile's parallel runs")
    d.add_argument("--tuned", type=Path, action="append", default=[], metavar="SEARCH.json",
                   help="also run ARM_tuned: the built-in arm a 'benchmark tune --out' search of this scenario "
                   "names, at the policy it chose (repeatable)")
    d.add_argument("--note", action="append", default=[], help="a line for the report's Notes (repeatable)")
    _report_options(d)
    d.set_defaults(func=_downstream)

    t = sub.add_parser(
        "tune",
        help="choose an arm's mixing policy (synthetic fraction, curriculum) on the training cases' validation fold",
        description="Mixing-policy search (synthaug.benchmark.tuning): train the arm once per policy on nnU-Net fold "
        "FOLD of the training cases only, score nnU-Net's own validation of that fold, record every candidate and "
        "the choice in WORK/tuning/ARM.json. A later 'synthaug benchmark downstream --work WORK' gives the arm its "
        "chosen policy. No test case is read. Resumable.",
    )
    tsrc = t.add_mutually_exclusive_group(required=True)
    tsrc.add_argument("--scenario", choices=scenario_names(), help="built-in scenario from the open sample data")
    tsrc.add_argument("--dataset", type=Path, help="nnU-Net raw dataset folder with a labelled test split")
    t.add_argument("--arm", required=True, help="an on-the-fly arm of the dataset (e.g. context_dr, synthseg)")
    t.add_argument("--work", required=True, type=_folder, help="the benchmark's work folder")
    t.add_argument("--profile", default="cpu-quick", help="the benchmark profile the arm will run at")
    t.add_argument("--policies", nargs="+", default=None,
                   help="candidates P or P:ramp (default: 0.25 0.5 1.0 1.0:ramp)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--parallel", type=int, default=None, help="override the profile's parallel runs (candidates at a time)")
    t.add_argument("--out", type=Path, default=None,
                   help="also write the search as OUT.md and OUT.json (path without suffix), e.g. "
                        "benchmarks/results/tuning_in-domain_context_phase")
    t.add_argument("--fold", type=int, default=0, help="nnU-Net fold of the training cases to validate on")
    t.set_defaults(func=_tune)

    r = sub.add_parser(
        "report", help="rebuild a downstream report from a work folder's stored results",
        description="Write OUT.md/OUT.json from WORK's stored runs. With --like REPORT.json (a committed report "
        "whose runs were restored into WORK and added to), its title, command, notes and report options are "
        "reused and OUT defaults to REPORT: --command is appended to the stored command ('..., then COMMAND'), "
        "--note lines to the stored notes, and report options given here replace the stored ones.",
    )
    r.add_argument("--work", required=True, type=_folder)
    r.add_argument("--out", type=Path, default=None, help="report path without suffix (required without --like)")
    r.add_argument("--like", type=Path, default=None, metavar="REPORT.json",
                   help="reuse this report's title, command, notes and options (and write over it by default)")
    r.add_argument("--title", default=None)
    r.add_argument("--command", dest="run_command", default="", help="the command that produced the results")
    r.add_argument("--note", action="append", default=[], help="a line for the report's Notes (repeatable)")
    _report_options(r)
    r.set_defaults(func=_report)

    rp = sub.add_parser(
        "reproduce",
        help="rerun one (arm, seed) of a downstream report from a fresh work folder and compare",
        description="Reread REPORT.json (written beside the report's .md), re-export the scenario (or use the "
        "recorded dataset), plan and preprocess it in a fresh work folder, train/predict/score the one run with the "
        "report's profile and arm definition, and compare its mean Dice with the stored per-seed value: within the "
        "run-to-run spread when |rerun - stored| <= sqrt(2) x t(0.975, n-1) x SD (SD of the arm's per-seed means over "
        "its n seeds in the report). Writes REPORT_reproduce_<arm>_seed<S>.md/.json beside the report.",
    )
    rp.add_argument("report", type=Path, help="the report's JSON (e.g. benchmarks/results/downstream_in-domain.json)")
    rp.add_argument("--arm", required=True, help="arm name in the report")
    rp.add_argument("--seed", required=True, type=int, help="seed of the run to redo")
    rp.add_argument("--work", type=_folder, default=None,
                    help="fresh (missing or empty) work folder (default: a new temporary folder, kept)")
    rp.add_argument("--dataset", type=Path, default=None,
                    help="nnU-Net raw dataset, for a report on a user dataset whose recorded folder moved")
    rp.add_argument("--out", type=Path, default=None,
                    help="output path without suffix (default: REPORT_reproduce_<arm>_seed<S> beside the report)")
    rp.set_defaults(func=_reproduce)

    rs = sub.add_parser(
        "restore",
        help="write a committed report's runs back into a work folder, to add seeds or arms to it",
        description="Write REPORT.json's benchmark.json and every stored run (result.json) into WORK, so that "
        "'synthaug benchmark downstream --work WORK ...' on any machine skips them and adds only new runs; the "
        "rebuilt report holds old and new runs, each with its commit. Never overwrites: a different run or "
        "benchmark already in WORK is refused. Dataset paths move with the work folder.",
    )
    rs.add_argument("report", type=Path, help="the report's JSON (e.g. benchmarks/results/downstream_in-domain.json)")
    rs.add_argument("--work", required=True, type=_folder, help="the work folder to restore into")
    rs.set_defaults(func=_restore)

    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _folder(text: str) -> Path:
    """argparse type of a work folder: absent or a folder (:func:`synthaug._validate.check_folder`)."""
    from synthaug._validate import check_folder
    from synthaug.errors import ValidationError

    try:
        return check_folder("--work", text)
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _report_options(p: argparse.ArgumentParser) -> None:
    """Options of the report (shared by ``downstream`` and ``report``)."""
    p.add_argument("--headline-class", action="append", default=None, metavar="CLASS",
                   help="class with its own seed-level headline (repeatable; default: the scenario's, "
                        "synthaug.benchmark.report.HEADLINE_CLASSES)")
    p.add_argument("--learned-classes", action="store_true",
                   help="also give the seed-level headline over the classes default learned (Dice > 0)")
    p.add_argument("--no-harm-margin", type=float, default=None, metavar="POINTS",
                   help='"no harm" needs the seed-level interval\'s lower bound above -POINTS (default 1.0)')
    p.add_argument("--ceiling", type=Path, default=None, metavar="FILE.json",
                   help='label-noise ceiling per group: {"group": {"mean": float, "per_class": {class: float}}} '
                        '(Dice fractions); default: "label-noise ceiling: not measured"')
    p.add_argument("--in-domain", type=Path, default=None, metavar="REPORT.json",
                   help="the in-domain report's JSON (or work folder): lists the classes default never predicts "
                        "in-domain")
    p.add_argument("--predates", action="append", default=[], metavar="COMMIT:TEXT",
                   help="warn about runs made from commits that do not contain COMMIT (a behaviour change "
                        "described by TEXT), e.g. '5d14e12:keep_outside_window' (repeatable)")


def _report_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    from synthaug.benchmark.provenance import parse_predates, resolve_commit
    from synthaug.benchmark.report import ClaimRule, load_ceiling

    predates = [parse_predates(x) for x in args.predates]
    for change in predates:
        resolve_commit(change.commit)  # an unknown commit fails now, not after the training
    if args.ceiling is not None:
        load_ceiling(args.ceiling)
    margin = 1.0 if args.no_harm_margin is None else args.no_harm_margin
    return {"rule": ClaimRule(no_harm_margin=margin / 100.0), "headline_classes": args.headline_class,
            "learned_classes": args.learned_classes, "ceiling": args.ceiling, "in_domain": args.in_domain,
            "predates": predates}


def _command() -> str:
    return "synthaug " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _overhead(args: argparse.Namespace) -> int:
    import torch

    from synthaug.benchmark.overhead import measure_overhead, overhead_markdown
    from synthaug.training.provenance import machine_line, today

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [
        measure_overhead(args.preprocessed, c, args.recipe, repeats=args.repeats, warmup=args.warmup,
                         device=args.device)
        for c in args.configurations
    ]
    report = overhead_markdown(rows, command=_command(), machine=machine_line(), date=today(),
                               recipe=str(args.recipe), dataset=Path(args.preprocessed).name, setup=args.setup)
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"command": _command(), "setup": args.setup, "machine": machine_line(), "date": today(),
                   "rows": rows}
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(report)
    return 0


def _speed(args: argparse.Namespace) -> int:
    import torch

    from synthaug.benchmark.speed import DEFAULT_SIZES, measure_speed, speed_markdown
    from synthaug.errors import ValidationError
    from synthaug.training.provenance import machine_line, today

    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = DEFAULT_SIZES
    if args.sizes:
        try:
            sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
        except ValueError:
            raise ValidationError(f"--sizes must look like 64x64x16, got {args.sizes}.") from None
    expansion = None
    if args.expansion:
        raw, recipe, per_case = args.expansion
        try:
            expansion = (raw, recipe, int(per_case))
        except ValueError:
            raise ValidationError(f"--expansion PER_CASE must be an integer, got {per_case!r}.") from None
    result = measure_speed(sizes, weights=args.weights, repeats=args.repeats, warmup=args.warmup, device=args.device,
                           matmul_size=args.matmul_size, precisions=args.precisions, peers=not args.no_peers,
                           nnunet=not args.no_nnunet, overhead=tuple(args.overhead) if args.overhead else None,
                           expansion=expansion, log=lambda m: print(m, flush=True))
    report = speed_markdown(result, command=_command(), machine=machine_line(), date=today(), notes=args.note)
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"command": _command(), "machine": machine_line(), "date": today(), **result}
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(report)
    return 0


def _arms_for(names: str | None, dataset: Path) -> list:
    """The arms ``--arms`` names (comma-separated built-in names or a JSON arms file; None: every built-in one)."""
    from synthaug.benchmark.arms import arms_from_file, builtin_arms, select_arms
    from synthaug.data.nnunet_export import GENERATOR_FOLDER, training_spacings

    if names and names.endswith(".json"):
        return arms_from_file(names)
    meta = json.loads((dataset / "dataset.json").read_text()) if (dataset / "dataset.json").is_file() else {}
    unlabelled = dataset / GENERATOR_FOLDER
    spacings = list(training_spacings(dataset).values()) if meta else []
    arms = builtin_arms(meta, style_bank=str(dataset.resolve()),
                        unlabelled_bank=str(unlabelled.resolve()) if unlabelled.is_dir() else None, spacings=spacings)
    return select_arms(arms, [a.strip() for a in names.split(",") if a.strip()] if names else None)


def _scenario_name(args: argparse.Namespace, dataset: Any) -> str:
    """The scenario a run is recorded under: the built-in scenario, else the dataset folder's name (what
    ``tune --out`` writes and ``downstream --tuned`` checks)."""
    return args.scenario or Path(dataset).name


def _tuned_arms(files: list[Path], dataset: Path, scenario: str, profile: Any) -> list:
    """``--tuned``: each search file's arm at its chosen policy (checked against this scenario's test cases)."""
    from synthaug.benchmark.downstream import open_dataset
    from synthaug.benchmark.tuning import read_search, tuned_arm

    if not files:
        return []
    test_cases = open_dataset(dataset).test_ids
    out = []
    for f in files:
        record = read_search(f)
        base = next(a for a in _arms_for(record.result.arm, dataset) if a.name == record.result.arm)
        out.append(tuned_arm(base, record, scenario=scenario, test_cases=test_cases, profile=profile))
    return out


def _downstream(args: argparse.Namespace) -> int:
    from synthaug.benchmark.downstream import prepare_scenario, run_benchmark
    from synthaug.benchmark.profiles import get_profile
    from synthaug.benchmark.report import write_report
    from synthaug.benchmark.tuning import apply_tuning
    from synthaug.training.provenance import machine_line, today

    report_kwargs = _report_kwargs(args)  # bad report options fail before any training
    profile = get_profile(args.profile)
    if args.seeds:
        profile = profile.with_(seeds=tuple(args.seeds))
    if args.parallel:
        profile = profile.with_(parallel=args.parallel)
    work = args.work
    dataset = prepare_scenario(args.scenario, work / "source") if args.scenario else args.dataset
    arms = apply_tuning(_arms_for(args.arms, Path(dataset)), work, num_epochs=profile.num_epochs)
    arms += _tuned_arms(args.tuned, Path(dataset), _scenario_name(args, dataset), profile)
    print(f"[benchmark] arms: {', '.join(a.name for a in arms)}; profile {profile.name}; seeds {list(profile.seeds)}")
    run_benchmark(dataset, work, profile, arms)
    out = args.out or work / "report"
    title = f"Downstream nnU-Net benchmark: {_scenario_name(args, dataset)} ({profile.name})"
    path = write_report(work, out, title=title, command=_command(), machine=machine_line(), date=today(),
                        notes=args.note, **report_kwargs)
    print(f"[benchmark] report: {path}")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from synthaug.benchmark.downstream import prepare_scenario
    from synthaug.benchmark.profiles import get_profile
    from synthaug.benchmark.tuning import DEFAULT_POLICIES, MixingPolicy, tune_mixing

    profile = get_profile(args.profile)
    if args.parallel:
        profile = profile.with_(parallel=args.parallel)
    policies = tuple(MixingPolicy.parse(x) for x in args.policies) if args.policies else DEFAULT_POLICIES
    dataset = prepare_scenario(args.scenario, args.work / "source") if args.scenario else args.dataset
    arm = next(a for a in _arms_for(args.arm, Path(dataset)) if a.name == args.arm)
    result = tune_mixing(dataset, args.work, profile, arm, policies=policies, seed=args.seed, fold=args.fold,
                         log=lambda m: print(m, flush=True))
    for c in result.candidates:
        print(f"{args.arm} {c.policy.name}: validation Dice {c.dice:.4f}")
    print(f"chosen: {result.chosen.name} (fold {result.fold}: {len(result.validation_cases)} validation cases)")
    if args.out is not None:
        from synthaug.benchmark.tuning import tuning_markdown
        from synthaug.training.provenance import today

        scenario = _scenario_name(args, dataset)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_name(args.out.name + ".md").write_text(
            tuning_markdown(result, scenario=scenario, command=_command(), date=today()))
        payload = {"command": _command(), "date": today(), "scenario": scenario, **result.to_dict()}
        args.out.with_name(args.out.name + ".json").write_text(json.dumps(payload, indent=1) + "\n")
        print(f"[tune] wrote {args.out.with_name(args.out.name + '.md')} and .json")
    return 0


def _report(args: argparse.Namespace) -> int:
    from synthaug.benchmark.report import write_report
    from synthaug.errors import ValidationError
    from synthaug.training.provenance import machine_line, today

    title, command, notes, out = args.title, args.run_command, list(args.note), args.out
    if args.like is not None:
        title, command, notes, out = _like(args)
    elif out is None:
        raise ValidationError("benchmark report needs --out (the report path without suffix) or --like REPORT.json.")
    path = write_report(args.work, out, title=title or f"Downstream nnU-Net benchmark: {args.work.name}",
                        command=command, machine=machine_line(), date=today(), notes=notes,
                        **_report_kwargs(args))
    print(path)
    return 0


def _like(args: argparse.Namespace) -> tuple[str, str, list[str], Path]:
    """``report --like``: the stored settings, with what the command line gives on top. Fills the report
    options left at their defaults into ``args`` (for :func:`_report_kwargs`); returns (title, command, notes,
    out)."""
    from synthaug.benchmark.restore import stored_settings

    s = stored_settings(args.like)
    if args.no_harm_margin is None:
        args.no_harm_margin = s.no_harm_margin * 100.0
    if args.headline_class is None:
        args.headline_class = list(s.headline_classes) or None
    args.learned_classes = args.learned_classes or s.learned_classes
    if args.ceiling is None and s.ceiling_file:
        args.ceiling = Path(s.ceiling_file)
    if args.in_domain is None and s.in_domain_file:
        args.in_domain = Path(s.in_domain_file)
    if not args.predates:
        args.predates = list(s.predates)
    command = ", then ".join(c for c in (s.command, args.run_command) if c)
    out = args.out or (args.like.with_suffix("") if args.like.suffix == ".json" else args.like)
    return args.title or s.title, command, [*s.notes, *args.note], out


def _restore(args: argparse.Namespace) -> int:
    from synthaug.benchmark.restore import restore_work

    restore_work(args.report, args.work)
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from synthaug.benchmark.provenance import current_commit
    from synthaug.benchmark.reproduce import output_path, reproduce, reproduction_markdown
    from synthaug.training.provenance import machine_line, today

    record, _ = reproduce(args.report, arm=args.arm, seed=args.seed, work=args.work, dataset=args.dataset,
                          log=lambda m: print(m, flush=True))
    commit = current_commit()
    out = args.out or output_path(args.report, args.arm, args.seed)
    md = reproduction_markdown(record, command=_command(), machine=machine_line(), date=today(),
                               commit=commit.label() if commit else "unknown")
    print(md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_name(out.name + ".md").write_text(md)
    payload = {"command": _command(), "machine": machine_line(), "date": today(),
               "commit": commit.to_dict() if commit else None, **record}
    out.with_name(out.name + ".json").write_text(json.dumps(payload, indent=1) + "\n")
    print(f"[reproduce] wrote {out.with_name(out.name + '.md')} and .json")
    return 0
