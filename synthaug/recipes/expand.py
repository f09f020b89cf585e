"""Offline expansion: an nnU-Net v2 raw dataset plus N synthetic copies of every training case.

``expand_dataset(raw_folder, out_folder, recipe=..., per_case=N, seed=S)`` (CLI: ``synthaug expand``):

- copies the originals (``imagesTr``/``labelsTr`` and, untouched, ``imagesTs``/``labelsTs``) and adds
  ``<case>_synthaug<k>`` (k = 0..N-1) for every *training* case; test cases are never a source;
- every synthetic case comes with a provenance manifest ``synthaug_provenance/<case>_synthaug<k>.json``
  (generator name and sha256 from its model card, the recipe and its checksum, the seed, the source case,
  the sha256 of the written files); the manifest is written last and is the case's commit marker;
- ``dataset.json`` gets the new ``numTraining`` and a ``synthaug_expansion`` record; ``splits_final.json``
  holds nnU-Net's default 5 folds of the *original* cases (same seed and order as nnU-Net) with every
  synthetic case in the training set of exactly the folds whose training set holds its source case, so no
  validation fold ever sees a synthetic copy of one of its cases (nnU-Net's planner copies the file into
  the preprocessed folder);
- the dataset is built in a hidden sibling folder ``.<name>.synthaug-partial`` and renamed into place at
  the end: an existing output is never overwritten, and a killed run resumes from the partial folder
  (finished cases are verified against their manifests and kept, partial ones discarded and redone).
  Each synthetic case's randomness is ``derive_seed(seed, case, k)``, so the result does not depend on
  the order, on interruptions or on the number of processes;
- under ``torchrun`` (``torch.distributed``; gloo on CPU, NCCL on GPU) rank r synthesises every world_size-th
  (training case, k) job, so ranks stay balanced when the case count does not divide, and copies every
  world_size-th original; rank 0 writes ``dataset.json``, the splits and the preview after a barrier;
- a model card whose ``training_cases`` overlap the dataset's test cases (when the dataset carries synthaug
  scenario metadata) is refused with :class:`~synthaug.errors.LeakageError`;
- a progress bar (tqdm) and a preview grid ``synthaug_preview.png`` (label, source, synthetic).

Labels of synthetic cases are the source's labels (elastically deformed when the recipe says so); for the
synthaug scenarios those are TotalSegmentator model predictions, not manual ground truth.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthaug.errors import DataError, LeakageError, ValidationError
from synthaug.recipes.batch import build_transform, deform_batch
from synthaug.recipes.leakage import TestSplit
from synthaug.recipes.recipe import Recipe, derive_seed, load_recipe
from synthaug.transforms.guards import DataInfo, check_channel_modality, check_spacing
from synthaug.transforms.options import OptionsTransform

__all__ = [
    "expansion_support",
    "SYNTHETIC_TAG",
    "PROVENANCE_DIR",
    "PREVIEW_FILE",
    "synthetic_id",
    "check_case_id",
    "check_card_leakage",
    "expand_dataset",
]

SYNTHETIC_TAG = "_synthaug"
PROVENANCE_DIR = "synthaug_provenance"
PREVIEW_FILE = "synthaug_preview.png"
SETTINGS_FILE = "synthaug_expansion.json"
_DATASET_NAME = re.compile(r"^Dataset(\d{3})_[A-Za-z0-9_-]+$")
_SLAB = re.compile(r"^(?P<subject>[^:]+):z(?P<start>\d+)-(?P<stop>\d+)$")
_SCENARIO_ID = re.compile(r"^.+_z\d{3,}-\d{3,}$")
_ENDINGS = (".nii.gz", ".nii")

Hook = Callable[[str, str], None]


def synthetic_id(case: str, k: int) -> str:
    """``<case>_synthaug<k>``."""
    return f"{case}{SYNTHETIC_TAG}{int(k)}"


def check_case_id(case: str) -> str:
    """Refuse ids that could name a file outside their folder (separators, ``..``, hidden, empty, NUL)."""
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if (
        not isinstance(case, str)
        or not case.strip()
        or any(s in case for s in seps)
        or ".." in case
        or case.startswith(".")
        or "\x00" in case
    ):
        raise ValidationError(
            f"case id {case!r} is not allowed: it could name a file outside the output folder (path separators, "
            "'..', a leading '.', or empty). Rename the case in the source dataset."
        )
    return case


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tmp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


def _atomic_text(target: Path, text: str) -> None:
    tmp = _tmp_name(target)
    tmp.write_text(text)
    os.replace(tmp, target)


def _atomic_copy(src: Path, target: Path) -> None:
    """Copy ``src`` to ``target`` through a rename; an existing target is kept only when its bytes are the
    source's (a resumed run never keeps a corrupted or stale copy of an original)."""
    if target.is_file() and target.stat().st_size == src.stat().st_size and _sha256(target) == _sha256(src):
        return
    tmp = _tmp_name(target)
    shutil.copyfile(src, tmp)
    os.replace(tmp, target)


