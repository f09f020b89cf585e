"""Per-organ style swap as an augmentation: a new image of the same anatomy in another patient's style.

The array form :class:`StyleSwap` has no MONAI/TorchIO dependency; ``RandStyleSwapd`` /
``RandStyleSwap`` (MONAI) and ``RandomStyleSwap`` (TorchIO) wrap it (see :mod:`synthaug.integrations`).

Per call:

1. a random style patient is drawn from a :class:`StyleBank` (cases given as a list or read from a
   folder of NIfTI ``(image, label)`` pairs); its per-class style codes were pooled once over all of
   its slices (a bank case is encoded once per weights and device, then cached);
2. (optional) the content label map's boundaries are perturbed by a smooth elastic field
   (nearest neighbour, :mod:`synthaug.transforms.elastic`); the perturbed label is returned with the
   new image, so image and label stay consistent;
3. the frozen 2D generator renders every slice of the content label map (3D volumes slice by slice,
   in batches of ``chunk`` slices, on the input's device) with the style patient's codes; all slices of
   a volume share the style codes and one noise draw (truncated normal of bound ``truncation``), so
   identical slices give identical outputs (inter-slice consistency);
4. the output is mapped back to the input's intensity convention (the card's: a fixed CT window, or the
   content volume's own percentiles for MR).

Generators trained with a body class (the network's ``body_class``) get it from the Med-USIS body
mask of the content image itself (normalised with the card's convention, binarised at the card's
threshold, opened, largest connected component per slice; on slices larger than 128 pixels the
component is chosen on a max-pooled copy, an approximation at the component boundaries only); bank
cases get theirs from their own images. Classes the style patient lacks use the generator's learned
default codes. Sampling is split from
application: :meth:`StyleSwap.sample_params` draws a small record (whether to apply, one integer seed,
the style case index and id); :meth:`StyleSwap.apply` is pure given it.

Leakage guard: a bank refuses any case whose role is ``"test"`` or whose id overlaps a case listed in
``test_cases`` (same subject and shared slices, :func:`synthaug.data.scenarios.check_no_overlap`),
raising :class:`~synthaug.errors.LeakageError`; a style bank must never hold the patients a model is
tested on.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthaug._validate import check_axis, check_image, check_int, check_positive
from synthaug.errors import DataError, LabelError, LeakageError, ShapeError, ValidationError
from synthaug.inference.phases import phase
from synthaug.losses.style import extract_mask, largest_component
from synthaug.networks.inference import infer
from synthaug.networks.spade import truncated_normal
from synthaug.transforms.elastic import sample_displacements, warp, warp_labels
from synthaug.transforms.guards import (
    DataInfo,
    GuardOptions,
    check_batch_guards,
    check_finite_output,
)
from synthaug.transforms.labels import LabelOptions, LabelVocabulary, check_image_label_batch
from synthaug.transforms.options import OptionsTransform
from synthaug.transforms.slicewise import (
    crop_padding,
    from_slices,
    pad_to_multiple,
    resolve_chunk,
    run_in_chunks,
    to_slices,
)
from synthaug.weights.card import BodyMaskSpec
from synthaug.weights.registry import card_of, load

__all__ = ["DEFAULT_STYLE_WEIGHTS", "StyleCase", "StyleBank", "bank_files", "StyleSwapOptions", "StyleSwapParams", "StyleSwap"]

DEFAULT_STYLE_WEIGHTS = "style_ct_a"
_NIFTI = (".nii.gz", ".nii")
_CODE_CACHE: dict[tuple[str, str, str, str], tuple[torch.Tensor, torch.Tensor]] = {}
_CACHE_LOCK = threading.Lock()
_BANK_CACHE: dict[tuple, StyleBank] = {}


# ------------------------------------------------------------------------------------------ the bank


@dataclass(frozen=True, eq=False)
class StyleCase:
    """One style patient: ``image`` ``(1, *spatial)`` raw intensities, ``label`` ``(1, *spatial)`` integer
    (or None: unlabelled, only for generators with a global style code), an id and a role."""

    case_id: str
    image: torch.Tensor
    label: torch.Tensor | None
    role: str = "style"


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.as_tensor() if hasattr(x, "as_tensor") else x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValidationError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}.")


def _check_affines(a: Any, b: Any, case: str) -> None:
    if a is None or b is None:
        return
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or not np.allclose(a, b, atol=1e-3):
        raise ValidationError(
            f"style case {case!r}: image and label have different affines; resample the label onto the image "
            "(nearest neighbour) first."
        )


def _make_case(item: Any, index: int) -> StyleCase:
    if isinstance(item, StyleCase):
        case = item
    elif isinstance(item, Mapping):
        unknown = set(item) - {"image", "label", "id", "case_id", "role", "image_affine", "label_affine"}
        if unknown or "image" not in item:
            raise ValidationError(
                f"style case {index} must be a mapping with 'image' and optional 'label', 'id', 'role', "
                f"'image_affine', 'label_affine'; got keys {sorted(item)}."
            )
        cid = str(item.get("id", item.get("case_id", f"case_{index:03d}")))
        _check_affines(item.get("image_affine", getattr(item["image"], "affine", None)),
                       item.get("label_affine", getattr(item.get("label"), "affine", None)), cid)
        label = item.get("label")
        case = StyleCase(cid, _as_tensor(item["image"], "image"), None if label is None else _as_tensor(label, "label"),
                         str(item.get("role", "style")))
    elif isinstance(item, Sequence) and len(item) == 2:
        image, label = item
        case = StyleCase(f"case_{index:03d}", _as_tensor(image, "image"),
                         None if label is None else _as_tensor(label, "label"))
    else:
        raise ValidationError(
            f"style case {index} must be a StyleCase, a mapping {{'image', 'label', 'id', 'role'}} or an "
            f"(image, label) pair, got {type(item).__name__}."
        )
    image = case.image
    if image.ndim in (2, 3) and not (image.ndim == 3 and image.shape[0] == 1):
        image = image[None]  # add the channel dimension
    if image.ndim not in (3, 4) or image.shape[0] != 1:
        raise ShapeError(
            f"style case {case.case_id!r}: image must be (1, *spatial) or (*spatial) with 2 or 3 spatial dims, "
            f"got shape {tuple(case.image.shape)}."
        )
    image = image.float() if not image.is_floating_point() else image
    check_image(image, f"style case {case.case_id!r} image")
    label = case.label
    if label is not None:
        if label.ndim == image.ndim - 1:
            label = label[None]
        if tuple(label.shape) != tuple(image.shape):
            raise ShapeError(
                f"style case {case.case_id!r}: label {tuple(case.label.shape)} must match image "
                f"{tuple(case.image.shape)}; resample the label onto the image grid first."
            )
        if label.is_floating_point():
            if not bool(torch.isfinite(label).all()) or not bool((label == label.round()).all()):
                raise LabelError(f"style case {case.case_id!r}: label holds non-integer or NaN values.")
        label = label.round().long() if label.is_floating_point() else label.long()
        if not bool((label != 0).any()):
            raise LabelError(f"style case {case.case_id!r}: label is empty (only background 0).")
    return StyleCase(case.case_id, image, label, case.role)


class StyleBank:
    """The style patients an augmentation may draw from.

    Args:
        cases: :class:`StyleCase` objects, mappings ``{"image", "label", "id", "role"}`` or ``(image, label)``
            pairs; images ``(1, *spatial)`` or ``(*spatial)`` in raw units, labels of the same shape.
        test_cases: ids of test cases (e.g. ``scenario.test_case_ids()``); a bank case that is, or overlaps,
            one of them is refused with :class:`LeakageError`, as is any case with ``role="test"``.

    Example:
        >>> bank = StyleBank([{"image": torch.zeros(8, 8, 2), "label": torch.ones(8, 8, 2, dtype=torch.long),
        ...                    "id": "ctA_z000-001"}], test_cases=["ctA_z096-111"])
        >>> len(bank), bank.ids
        (1, ('ctA_z000-001',))
    """

    def __init__(self, cases: Iterable[Any], *, test_cases: Iterable[str] = (), test_content: Iterable[str] = ()) -> None:
        made = [_make_case(c, i) for i, c in enumerate(cases)]
        if not made:
            raise ValidationError("a StyleBank needs at least one case.")
        ids = [c.case_id for c in made]
        if len(set(ids)) != len(ids):
            raise ValidationError(f"style case ids must be unique, got {ids}.")
        marked = [c.case_id for c in made if c.role == "test"]
        if marked:
            raise LeakageError(
                f"style bank case(s) {marked} are marked as test cases; a style bank must not contain the patients "
                "a model is tested on. Remove them from the bank."
            )
        tests = [str(t) for t in test_cases]
        if tests:
            from synthaug.data.scenarios import check_no_overlap

            check_no_overlap(ids, tests, what="style bank")
        self.cases: tuple[StyleCase, ...] = tuple(made)
        self.check_content(test_content)
        self._reference: tuple[str, tuple[str, ...], str, str] | None = None

    @cached_property
    def content(self) -> tuple[str, ...]:
        """Voxel content hash of every case's image (:func:`synthaug.data.cache.content_hash`)."""
        from synthaug.data.cache import content_hash

        return tuple(content_hash(c.image.detach().cpu().numpy()) for c in self.cases)

    def check_content(self, test_content: Iterable[str]) -> None:
        """Refuse (:class:`LeakageError`) a case whose image voxels equal a test image's, whatever its name."""
        tests = set(test_content)
        if not tests:
            return
        same = [c.case_id for c, h in zip(self.cases, self.content) if h in tests]
        if same:
            raise LeakageError(
                f"style bank case(s) {same} hold the same voxels as a test image (a copy under another name): a style "
                "bank must not contain the patients a model is tested on. Remove them from the bank."
            )

    def __reduce_ex__(self, protocol: Any) -> Any:
        """A bank read from a folder pickles (and deep-copies) as its folder reference: the receiving process
        reads it once (:meth:`from_folder` caches per process), so transforms holding it stay small."""
        if self._reference is not None:
            return (_bank_from_reference, self._reference)
        return super().__reduce_ex__(protocol)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.case_id for c in self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def __repr__(self) -> str:
        return f"StyleBank({len(self)} cases: {list(self.ids)[:5]}{' ...' if len(self) > 5 else ''})"

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of the cases' ids, shapes and contents (keys the code cache; computed once)."""
        h = hashlib.sha1()
        for c in self.cases:
            h.update(c.case_id.encode())
            h.update(str(tuple(c.image.shape)).encode())
            h.update(np.ascontiguousarray(c.image.detach().cpu().float().numpy()).tobytes())
            if c.label is not None:
                h.update(np.ascontiguousarray(c.label.detach().cpu().numpy()).tobytes())
        return h.hexdigest()[:16]

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        test_cases: Iterable[str] = (),
        image_suffix: str = "_image",
        label_suffix: str = "_label",
    ) -> StyleBank:
        """Read ``<id>_image.nii[.gz]`` + ``<id>_label.nii[.gz]`` pairs, or an nnU-Net raw dataset
        (``imagesTr/<id>_0000.nii.gz`` + ``labelsTr/<id>.nii.gz``; ``imagesTs`` is never read), or a
        folder of nnU-Net images only (``<id>_0000.nii.gz``, e.g. a scenario's ``imagesGen``): unlabelled
        cases, usable only by generators with a global style code (the unpaired mode).

        An optional ``roles.json`` ``{case id: role}`` marks roles; a ``"test"`` role is refused. Images
        and labels must share their affine.
        """
        import nibabel as nib

        root = Path(folder)
        pairs = bank_files(root, image_suffix=image_suffix, label_suffix=label_suffix)  # checks the folder
        tests = tuple(sorted(str(t) for t in test_cases))
        files = [p for _, i, lab in pairs for p in (i, lab) if p] + [p for p in (root / "roles.json",) if p.is_file()]
        state = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
        key = (str(root.resolve()), tests, image_suffix, label_suffix, state)
        with _CACHE_LOCK:
            cached = _BANK_CACHE.get(key)
        if cached is not None:
            return cached
        roles: dict[str, str] = {}
        if (root / "roles.json").is_file():
            try:
                roles = {str(k): str(v) for k, v in json.loads((root / "roles.json").read_text()).items()}
            except (json.JSONDecodeError, AttributeError) as exc:
                raise DataError(f"{root / 'roles.json'} must hold a JSON object {{case id: role}}: {exc}") from exc
        cases = []
        for cid, img_path, lab_path in pairs:
            img = nib.load(str(img_path))
            lab = None if lab_path is None else nib.load(str(lab_path))
            cases.append({
                "id": cid, "role": roles.get(cid, "style"), "image": np.asarray(img.dataobj, dtype=np.float32),
                "label": None if lab is None else np.asarray(lab.dataobj).astype(np.int64),
                "image_affine": img.affine, "label_affine": None if lab is None else lab.affine,
            })
        bank = cls(cases, test_cases=tests)
        bank._reference = (str(root.resolve()), tests, image_suffix, label_suffix)
        with _CACHE_LOCK:
            _BANK_CACHE[key] = bank
        return bank


