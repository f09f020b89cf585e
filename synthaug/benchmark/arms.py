"""Benchmark arms: what differs between the nnU-Net trainings the harness compares.

An :class:`Arm` is a synthaug recipe run on the fly by ``nnUNetTrainerSynthAug`` (the ``default`` arm
has an empty recipe: nnU-Net's default augmentation, synthesis off, the same budget mechanism), or an
offline expansion (``synthaug expand`` with a recipe, then trained with synthesis off).

Built-in arms (:func:`builtin_arms`) are chosen from the dataset's labels and the shipped weights whose training
spacing matches the training images' (within the transforms' default ``spacing_tolerance``; a generator trained at
3 mm is not offered for 1.5 mm data, where every one of its transforms would refuse the input):

- ``default``: nnU-Net's default augmentation only;
- ``synthseg``: the strongest generator-free baseline as its authors run it: SynthSeg-style domain
  randomisation (Billot et al. 2023) on *every* training sample (p = 1): random Gaussian mixture per label,
  blur, bias field, gamma, resolution/slice-thickness simulation and elastic deformation (shipped recipe
  ``synthseg``);
- ``heavy_intensity``: nnU-Net's default augmentation plus SmaugLab's retained heavy intensity augmentation
  (Molinier et al. 2026, arXiv 2605.03098: inversion, histogram equalisation, non-linear remaps, gamma,
  noise, blur, bias field, random convolution, low resolution, at their published probabilities; shipped
  recipe ``heavy_intensity``), what a user tries first for unseen contrasts;
- ``gaussian_mixture_mixed``: the Gaussian mixture on half of the samples, mixed with real images (the
  weaker configuration the earlier reports called ``gaussian_mixture``);
- ``context``: ConText-GAN label-to-image (``context_texture``) with the shipped weights whose classes
  cover the dataset's labels (by name);
- ``style``: per-organ style swap (``style_swap``) with a style bank of the training cases, when style
  weights with matching classes are shipped;
- ``style_unpaired``: unpaired label-to-image style swap (Med-USIS mode: the training labels rendered in
  the test modality) with a bank of unlabelled target-modality images (a scenario's ``imagesGen``: the
  images the generator was trained on, never a test case), when such style weights are shipped;
- ``translate``: modality translation (``modality_translate``) of the training images into the test
  modality, when the training and test modalities differ (synthaug scenario datasets record their
  subjects) and a shipped translation generator goes that way; labels are kept;
- ``combined``: every learned transform above plus the Gaussian-mixture baseline, sharing the probability;
- ``expansion``: offline expansion with the learned transforms (2 synthetic cases per training case);
- ``simulated_mr``: across CT -> MR, the training label maps rendered as *simulated* MR by the physics prior
  (no generator; :class:`synthaug.transforms.SimulatedMRSynth`) on half of the samples;
- ``context_dr`` / ``expansion_dr``: an appearance-randomised ConText-GAN (``features="appearance"``) on the fly
  / offline, when one covers the labels: across modalities it draws randomised or simulated-MR (physics prior)
  appearances and puts no CT air back; within CT, randomised appearances with real air and bone kept. The
  probability is the other arms' 0.5 unless ``synthaug benchmark tune`` recorded a mixing policy for the arm in
  the work folder (:mod:`synthaug.benchmark.tuning`);
- ``context_phase``: within CT (super-class vocabulary), ``context_dr`` with the contrast-phase prior
  (:mod:`synthaug.appearance.contrast_phase`): each volume drawn in a random contrast phase, each region at an
  attenuation of that phase, texture and real air and bone kept;
- ``expansion_dr_heavy``: ``expansion_dr``'s expanded dataset trained with the ``heavy_intensity`` recipe on the
  fly (the two stacked); against ``heavy_intensity`` it measures what the learned generator adds to it;
- ``context_dr_oasis``: ``context_dr`` with an appearance-randomised generator of the SPADE/OASIS family (when one
  covers the labels; ``context_dr`` itself uses the ConText P2P/P2PF one): the generator-family ablation;
- ``context_dr_randomised``: where ``context_dr`` mixes in the physics prior (abdominal CT -> MR), the same arm
  with randomised appearances only: the "with vs without the physics prior" ablation.

Arms for other datasets come from a JSON file (:func:`arms_from_file`):
``[{"name": "...", "recipe": {...}}, {"name": "...", "expansion": {"recipe": {...}, "per_case": 2}}]``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthaug.errors import DataError, ValidationError

__all__ = ["Arm", "builtin_arms", "arms_from_file", "select_arms", "DEFAULT_PROBABILITY"]

DEFAULT_PROBABILITY = 0.5
_NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class Arm:
    """One benchmark arm.

    Attributes:
        name: short id (letters, digits, ``_``, ``-``); folder name of its runs.
        description: one line for the report.
        recipe: recipe dict applied on the fly (``{"transforms": []}`` for synthesis off).
        expansion_recipe: recipe dict for offline expansion (None: not an expansion arm); the expanded dataset is
            trained with ``recipe`` on the fly (usually none: synthesis off).
        per_case: synthetic cases per training case for expansion arms.
    """

    name: str
    description: str
    recipe: Mapping[str, Any] = field(default_factory=lambda: {"transforms": []})
    expansion_recipe: Mapping[str, Any] | None = None
    per_case: int = 2

    def __post_init__(self) -> None:
        if not self.name or not set(self.name) <= _NAME_OK:
            raise ValidationError(f"arm name must use a-z, 0-9, '_' and '-', got {self.name!r}.")
        if self.per_case < 1:
            raise ValidationError(f"arm {self.name!r}: per_case must be >= 1, got {self.per_case}.")

    @property
    def is_expansion(self) -> bool:
        return self.expansion_recipe is not None

    def weights(self) -> list[str]:
        """Every generator weights name/path the arm uses (for the leakage check and the report)."""
        out = []
        for recipe in (self.recipe, self.expansion_recipe or {}):
            for t in recipe.get("transforms", []):
                w = (t.get("options") or {}).get("weights")
                if w is not None:
                    out.append(str(w))
        return out

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "description": self.description, "recipe": dict(self.recipe)}
        if self.is_expansion:
            d["expansion"] = {"recipe": dict(self.expansion_recipe or {}), "per_case": self.per_case}
        return d

    def fingerprint(self) -> str:
        """sha256 of the arm's definition: a finished run is reused only for the same definition."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _transform(name: str, probability: float, **options: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"name": name, "probability": probability}
    deform = options.pop("deform", None)
    if deform is not None:
        t["deform"] = deform
    if options:
        t["options"] = options
    return t