def _atomic_nifti(target: Path, array: np.ndarray, affine: np.ndarray, header: Any) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(array, affine, header=header)
    img.set_data_dtype(array.dtype)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}{''.join(target.suffixes[-2:])}")
    nib.save(img, str(tmp))
    os.replace(tmp, target)


# ------------------------------------------------------------------------------------ leakage


def check_card_leakage(card: Any, dataset_json: Mapping[str, Any]) -> None:
    """Raise :class:`LeakageError` if ``card.training_cases`` overlap the dataset's synthaug test cases.

    Datasets exported by synthaug list their cases (subject, slice range, role) under ``"synthaug"``;
    other datasets carry no such record and are not checked. Card entries ``subject:zA-B`` (half-open
    slice range), ``subject:anything`` / ``subject`` (the whole subject) and scenario ids
    ``<subject>_zAAA-BBB`` are understood.
    """
    meta = dataset_json.get("synthaug")
    if not isinstance(meta, Mapping):
        return
    tests = [c for c in meta.get("cases", []) if isinstance(c, Mapping) and c.get("role") == "test"]
    if not tests:
        return
    from synthaug.data.scenarios import check_no_overlap

    clashes = []
    scenario_like = []
    for tc in card.training_cases:
        m = _SLAB.match(tc)
        if m:
            subject, lo, hi = m["subject"], int(m["start"]), int(m["stop"])
        elif _SCENARIO_ID.match(tc) and ":" not in tc:
            scenario_like.append(tc)
            continue
        else:
            subject, lo, hi = tc.split(":")[0], 0, 10**9
        for t in tests:
            if t.get("subject") == subject and lo < int(t.get("z_stop", 0)) and int(t.get("z_start", 0)) < hi:
                clashes.append(f"{t.get('id')} ~ {tc}")
    if clashes:
        shown = ", ".join(clashes[:5]) + (f" (+{len(clashes) - 5} more)" if len(clashes) > 5 else "")
        raise LeakageError(
            f"generator {card.name!r} was trained on slices of the dataset's test case(s): {shown}. Synthetic training "
            "data from it would leak the test set; use weights trained on the training cases only."
        )
    if scenario_like:
        check_no_overlap(scenario_like, [str(t.get("id")) for t in tests], what=f"generator {card.name!r} training")


# ------------------------------------------------------------------------------------ layout


@dataclass(frozen=True)
class _Source:
    root: Path
    meta: dict[str, Any]
    ending: str
    channels: int
    train: tuple[str, ...]
    test: tuple[str, ...]

    def image(self, case: str, c: int, kind: str = "Tr") -> Path:
        return self.root / f"images{kind}" / f"{case}_{c:04d}{self.ending}"

    def label(self, case: str, kind: str = "Tr") -> Path:
        return self.root / f"labels{kind}" / f"{case}{self.ending}"


def _read_source(folder: Path) -> _Source:
    from synthaug.data.nnunet_export import _cases_in, check_nnunet_raw

    check_nnunet_raw(folder)  # dataset.json vs files, labels, shapes: clear DataError
    meta = json.loads((folder / "dataset.json").read_text())
    ending = str(meta["file_ending"])
    if ending not in _ENDINGS:
        raise DataError(
            f"{folder}: file_ending {ending!r} is not supported by synthaug expand (NIfTI only: {list(_ENDINGS)})."
        )
    channels = len(meta["channel_names"])
    train = tuple(sorted(_cases_in(folder / "imagesTr", ending, channels=channels)))
    test = tuple(sorted(_cases_in(folder / "imagesTs", ending, channels=channels)))
    for c in train + test:
        check_case_id(c)
    return _Source(folder, meta, ending, channels, train, test)