def _bank_from_reference(folder: str, test_cases: tuple[str, ...], image_suffix: str, label_suffix: str) -> StyleBank:
    """Unpickle a folder bank: read it (once per process) from its folder."""
    return StyleBank.from_folder(folder, test_cases=test_cases, image_suffix=image_suffix, label_suffix=label_suffix)


def bank_files(folder: str | Path, *, image_suffix: str = "_image",
               label_suffix: str = "_label") -> list[tuple[str, Path, Path | None]]:
    """``(case id, image file, label file or None)`` of a style-bank folder, in the layouts
    :meth:`StyleBank.from_folder` reads (nothing is loaded; the leakage check lists ids with it)."""
    root = Path(folder)
    if root.name in ("imagesTs", "labelsTs"):
        raise LeakageError(f"style bank folder {str(root)!r} is an nnU-Net test split; use training cases.")
    if not root.is_dir():
        raise DataError(f"style bank folder {str(root)!r} does not exist.")
    pairs: list[tuple[str, Path, Path | None]] = []
    if (root / "imagesTr").is_dir():
        for img in sorted((root / "imagesTr").iterdir()):
            name = _strip_nifti(img.name)
            if name is None or not name.endswith("_0000"):
                continue
            cid = name[: -len("_0000")]
            pairs.append((cid, img, _find_nifti(root / "labelsTr", cid)))
    else:
        for img in sorted(root.iterdir()):
            name = _strip_nifti(img.name)
            if name is None or not name.endswith(image_suffix):
                continue
            cid = name[: -len(image_suffix)]
            pairs.append((cid, img, _find_nifti(root, cid + label_suffix)))
        if not pairs:  # an images-only folder: unlabelled cases
            for img in sorted(root.iterdir()):
                name = _strip_nifti(img.name)
                if name is not None and name.endswith("_0000"):
                    pairs.append((name[: -len("_0000")], img, None))
    if not pairs:
        raise DataError(
            f"no style cases in {str(root)!r}: expected <id>{image_suffix}.nii.gz + <id>{label_suffix}.nii.gz "
            "pairs, an nnU-Net imagesTr/labelsTr layout, or unlabelled <id>_0000.nii.gz images."
        )
    return pairs