def _crosses_modality(card: Any) -> bool:
    src, tgt = str(card.source_modality or ""), str(card.target_modality or "")
    return bool(src and tgt and src != tgt)


def _fits_spacing(card: Any, spacings: Sequence[Sequence[float]]) -> bool:
    """Whether every training image's voxel size is within the transforms' default tolerance of the card's."""
    from synthaug.transforms.context_texture import ContextTextureOptions
    from synthaug.transforms.guards import check_spacing

    # the arms leave every generator transform's slice axis and spacing tolerance at their (shared) defaults
    axis, tolerance = ContextTextureOptions.slice_axis, ContextTextureOptions.spacing_tolerance
    for sp in spacings:
        try:
            check_spacing(card, sp, slice_axis=axis, tolerance=tolerance, dims=len(sp))
        except ValidationError:
            return False
    return True


def _covering(cards: Sequence[Any], family: str, labels: Sequence[str], *,
              modalities: tuple[set[str], set[str]] | None = None) -> Any | None:
    """The first card of ``family`` whose class names include every dataset label.

    ``modalities=None`` takes only cards that stay in one modality; ``(train, test)`` takes only cards
    that go from a training modality to a different test modality.
    """
    wanted = set(labels)
    for card in cards:
        if card.family != family or not wanted <= set(card.labels) or card.appearance_randomised:
            continue  # appearance-randomised generators have their own arms (context_dr)
        if modalities is None and not _crosses_modality(card):
            return card
        if modalities is not None and _crosses_modality(card) and str(card.source_modality) in modalities[0] \
                and str(card.target_modality) in modalities[1]:
            return card
    return None