def _check_out(out: Path, source: Path) -> None:
    from synthaug.data.nnunet_export import _refuse_existing

    m = _DATASET_NAME.match(out.name)
    if m is None:
        raise ValidationError(
            f"--out must be a new nnU-Net dataset folder named DatasetXXX_Name (XXX: three digits), got {out.name!r}."
        )
    if out.exists():
        raise DataError(f"{out} already exists; synthaug never overwrites a dataset. Choose another --out.")
    if out.resolve().parent == source.resolve() or source.resolve() in out.resolve().parents:
        raise ValidationError(f"--out {out} lies inside the source dataset {source}; put it next to it.")
    if out.parent.is_dir():
        _refuse_existing(out.parent, out.name, int(m[1]))


# ------------------------------------------------------------------------------------ distributed


def _dist_context(rank: int | None, world_size: int | None, device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, whether this call initialised the process group)."""
    import torch.distributed as dist

    if rank is not None or world_size is not None:
        r, w = int(rank or 0), int(world_size or 1)
        if not 0 <= r < w:
            raise ValidationError(f"rank must lie in [0, world_size), got rank={r}, world_size={w}.")
        return r, w, False
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    w = int(os.environ.get("WORLD_SIZE", "1"))
    if w > 1 and dist.is_available():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), dist.get_world_size(), True
    return 0, 1, False


def _all_ok(ok: bool, world: int) -> bool:
    """True when every rank reports ``ok`` (a collective: every rank must call it)."""
    if world <= 1:
        return ok
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return ok
    flag = torch.tensor([0 if ok else 1], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        flag = flag.cuda()
    dist.all_reduce(flag)
    return int(flag.item()) == 0


# ------------------------------------------------------------------------------------ one synthetic case


def _load(path: Path) -> tuple[np.ndarray, Any]:
    import nibabel as nib

    img = nib.load(str(path))
    return np.asarray(img.dataobj), img


def _manifest_ok(manifest: Path, work: Path) -> bool:
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    for rel, digest in data.get("files", {}).items():
        p = work / rel
        if not p.is_file() or _sha256(p) != digest:
            return False
    return True


class _Expander:
    def __init__(self, src: _Source, work: Path, recipe: Recipe, seed: int, device: torch.device) -> None:
        self.src, self.work, self.recipe, self.seed, self.device = src, work, recipe, int(seed), device
        labels = src.meta["labels"]
        self.dataset_labels = {str(k): int(v) for k, v in labels.items() if isinstance(v, int)}
        ignore = labels.get("ignore")
        self.ignore = int(ignore) if isinstance(ignore, int) else None
        split = TestSplit.from_raw_dataset(src.root)
        self.transforms = [
            build_transform(s, dataset_labels=self.dataset_labels, ignore_label=self.ignore, slice_axis=2,
                            test_split=split)
            for s in recipe.transforms
        ]
        channel = str(src.meta.get("channel_names", {}).get(str(recipe.channel), ""))
        for t in self.transforms:
            if t.card is not None and channel:
                check_channel_modality(t.card, channel)
        probs = torch.tensor([s.probability for s in recipe.transforms], dtype=torch.float64)
        if float(probs.sum()) <= 0:
            raise ValidationError(
                "every transform of the recipe has probability 0; expansion picks a transform per synthetic case in "
                "proportion to the probabilities, so at least one must be positive."
            )
        self.cum = torch.cumsum(probs / probs.sum(), 0)

    def files(self, sid: str) -> list[Path]:
        src = self.src
        imgs = [self.work / "imagesTr" / f"{sid}_{c:04d}{src.ending}" for c in range(src.channels)]
        return imgs + [self.work / "labelsTr" / f"{sid}{src.ending}"]

    def manifest(self, sid: str) -> Path:
        return self.work / PROVENANCE_DIR / f"{sid}.json"

    def discard(self, sid: str) -> None:
        for p in [self.manifest(sid), *self.files(sid)]:
            for q in [p, *p.parent.glob(f".{p.name}.tmp-*")]:
                q.unlink(missing_ok=True)

    @torch.no_grad()
    def make(self, case: str, k: int, hook: Hook | None) -> None:
        sid = synthetic_id(case, k)
        src, ch = self.src, self.recipe.channel
        case_seed = derive_seed(self.seed, case, k)
        g = torch.Generator().manual_seed(case_seed)
        i = int(torch.searchsorted(self.cum, torch.rand((), generator=g, dtype=torch.float64), right=True).clamp_max(len(self.cum) - 1))
        synth_seed = int(torch.randint(0, 2**62, (), generator=g))
        deform_seed = int(torch.randint(0, 2**62, (), generator=g))
        spec, transform = self.recipe.transforms[i], self.transforms[i]
        arrays, headers = [], []
        for c in range(src.channels):
            a, img = _load(src.image(case, c))
            arrays.append(a.astype(np.float32))
            headers.append(img)
        lab_np, lab_img = _load(src.label(case))
        label_dtype = lab_img.get_data_dtype()
        images = torch.from_numpy(np.stack(arrays))[None].to(self.device)
        labels = torch.from_numpy(lab_np.astype(np.int64))[None, None].to(self.device)
        if spec.deform.enabled and spec.deform.max_displacement > 0:
            images, labels = deform_batch(images, labels, spec=spec.deform, seeds=[deform_seed])
        valid = labels >= 0 if self.ignore is None else (labels >= 0) & (labels != self.ignore)
        gen = torch.where(valid, labels, torch.zeros_like(labels))
        record: dict[str, Any] = {
            "synthaug_provenance": 1,
            "case": sid,
            "source_case": case,
            "k": int(k),
            "seed": case_seed,
            "global_seed": self.seed,
            "transform": spec.to_dict(),
            "params": dataclasses.asdict(transform.params_from_seed(synth_seed)),
            "generator": self._generator(transform),
            "recipe": self.recipe.to_dict(),
            "recipe_sha256": self.recipe.sha256(),
            "synthaug_version": _version(),
            "label_note": "label of the source case (elastically deformed when transform.deform.enabled); for "
            "synthaug scenarios these are TotalSegmentator model predictions, not manual ground truth",
        }
        if not bool((gen != 0).any()):
            record.update(skipped=True, reason="the source label holds no foreground; nothing to synthesise from",
                          files={})
            _atomic_text(self.manifest(sid), json.dumps(record, indent=2, sort_keys=True))
            return
        kw = {"info": DataInfo(spacing=tuple(float(z) for z in headers[ch].header.get_zooms()[:3]))} \
            if transform.uses_data_info else {}
        out_raw, out_gen = transform.apply_batch(images[:, ch : ch + 1].float(), gen, seeds=[synth_seed], **kw)
        new_lab = torch.where(valid, out_gen.to(labels.dtype), labels)
        y = torch.where(valid, out_raw.float(), images[:, ch : ch + 1].float())
        images = images.clone()
        images[:, ch : ch + 1] = y
        paths = self.files(sid)
        for c in range(src.channels):
            h = headers[c]
            _atomic_nifti(paths[c], images[0, c].cpu().numpy().astype(np.float32), h.affine, h.header)
        _atomic_nifti(paths[-1], new_lab[0, 0].cpu().numpy().astype(label_dtype), lab_img.affine, lab_img.header)
        if hook is not None:
            hook("case_files_written", sid)
        record["skipped"] = False
        record["files"] = {str(p.relative_to(self.work)): _sha256(p) for p in paths}
        _atomic_text(self.manifest(sid), json.dumps(record, indent=2, sort_keys=True))
        if hook is not None:
            hook("case_done", sid)

    @staticmethod
    def _generator(transform: OptionsTransform) -> dict[str, Any]:
        card = transform.card
        if card is None:
            return {"name": type(transform).__name__, "sha256": ""}
        return {"name": card.name, "sha256": card.sha256, "family": card.family,
                "training_cases": list(card.training_cases)}


def _version() -> str:
    from synthaug import __version__

    return __version__


# ------------------------------------------------------------------------------------ final assembly


def _splits(train: Sequence[str], synthetic: Mapping[str, list[str]]) -> list[dict[str, list[str]]]:
    """nnU-Net's own 5-fold split of the originals, each synthetic case in the training part of its original's folds.

    With 2-4 originals the split is leave-one-out, repeated so that folds 0-4 all exist (nnU-Net would otherwise fall
    back to a random split over every case, synthetic copies of a validation case included).
    """
    from synthaug._optional import require

    if len(train) < 2:
        raise DataError(
            f"the source dataset has {len(train)} training case(s); a validation split needs at least 2 originals "
            "(so that no synthetic copy of a validation case is trained on). Add training cases, or train nnU-Net "
            "on the original dataset."
        )
    generate = require("nnunetv2.utilities.crossval_split").generate_crossval_split
    n = min(5, len(train))
    folds = generate(sorted(train), seed=12345, n_splits=n)  # nnU-Net's default split (leave-one-out below 5)
    folds = [folds[k % n] for k in range(5)]
    out = []
    for f in folds:
        tr = [str(c) for c in f["train"]]
        extra = [sid for c in tr for sid in synthetic.get(c, [])]
        out.append({"train": tr + extra, "val": [str(c) for c in f["val"]]})
    return out


def _middle(a: np.ndarray) -> np.ndarray:
    return a[..., a.shape[2] // 2] if a.ndim == 3 else a


def _scaled(a: np.ndarray, lo: float, hi: float, size: tuple[int, int]) -> torch.Tensor:
    import torch.nn.functional as F

    t = torch.from_numpy(np.clip((a - lo) / (hi - lo), 0, 1) * 2 - 1)[None, None].float()
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0]


def _preview(work: Path, src: _Source, pairs: Sequence[tuple[str, str]], channel: int) -> None:
    """Grid of the first synthetic cases: label | source image | synthetic image (middle slice, 128 x 128)."""
    import torch.nn.functional as F

    from synthaug.visualize import write_grid

    if not pairs:
        return
    labs, reals, fakes, titles = [], [], [], []
    size = (128, 128)
    for sid, case in pairs:
        m = json.loads((work / PROVENANCE_DIR / f"{sid}.json").read_text())
        gen = m.get("generator", {}).get("name", "")
        titles.append([f"{sid}: label", f"source {case}", f"{m['transform']['name']} ({gen}) seed {m['seed'] % 10000}"])
        real = _middle(_load(src.image(case, channel))[0]).astype(np.float32)
        fake = _middle(_load(work / "imagesTr" / f"{sid}_{channel:04d}{src.ending}")[0]).astype(np.float32)
        lab = _middle(_load(work / "labelsTr" / f"{sid}{src.ending}")[0]).astype(np.int64)
        lo, hi = (float(v) for v in np.percentile(real, [1, 99]))
        hi = hi if hi > lo else lo + 1.0
        reals.append(_scaled(real, lo, hi, size))
        fakes.append(_scaled(fake, lo, hi, size))
        labs.append(F.interpolate(torch.from_numpy(lab)[None, None].float(), size=size, mode="nearest")[0, 0].long())
    write_grid([torch.stack(labs), torch.stack(reals), torch.stack(fakes)], work / PREVIEW_FILE, max_rows=len(pairs),
               titles=titles)


def _verify_contents(work: Path, src: _Source, exp: _Expander, synthetic: Mapping[str, list[str]]) -> None:
    """Before the rename: every original is byte-identical to the source, every synthetic file to its manifest."""
    originals = [(src.image(c, ch), work / "imagesTr" / src.image(c, ch).name) for c in src.train
                 for ch in range(src.channels)]
    originals += [(src.label(c), work / "labelsTr" / src.label(c).name) for c in src.train]
    for kind in ("Ts",):
        for sub in (f"images{kind}", f"labels{kind}"):
            if (src.root / sub).is_dir():
                originals += [(f, work / sub / f.name) for f in sorted((src.root / sub).iterdir())
                              if f.is_file() and not f.name.startswith(".")]
    bad = [str(t.relative_to(work)) for s, t in originals if not t.is_file() or _sha256(t) != _sha256(s)]
    bad += [sid for sids in synthetic.values() for sid in sids if not _manifest_ok(exp.manifest(sid), work)]
    if bad:
        raise DataError(
            f"{work}: {len(bad)} file(s) differ from their source or manifest ({bad[:5]}); the partial expansion is "
            "kept. Rerun the same command: differing originals are copied again and differing cases redone."
        )


def _finish(work: Path, out: Path, src: _Source, exp: _Expander, per_case: int, seed: int, preview: bool) -> Path:
    from synthaug.data.nnunet_export import check_nnunet_raw

    for p in work.rglob(".*.tmp-*"):  # leftovers of killed runs (all ranks are done here)
        p.unlink(missing_ok=True)
    synthetic: dict[str, list[str]] = {}
    skipped: list[str] = []
    for case in src.train:
        for k in range(per_case):
            sid = synthetic_id(case, k)
            m = exp.manifest(sid)
            if not m.is_file():
                raise DataError(f"synthetic case {sid} was not finished (no {m.name}); rerun the same command to resume.")
            if json.loads(m.read_text()).get("skipped"):
                skipped.append(sid)
            else:
                synthetic.setdefault(case, []).append(sid)
    n_synth = sum(len(v) for v in synthetic.values())
    meta = json.loads(json.dumps(src.meta))
    meta["numTraining"] = len(src.train) + n_synth
    meta["synthaug_expansion"] = {
        "source_dataset": src.root.name,
        "per_case": per_case,
        "seed": seed,
        "recipe": exp.recipe.to_dict(),
        "recipe_sha256": exp.recipe.sha256(),
        "generators": [_Expander._generator(t) for t in exp.transforms],
        "synthetic_cases": {sid: case for case, sids in synthetic.items() for sid in sids},
        "skipped_empty_label": skipped,
        "provenance_folder": PROVENANCE_DIR,
        "note": "synthetic images generated by synthaug; each case's manifest is in the provenance folder",
    }
    _atomic_text(work / "dataset.json", json.dumps(meta, indent=2))
    _atomic_text(work / "splits_final.json", json.dumps(_splits(src.train, synthetic), indent=2))
    if preview:
        pairs = [(sid, case) for case in src.train for sid in synthetic.get(case, [])][:4]
        _preview(work, src, pairs, exp.recipe.channel)
    check_nnunet_raw(work)
    _verify_contents(work, src, exp, synthetic)
    (work / SETTINGS_FILE).unlink(missing_ok=True)  # its content is in dataset.json["synthaug_expansion"]
    if out.exists():
        raise DataError(f"{out} appeared while expanding; synthaug never overwrites a dataset. The result is in {work}.")
    os.rename(work, out)
    return out


# ------------------------------------------------------------------------------------ entry point


def expansion_support(recipe: Recipe) -> None:
    """Refuse recipe keys offline expansion does not apply (they would be silently dropped otherwise).

    Expansion makes ``per_case`` synthetic copies of every training case, choosing the transform in proportion to
    the probabilities: there are no epochs (``schedule``), no per-class oversampling (``targeting``) and no
    label-faithfulness gate (``gate``); ``budget`` only concerns the nnU-Net trainer.
    """
    from synthaug.recipes.recipe import Budget, Schedule

    unsupported = [k for k, on in (("gate", recipe.gate is not None), ("targeting", recipe.targeting is not None),
                                   ("schedule", recipe.schedule != Schedule()), ("budget", recipe.budget != Budget()))
                   if on]
    if unsupported:
        raise ValidationError(
            f"recipe {recipe.source or '(in memory)'} sets {unsupported}, which offline expansion does not apply "
            "(they belong to the nnU-Net trainer). Remove them for `synthaug expand`, or use the recipe with "
            "nnUNetTrainerSynthAug."
        )


def expand_dataset(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    recipe: Recipe | str | os.PathLike[str],
    per_case: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    preview: bool = True,
    hook: Hook | None = None,
    rank: int | None = None,
    world_size: int | None = None,
) -> Path:
    """Write ``out`` = ``dataset`` + ``per_case`` synthetic copies of each training case; return ``out``.

    Args:
        dataset: an nnU-Net v2 raw dataset folder (NIfTI).
        out: the new dataset folder ``.../DatasetXXX_Name``; must not exist, its id must be unused.
        recipe: a :class:`Recipe` or a recipe file; each synthetic case uses one of its transforms, picked in
            proportion to the transforms' probabilities (the schedule does not apply offline).
        per_case: synthetic cases per training case (>= 1).
        seed: global seed; case ``(c, k)`` uses ``derive_seed(seed, c, k)``.
        device: where the generators run (default: this rank's GPU if available, else CPU).
        hook: ``hook(event, case_id)`` after a case's files (``"case_files_written"``) and its manifest
            (``"case_done"``); for progress reporting and interruption tests.
        rank, world_size: shard explicitly; default from ``torch.distributed`` / ``torchrun``'s environment.
    """
    if isinstance(per_case, bool) or not isinstance(per_case, int) or per_case < 1:
        raise ValidationError(f"per_case must be an integer >= 1, got {per_case!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError(f"seed must be a non-negative integer, got {seed!r}.")
    src_root, out = Path(dataset), Path(out)
    if device is None:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    from synthaug.data.nnunet_export import training_spacings

    src = _read_source(src_root)
    _check_out(out, src_root)
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    expansion_support(rec)
    exp_work = out.parent / f".{out.name}.synthaug-partial"
    exp = _Expander(src, exp_work, rec, seed, device)
    spacings = training_spacings(src_root, channel=rec.channel)
    for t in exp.transforms:
        if t.card is not None:
            check_card_leakage(t.card, src.meta)
            if t.uses_data_info:  # every case's header against the generator's training spacing, before synthesis
                for case in src.train:
                    try:
                        check_spacing(t.card, spacings.get(case), slice_axis=t.slice_axis,
                                      tolerance=t.spacing_tolerance, dims=3)
                    except ValidationError as exc:
                        raise ValidationError(f"training case {case!r} of {src_root}: {exc}") from exc
    # every check that needs no synthesis, before any synthesis: a validation split needs 2 originals
    _splits(src.train, {})
    synth_ids = [synthetic_id(c, k) for c in src.train for k in range(per_case)]
    for sid in synth_ids:
        check_case_id(sid)
    taken = set(src.train) | set(src.test)
    clash = sorted(taken.intersection(synth_ids))
    if clash or len(set(synth_ids)) != len(synth_ids):
        raise DataError(
            f"synthetic case id(s) {clash[:5] or 'duplicated'} collide with existing case ids of {src_root}; "
            f"rename the source cases (ids ending in '{SYNTHETIC_TAG}<k>' are reserved)."
        )

    r, world, owns_group = _dist_context(rank, world_size, device)
    try:
        settings = {
            "source_dataset": str(src_root.resolve()),
            "out": out.name,
            "per_case": per_case,
            "seed": seed,
            "recipe_sha256": rec.sha256(),
        }
        ok, error = True, None
        try:
            for sub in ("imagesTr", "labelsTr", PROVENANCE_DIR):
                (exp_work / sub).mkdir(parents=True, exist_ok=True)
            settings_path = exp_work / SETTINGS_FILE
            text = json.dumps(settings, indent=2, sort_keys=True)
            if settings_path.is_file():
                if json.loads(settings_path.read_text()) != settings:
                    raise DataError(
                        f"{exp_work} holds a partial expansion with other settings "
                        f"({settings_path.read_text().strip()}); remove that folder or rerun with the same settings."
                    )
            else:
                _atomic_text(settings_path, text)
            _run_shard(src, exp, exp_work, per_case, r, world, progress, hook)
        except BaseException as exc:  # report to the other ranks before re-raising
            ok, error = False, exc
        all_ok = _all_ok(ok, world)
        if error is not None:
            raise error
        if not all_ok:
            raise DataError("another rank failed while expanding; see its error. Rerun the same command to resume.")
        result = out
        ok, error = True, None
        if r == 0:
            try:
                result = _finish(exp_work, out, src, exp, per_case, seed, preview)
            except BaseException as exc:
                ok, error = False, exc
        all_ok = _all_ok(ok, world)
        if error is not None:
            raise error
        if not all_ok:
            raise DataError("rank 0 failed while writing dataset.json / splits; see its error.")
        return result
    finally:
        if owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _run_shard(src: _Source, exp: _Expander, work: Path, per_case: int, rank: int, world: int,
               progress: bool, hook: Hook | None) -> None:
    from tqdm import tqdm

    mine = list(src.train[rank::world])
    if rank == 0:
        for kind in ("Ts",):
            for sub in (f"images{kind}", f"labels{kind}"):
                folder = src.root / sub
                if folder.is_dir():
                    (work / sub).mkdir(exist_ok=True)
                    for f in sorted(folder.iterdir()):
                        if f.is_file() and not f.name.startswith("."):
                            _atomic_copy(f, work / sub / f.name)
    for case in mine:
        for c in range(src.channels):
            _atomic_copy(src.image(case, c), work / "imagesTr" / src.image(case, c).name)
        _atomic_copy(src.label(case), work / "labelsTr" / src.label(case).name)
    jobs = [(case, k) for case in src.train for k in range(per_case)][rank::world]  # balanced across ranks
    bar = tqdm(total=len(jobs), desc=f"synthaug expand (rank {rank}/{world})" if world > 1 else "synthaug expand",
               unit="case", disable=not progress, position=rank if world > 1 else None)
    try:
        for case, k in jobs:
            sid = synthetic_id(case, k)
            m = exp.manifest(sid)
            if m.is_file() and _manifest_ok(m, work):
                bar.update(1)
                continue
            exp.discard(sid)  # a partial or corrupt case: redo it from scratch
            exp.make(case, k, hook)
            bar.update(1)
    finally:
        bar.close()