def _strip_nifti(name: str) -> str | None:
    for ext in _NIFTI:
        if name.endswith(ext):
            return name[: -len(ext)]
    return None


def _find_nifti(folder: Path, stem: str) -> Path:
    for ext in _NIFTI:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    raise DataError(f"style bank: no label file {stem}.nii.gz in {str(folder)!r} for image case {stem!r}.")


# ------------------------------------------------------------------------------------------ the transform


@dataclass(frozen=True)
class StyleSwapParams:
    """Everything random about one call: replaying it gives the same output."""

    seed: int
    apply: bool
    style_index: int = -1
    style_id: str = ""


@dataclass(frozen=True)
class StyleSwapOptions(LabelOptions, GuardOptions):
    """Options of :class:`StyleSwap` (and of its MONAI, TorchIO and recipe faces).

    Args:
        weights: registry name or path of a ``style`` family weights file.
        bank: the style patients: a folder (read once per process by :meth:`StyleBank.from_folder` and held by
            reference, so the transform stays cheap to copy and pickle), a :class:`StyleBank`, or None (every
            class uses its learned default code).
        test_cases: ids of test cases the bank must not hold (leakage guard, see :class:`StyleBank`).
        test_content: voxel content hashes of the test images the bank must not hold, whatever their names
            (:func:`synthaug.data.cache.content_hash`; the recipe paths fill it from the dataset's imagesTs).
        deform: perturb the content label boundaries with a smooth elastic field first (returned label).
        control_points, max_displacement: that field (displacement in voxels).
        truncation: bound ``a`` of the truncated-normal noise (None: standard normal).
        label_names, label_map, labels_are_classes: what the content and bank label values mean
            (:class:`~synthaug.transforms.labels.LabelOptions`); a label map is read by name, never guessed.
        spacing_tolerance, check_modality: input guards from the model card
            (:class:`~synthaug.transforms.guards.GuardOptions`).
        slice_axis: axis along which 3D volumes are cut into 2D slices.
        chunk: slices per generator call; None: 8 on CPU, 32 on a GPU.
        keep_outside_window: for a CT-window generator, voxels whose (deformed) input lies outside the
            window (air, lung, dense bone) keep the input's value instead of the generator's saturated
            one (:meth:`~synthaug.intensity.IntensityConvention.keep_outside_window`); no effect for MR
            percentile conventions.
    """

    weights: str | Path = DEFAULT_STYLE_WEIGHTS
    bank: StyleBank | str | Path | None = None
    test_cases: tuple[str, ...] = ()
    test_content: tuple[str, ...] = ()
    deform: bool = False
    control_points: int = 4
    max_displacement: float = 4.0
    truncation: float | None = 1.0
    slice_axis: int = 2
    chunk: int | None = None
    keep_outside_window: bool = True

    def validate(self) -> None:
        super().validate()
        if self.bank is not None and not isinstance(self.bank, (StyleBank, str, os.PathLike)):
            raise ValidationError(f"bank must be a StyleBank, a folder path or None, got {type(self.bank).__name__}.")
        if isinstance(self.test_cases, str):
            raise ValidationError(f"test_cases must be a list of case ids, got the string {self.test_cases!r}.")
        self._set("test_cases", tuple(str(t) for t in self.test_cases))
        if isinstance(self.test_content, str):
            raise ValidationError(f"test_content must be a list of content hashes, got the string {self.test_content!r}.")
        self._set("test_content", tuple(str(t) for t in self.test_content))
        self._set("deform", bool(self.deform))
        self._set("keep_outside_window", bool(self.keep_outside_window))
        self._set("control_points", check_int("control_points", self.control_points, low=2))
        self._set("max_displacement", float(check_positive("max_displacement", float(self.max_displacement), allow_zero=True)))
        if self.truncation is not None:
            self._set("truncation", float(check_positive("truncation", float(self.truncation))))
        self._set("slice_axis", check_axis("slice_axis", self.slice_axis))
        if self.chunk is not None:
            self._set("chunk", check_int("chunk", self.chunk, low=1))