def dataset_modalities(dataset_json: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(training, test) modalities of a synthaug scenario dataset (empty sets for other datasets)."""
    from synthaug.data.subjects import SUBJECT_MODALITIES

    meta = dataset_json.get("synthaug")
    train: set[str] = set()
    test: set[str] = set()
    if isinstance(meta, Mapping):
        for c in meta.get("cases", []):
            mod = SUBJECT_MODALITIES.get(str(c.get("subject"))) if isinstance(c, Mapping) else None
            if mod:
                (train if c.get("role") == "train" else test if c.get("role") == "test" else set()).add(mod)
    return train, test


def builtin_arms(dataset_json: Mapping[str, Any], *, cards: Sequence[Any] | None = None,
                 style_bank: str | None = None, unlabelled_bank: str | None = None,
                 spacings: Sequence[Sequence[float]] = ()) -> list[Arm]:
    """The built-in arms for a dataset (see the module docstring).

    ``cards`` default to the installed weights (:func:`synthaug.weights.registry.list_weights`), of which only those
    trained at the training images' ``spacings`` (mm per axis, one per image; empty: not checked) are used;
    ``style_bank`` is the folder of (image, label) training cases the style arm draws styles from
    (the harness passes the dataset's ``imagesTr``/``labelsTr`` parent); ``unlabelled_bank`` a folder of
    unlabelled target-modality images for the ``style_unpaired`` arm (a scenario's ``imagesGen``).
    """
    if cards is None:
        from synthaug.weights.registry import list_weights

        cards = list_weights()
    cards = [c for c in cards if _fits_spacing(c, spacings)]
    labels = [k for k, v in dataset_json.get("labels", {}).items() if isinstance(v, int)]
    label_map = {name: name for name in labels}
    deform = {"enabled": True, "control_points": 4, "max_displacement": 6.0}
    learned: list[tuple[str, dict[str, Any]]] = []
    ctx = _covering(cards, "context", labels)
    if ctx is not None:
        learned.append(("context", _transform(
            "context_texture", DEFAULT_PROBABILITY, deform=deform, weights=ctx.name, features="perturb",
            perturbation=0.1, label_map=label_map)))
    sty = _covering(cards, "style", labels)
    if sty is not None and style_bank is not None:
        learned.append(("style", _transform(
            "style_swap", DEFAULT_PROBABILITY, weights=sty.name, bank=style_bank, label_map=label_map)))
    train_mods, test_mods = dataset_modalities(dataset_json)
    usis = _covering(cards, "style", labels, modalities=(train_mods, test_mods))
    if usis is not None and unlabelled_bank is not None:
        learned.append(("style_unpaired", _transform(
            "style_swap", DEFAULT_PROBABILITY, weights=usis.name, bank=unlabelled_bank, label_map=label_map)))
    for card in cards:
        src, tgt = str(card.source_modality or ""), str(card.target_modality or "")
        if card.family == "translate" and src in train_mods and tgt in test_mods and src != tgt:
            learned.append(("translate", _transform(
                "modality_translate", DEFAULT_PROBABILITY, weights=card.name, source=src, target=tgt)))
            break
    from synthaug.recipes.shipped import load_shipped

    def shipped(name: str) -> dict[str, Any]:
        d = load_shipped(name).to_dict()
        return {"transforms": d["transforms"], "description": d["description"]}

    arms = [
        Arm("default", "nnU-Net default augmentation (synthesis off)"),
        Arm("synthseg", "SynthSeg-style domain randomisation on every sample (p=1; Billot et al. 2023)", shipped("synthseg")),
        Arm("heavy_intensity", "nnU-Net default + SmaugLab heavy intensity augmentation (Molinier et al. 2026)",
            shipped("heavy_intensity")),
        Arm("gaussian_mixture_mixed", "Gaussian mixture on half of the samples, mixed with real images",
            {"transforms": [_transform("gaussian_mixture", DEFAULT_PROBABILITY, deform=deform)]}),
    ]
    for name, t in learned:
        w = t["options"]["weights"]
        arms.append(Arm(name, f"{t['name']} alone ({w})", {"transforms": [t]}))
    if learned:
        share = DEFAULT_PROBABILITY / (len(learned) + 1)
        combo = [{**t, "probability": share} for _, t in learned]
        combo.append(_transform("gaussian_mixture", share, deform=deform))
        arms.append(Arm("combined", "learned transforms + Gaussian mixture, sharing p=0.5", {"transforms": combo}))
        expansion = {"transforms": [{**t, "probability": 1.0 / len(learned)} for _, t in learned]}
        arms.append(Arm("expansion", "offline expansion with the learned transforms (2 per case), synthesis off",
                        expansion_recipe=expansion, per_case=2))
    if train_mods and test_mods and train_mods != test_mods and test_mods <= {"MR"}:
        from synthaug.appearance.physics import SUPERCLASS_NAMES

        if set(labels) <= set(SUPERCLASS_NAMES):  # the physics prior as its own arm: simulated MR, no generator
            arms.append(Arm("simulated_mr", "CT label maps rendered as SIMULATED MR (physics prior), p=0.5",
                            {"transforms": [_transform("simulated_mr", DEFAULT_PROBABILITY, deform=deform)]}))
    covering_dr = [c for c in cards if c.family == "context" and c.appearance_randomised and set(labels) <= set(c.labels)]
    # the ConText P2P/P2PF generator carries context_dr and its ablations; one of the SPADE/OASIS family has its own
    # arm (context_dr_oasis, the same transform with another generator family)
    dr = next((c for c in covering_dr if c.arguments.get("variant") != "oasis"), None)
    oasis = next((c for c in covering_dr if c.arguments.get("variant") == "oasis"), None)
    if dr is not None:
        # across modalities: any appearance (randomised or the simulated-MR physics prior) and no CT air/bone put
        # back; within CT (another scanner or contrast phase): randomised appearances, real air and bone kept
        # the physics prior needs the abdominal super-classes; other vocabularies (the spine) take randomised only
        cross = bool(train_mods and test_mods and train_mods != test_mods)
        from synthaug.appearance.physics import SUPERCLASS_NAMES as _PHYSICS_CLASSES

        physics = cross and tuple(dr.labels) == tuple(_PHYSICS_CLASSES)
        t = _transform("context_texture", DEFAULT_PROBABILITY, deform=deform, weights=dr.name, features="appearance",
                       appearance_source="mixed" if physics else "randomised", keep_outside_window=not cross,
                       label_map=label_map)
        arms.append(Arm("context_dr", f"appearance-randomised ConText-GAN ({dr.name}) on the fly", {"transforms": [t]}))
        phase = (not cross and tuple(dr.labels) == tuple(_PHYSICS_CLASSES)
                 and dr.intensity_convention.kind == "ct_window" and train_mods <= {"CT"})
        if phase:  # within CT: the contrast-phase prior (per-region attenuation of a random phase), texture kept
            t_phase = {**t, "options": {**t["options"], "appearance_source": "contrast_phase"}}
            arms.append(Arm("context_phase", f"appearance-randomised ConText-GAN ({dr.name}) under random contrast "
                            "phases (per-region attenuation prior) on the fly", {"transforms": [t_phase]}))
        if physics:  # the ablation without the physics prior: the same arm, randomised appearances only
            t_rand = {**t, "options": {**t["options"], "appearance_source": "randomised"}}
            arms.append(Arm("context_dr_randomised", f"context_dr without the physics prior ({dr.name}, randomised "
                            "appearances only): the ablation", {"transforms": [t_rand]}))
        dr_expansion = {"transforms": [{**t, "probability": 1.0}]}
        arms.append(Arm("expansion_dr", f"offline expansion with {dr.name} (2 per case), synthesis off",
                        expansion_recipe=dr_expansion, per_case=2))
        # stacked: the same expansion trained with the strongest non-learned augmentation on top, what a user who
        # already runs SmaugLab's heavy intensity augmentation would try; against heavy_intensity it measures what
        # the learned generator adds to it
        arms.append(Arm("expansion_dr_heavy", f"expansion_dr's expanded dataset ({dr.name}, 2 per case) trained with "
                        "heavy_intensity on the fly: synthaug stacked on SmaugLab's augmentation",
                        shipped("heavy_intensity"), expansion_recipe=dr_expansion, per_case=2))
        if oasis is not None:  # the generator-family ablation: context_dr with the SPADE/OASIS generator
            t_oasis = {**t, "options": {**t["options"], "weights": oasis.name}}
            arms.append(Arm("context_dr_oasis", f"context_dr with the SPADE/OASIS-family generator ({oasis.name}): "
                            "the generator-family ablation", {"transforms": [t_oasis]}))
    return arms


def arms_from_file(path: str | Path) -> list[Arm]:
    """Arms from a JSON list (see the module docstring); the ``default`` arm is added when missing."""
    p = Path(path)
    try:
        items = json.loads(p.read_text())
    except FileNotFoundError as exc:
        raise DataError(f"arms file {p} does not exist.") from exc
    except ValueError as exc:
        raise DataError(f"arms file {p} is not valid JSON ({exc}).") from exc
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ValidationError(f"arms file {p} must hold a JSON list of objects, e.g. "
                              '[{"name": "context", "recipe": {"transforms": [...]}}].')
    arms = []
    for i, item in enumerate(items):
        unknown = set(item) - {"name", "description", "recipe", "expansion"}
        if unknown:
            raise ValidationError(f"arms file {p}, entry {i}: unknown key(s) {sorted(unknown)}.")
        exp = item.get("expansion")
        arms.append(Arm(
            name=str(item.get("name", "")), description=str(item.get("description", "")),
            recipe=item.get("recipe") or {"transforms": []},
            expansion_recipe=exp.get("recipe") if isinstance(exp, Mapping) else None,
            per_case=int(exp.get("per_case", 2)) if isinstance(exp, Mapping) else 2,
        ))
    if "default" not in {a.name for a in arms}:
        arms.insert(0, Arm("default", "nnU-Net default augmentation (synthesis off)"))
    return arms


def select_arms(arms: Sequence[Arm], names: Sequence[str] | None) -> list[Arm]:
    """``arms`` restricted to ``names`` (None: all); ``default`` is always kept (it is the reference)."""
    if names is None:
        return list(arms)
    known = {a.name: a for a in arms}
    missing = [n for n in names if n not in known]
    if missing:
        raise ValidationError(f"unknown arm(s) {missing} for this dataset; available: {sorted(known)}.")
    keep = set(names) | {"default"}
    return [a for a in arms if a.name in keep]