class StyleSwap(LabelVocabulary, OptionsTransform):
    """Render the content label map with a random bank patient's per-organ style (frozen generator).

    Options: :class:`StyleSwapOptions` (``weights`` and ``bank`` may be given by position); ``prob`` is the
    probability that a call swaps the style (otherwise image and label pass unchanged).

    Example:
        >>> bank = StyleBank.from_folder("style_cases/", test_cases=scenario.test_case_ids())  # doctest: +SKIP
        >>> swap = StyleSwap("style_ct_a", bank, prob=0.5)  # doctest: +SKIP
        >>> params = swap.sample_params(generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        >>> new_image, new_label = swap.apply(image, label, params)  # doctest: +SKIP
    """

    Options = StyleSwapOptions
    positional = ("weights", "bank")
    uses_data_info = True
    options: StyleSwapOptions

    def _setup(self) -> None:
        self.card = card_of(self.weights, family="style")
        bank = self.options.bank
        if isinstance(bank, (str, os.PathLike)):
            bank = StyleBank.from_folder(bank, test_cases=self.test_cases)
        elif bank is not None and self.test_cases:
            from synthaug.data.scenarios import check_no_overlap

            check_no_overlap(bank.ids, self.test_cases, what="style bank")
        if bank is not None:
            bank.check_content(self.test_content)
        self.bank: StyleBank | None = bank
        self.n_labels = self.card.n_labels
        known = self._vocabulary_setup()
        if bank is not None:
            global_code = bool(self.card.arguments.get("global_code", False))
            unlabelled = [c.case_id for c in bank.cases if c.label is None]
            if unlabelled and not global_code:
                raise ValidationError(
                    f"style cases {unlabelled} have no label, but generator {self.card.name!r} pools style codes per "
                    "labelled region only; give their label maps."
                )
            if known:  # refuse a bank label the vocabulary does not cover now, not at the first call
                for c in bank.cases:
                    if c.label is not None:
                        self._to_classes(c.label, None, f"style case {c.case_id!r} label")

    def _sample_kwargs(self, params: StyleSwapParams) -> dict[str, Any]:
        return {"style_indices": [params.style_index]}

    # ------------------------------------------------------------------ sampling
    def params_from_seed(self, seed: int, apply: bool = True) -> StyleSwapParams:
        """The params a seed implies (the style case is drawn from the seed)."""
        index = -1
        if self.bank is not None:
            index = int(torch.randint(len(self.bank), (), generator=torch.Generator().manual_seed(int(seed))))
        return StyleSwapParams(int(seed), bool(apply), index, self.bank.ids[index] if index >= 0 else "")

    # ------------------------------------------------------------------ application
    def _body(self, net: torch.nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """``classes`` ``(N, H, W)`` with the body class from the masks of ``x`` ``(N, 1, H, W)`` in [-1, 1]."""
        if not net.body_class:
            return classes
        body = self.card.features.body_mask or BodyMaskSpec()
        opened = extract_mask(x, threshold=body.threshold, value_range=body.value_range, hard=True,
                              opening_size=body.opening_size, largest=False)
        h, w = x.shape[-2:]
        f = max(1, -(-max(h, w) // 128))
        small = torch.nn.functional.max_pool2d(opened, f, ceil_mode=True) if f > 1 else opened
        keep = largest_component(small).to(opened.dtype)
        if f > 1:
            keep = keep.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1)[..., :h, :w]
        return net.add_body(classes, opened * keep)

    def _bank_codes(self, net: torch.nn.Module, device: torch.device,
                    data_names: Mapping[str, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes ``(n_cases, R, D)`` and presence ``(n_cases, R)`` of every bank case, pooled over all its slices."""
        if self.bank is None:
            raise ValidationError("this StyleSwap has no style bank.")
        key = (self.card.sha256 or str(self.weights), self.bank.fingerprint, str(device),
               f"{self.slice_axis}:{self.class_table(data_names)}")
        with _CACHE_LOCK:
            if key in _CODE_CACHE:
                return _CODE_CACHE[key]
        conv = self.card.intensity_convention
        codes, present = [], []
        for case in self.bank.cases:  # once per bank case, then cached: not a per-call path
            img = case.image.to(device=device, dtype=torch.float32)
            x = conv.normalise(img, conv.fit(img))[None]
            xs = to_slices(x, self.slice_axis)
            ls = None
            if case.label is not None:
                ls = to_slices(self._to_classes(case.label.to(device), data_names,
                                                f"style case {case.case_id!r} label")[None], self.slice_axis)[:, 0]
                ls = self._body(net, xs, ls)
            sums = None
            step = resolve_chunk(self.chunk, device)
            for i in range(0, xs.shape[0], step):
                part = net.region_sums(xs[i : i + step], None if ls is None else ls[i : i + step])
                part = tuple(p.sum(0, keepdim=True) for p in part)
                sums = part if sums is None else tuple(a + b for a, b in zip(sums, part))
            style = net.codes_from_sums(*sums)
            codes.append(style.codes[0])
            present.append(style.present[0])
        out = (torch.stack(codes), torch.stack(present))
        with _CACHE_LOCK:
            _CODE_CACHE[key] = out
        return out

    @torch.no_grad()
    def apply_batch(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        seeds: Sequence[int],
        style_indices: Sequence[int] | None = None,
        info: DataInfo | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Batched style swap: ``images`` (B, 1, *spatial), ``labels`` (B, 1, *spatial); one seed per sample.

        Sample i's output depends only on its own inputs, ``seeds[i]`` and its style case (drawn from the
        seed unless ``style_indices`` gives it), so a batch gives what per-sample calls give.
        """
        with phase("checks"):
            label_dtype = labels.dtype
            labels = check_image_label_batch(images, labels, purpose="restyle")
            label_names = (info or DataInfo()).label_names
            self._to_classes(labels, label_names)  # the vocabulary check sees every structure, before any warp
            info = check_batch_guards(self.card, images, seeds=seeds, info=info, slice_axis=self.slice_axis,
                                      spacing_tolerance=self.spacing_tolerance, check_modality_on=self.check_modality)
            b = images.shape[0]
            if style_indices is None or any(int(i) < 0 for i in style_indices):
                style_indices = [self.params_from_seed(s).style_index for s in seeds]
            if len(style_indices) != b:
                raise ValidationError(f"style_indices must have one entry per sample ({b}), got {len(style_indices)}.")
            if self.bank is not None and any(not 0 <= int(i) < len(self.bank) for i in style_indices):
                raise ValidationError(f"style_indices {list(style_indices)} must lie in 0..{len(self.bank) - 1}.")
        device, dtype = images.device, images.dtype
        spatial = tuple(images.shape[2:])
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        net, card = load(self.weights, device=device, dtype=torch.float32)
        conv = card.intensity_convention
        with phase("intensity fit"):
            fit = conv.fit_batch(images.float())
            xs = to_slices(conv.normalise(images.float(), fit), self.slice_axis)
        # 1. generator classes per slice (+ the body class from the content image's own body mask)
        with phase("checks"):
            cs = to_slices(self._to_classes(labels, label_names), self.slice_axis)[:, 0]
        n_per = cs.shape[0] // b
        with phase("body mask"):
            cs = self._body(net, xs, cs)
        reference = images.float()  # raw input, aligned with the output (for keep_outside_window)
        # 2. boundary perturbation: one smooth field per sample moves the returned label and the classes alike
        if self.deform and self.max_displacement > 0:
            with phase("deformation"):
                disp = sample_displacements(spatial, gens, control_points=self.control_points,
                                            max_displacement=self.max_displacement, device=device)
                labels = warp_labels(labels, disp)
                classes = from_slices(cs[:, None], b, self.slice_axis, images.ndim)
                cs = to_slices(warp_labels(classes, disp), self.slice_axis)[:, 0]
                if self.keep_outside_window and conv.kind == "ct_window":
                    reference = warp(reference, disp)
        # 3. style codes of each sample's bank case, broadcast to its slices
        with phase("style codes"):
            if self.bank is not None:
                bank_codes, _ = self._bank_codes(net, device, label_names)
                codes = bank_codes[torch.as_tensor([int(i) for i in style_indices], device=device)]
            else:
                codes = net.default_style(b, device=device).codes
            codes = codes.repeat_interleave(n_per, dim=0)
        # 4. one noise draw per volume, shared by its slices
        with phase("noise"):
            noise = None
            if net.z_dim:
                draws = []
                for g in gens:  # one tiny draw per sample (independent generators)
                    ng = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (), generator=g)))
                    if self.truncation is None:
                        draws.append(torch.randn(net.z_dim, generator=ng))
                    else:
                        draws.append(truncated_normal((net.z_dim,), self.truncation, generator=ng))
                noise = torch.stack(draws).to(device).repeat_interleave(n_per, dim=0)
        with phase("padding"):
            cs_p, pads = pad_to_multiple(cs, card.inference.divisor, 0)

        def render(part: slice) -> torch.Tensor:
            kw = {"noise": noise[part]} if noise is not None else {}
            with phase("generator"):
                return infer(net, cs_p[part], codes[part], method="render", **kw)

        fake = run_in_chunks(render, cs_p.shape[0], resolve_chunk(self.chunk, cs_p.device))
        with phase("padding"):
            fake = crop_padding(fake, pads)
        with phase("output"):
            out = from_slices(fake, b, self.slice_axis, images.ndim)
            # 5. back to the input's intensity convention (out-of-window voxels keep the input's values)
            out = conv.denormalise(out, fit)
            if self.keep_outside_window:
                out = conv.keep_outside_window(out, reference)
            out = check_finite_output(out, generator=self.card.name).to(dtype)
        return out, labels.to(dtype=label_dtype)
