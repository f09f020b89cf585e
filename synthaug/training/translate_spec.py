"""Where a translation dataset comes from: one typed record parsed once from the ``data=`` text.

``synthaug train translate --set data=SPEC`` and ``synthaug eval translate --data SPEC`` take the same
text; :func:`parse_translation_spec` turns it into one of the frozen records below, whose ``text`` is
the canonical form (paths made absolute) that model cards record, so ``synthaug eval translate`` finds
the data of a card again from any folder.

=====================================================  =======  ===============================================
``data=``                                              paired   what it reads
=====================================================  =======  ===============================================
``brain_t1_t2`` (any built-in name)                    as built the four built-in datasets of
                                                                :mod:`synthaug.training.translate_data`
``simulated:T1w:PDw``                                  yes      the brain MR simulator, any two of its sequence
                                                                presets (``SEQUENCE_PRESETS``: T1w, T2w, PDw)
``folder:SRC_DIR:TGT_DIR[:SRC_NAME:TGT_NAME]``         yes      NIfTI files with the same name in both folders
``unpaired-folder:SRC_DIR:TGT_DIR[:SRC_NAME:TGT_NAME]`` no      any NIfTI files in each folder
``subjects:DIR:T1w:PDw``                               yes      ``DIR/<case>/<T1w>.nii.gz`` + ``<PDw>.nii.gz``
                                                                (what ``synthaug data simulate-mr`` writes)
``nnunet:DATASET:0000:0001``                           yes      two channels of one nnU-Net raw dataset
``nnunet:DATASET_A:0000:DATASET_B:0000``               no       one channel of each of two nnU-Net datasets
=====================================================  =======  ===============================================

Modality names: the simulator's contrast names, the file stems of ``subjects``, the ``channel_names`` of
``dataset.json`` for nnU-Net data (the channel is given by index, ``0001`` or ``1``, or by that name), and
for folders the folder names unless ``SRC_NAME:TGT_NAME`` are given. A modality named ``CT`` (any case)
gets the CT body mask (> -500 HU); every other modality the MR head/body mask.

Held-out cases of user data are chosen deterministically (:func:`split_cases`): the sorted case names
are permuted with a fixed seed (0) and 20 % (at least one) become the test set and, for paired data,
10 % (at least one) the validation set that selects weights; the rest train. An nnU-Net dataset's own
``imagesTs`` cases (with both channels) are its test set when present. A test case never enters training;
model cards list the training, validation and test cases. Unpaired methods (NEC, CycleGAN) on paired data
train on the source images of the first half of the training cases and the target images of the other
half (disjoint, as for the simulated brain data); paired methods on every training case.

Paths must not contain ``:`` (use a symbolic link). This module imports only the standard library, so the
command line can describe the syntax without loading torch; :meth:`build` loads the data on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from synthaug.errors import DataError, ValidationError

__all__ = [
    "BuiltinData",
    "SimulatedPair",
    "FolderData",
    "SubjectFolders",
    "NnunetChannels",
    "TranslationSpec",
    "SPEC_KINDS",
    "parse_translation_spec",
    "spec_syntax",
    "split_cases",
    "TEST_FRACTION",
    "VALIDATION_FRACTION",
    "SPLIT_SEED",
]

TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.1
SPLIT_SEED = 0


def _closest(name: str, options: list[str]) -> str:
    from synthaug._validate import closest  # only on the error path (it imports torch)

    return closest(name, options)


def _path(text: str) -> Path:
    return Path(text).expanduser().resolve()


@dataclass(frozen=True)
class BuiltinData:
    """A built-in dataset name (``brain_t1_t2``, ``brain_pd_t2``, ``abdomen_ct_mr``, ``abdomen_ct_mr_upper``)."""

    name: str

    kind: ClassVar[str] = ""
    syntax: ClassVar[tuple[str, ...]] = ("NAME",)
    summary: ClassVar[str] = "a built-in dataset (brain_t1_t2, brain_pd_t2, abdomen_ct_mr, abdomen_ct_mr_upper)"

    @property
    def text(self) -> str:
        return self.name



@dataclass(frozen=True)
class SimulatedPair:
    """Simulated brain MR (:mod:`synthaug.data.mr_simulator`), ``source`` -> ``target`` contrast.

    The subjects, seeds and splits are those of the built-in brain datasets (16 subjects, seed 2024,
    2 mm; 10 train, 2 validation, 4 test), so ``simulated:T1w:T2w`` holds the cases of ``brain_t1_t2``.
    """

    source: str
    target: str

    kind: ClassVar[str] = "simulated"
    syntax: ClassVar[tuple[str, ...]] = ("simulated:SOURCE:TARGET",)
    summary: ClassVar[str] = "simulated brain MR, any two simulator contrasts (e.g. simulated:T1w:PDw)"

    @classmethod
    def parse(cls, fields: list[str]) -> SimulatedPair:
        if len(fields) != 2:
            raise ValidationError(f"data=simulated:... takes two contrasts (simulated:T1w:PDw), got {fields}.")
        return cls(fields[0], fields[1])

    def __post_init__(self) -> None:
        from synthaug.data.mr_simulator import SEQUENCE_PRESETS

        known = list(SEQUENCE_PRESETS)
        for role, name in (("source", self.source), ("target", self.target)):
            if name not in SEQUENCE_PRESETS:
                folded = {k.lower(): k for k in known}
                hint = f" Did you mean {folded[name.lower()]!r}?" if name.lower() in folded else _closest(name, known)
                raise ValidationError(
                    f"data=simulated: the simulator cannot render the {role} contrast {name!r}; it renders {known}.{hint} "
                    "A new contrast needs a SequencePreset in synthaug.data.mr_simulator.SEQUENCE_PRESETS."
                )
        if self.source == self.target:
            raise ValidationError(f"data=simulated:{self.source}:{self.target} translates a contrast to itself; "
                                  "give two different contrasts.")

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.source}:{self.target}"



@dataclass(frozen=True)
class FolderData:
    """NIfTI files in two folders: paired (same file names, co-registered) or unpaired (any files)."""

    source_dir: Path
    target_dir: Path
    paired: bool
    source_name: str
    target_name: str

    kind: ClassVar[str] = "folder"
    syntax: ClassVar[tuple[str, ...]] = ("folder:SRC_DIR:TGT_DIR[:SRC_NAME:TGT_NAME]",
                                         "unpaired-folder:SRC_DIR:TGT_DIR[:SRC_NAME:TGT_NAME]")
    summary: ClassVar[str] = ("NIfTI folders: paired = the same file names in both (one grid per pair); "
                              "unpaired = any files; modality names default to the folder names")

    @classmethod
    def parse(cls, fields: list[str], *, paired: bool) -> FolderData:
        word = "folder" if paired else "unpaired-folder"
        if len(fields) not in (2, 4) or not all(fields):
            raise ValidationError(
                f"data={word}:... takes SRC_DIR:TGT_DIR and optionally SRC_NAME:TGT_NAME "
                f"(e.g. {word}:data/t1:data/pd or {word}:data/a:data/b:T1w:PDw), got {fields}."
            )
        src, tgt = _path(fields[0]), _path(fields[1])
        names = (fields[2], fields[3]) if len(fields) == 4 else (src.name, tgt.name)
        return cls(src, tgt, paired, *names)

    def __post_init__(self) -> None:
        if self.source_name == self.target_name:
            raise ValidationError(
                f"data=folder: source and target are both named {self.source_name!r}; name the modalities "
                "(folder:SRC_DIR:TGT_DIR:SRC_NAME:TGT_NAME, e.g. ...:T1w:PDw)."
            )
        for role, folder in (("source", self.source_dir), ("target", self.target_dir)):
            if not folder.is_dir():
                raise DataError(f"data=folder: the {role} folder {str(folder)!r} does not exist; give a folder of NIfTI files.")

    @property
    def text(self) -> str:
        word = "folder" if self.paired else "unpaired-folder"
        return f"{word}:{self.source_dir}:{self.target_dir}:{self.source_name}:{self.target_name}"



@dataclass(frozen=True)
class SubjectFolders:
    """One sub-folder per case holding ``<SOURCE>.nii.gz`` and ``<TARGET>.nii.gz`` (paired), e.g. the
    output of ``synthaug data simulate-mr`` (its ``simulation.json`` marks the data simulated and its
    ``label.nii.gz`` files are read as labels)."""

    root: Path
    source: str
    target: str

    kind: ClassVar[str] = "subjects"
    syntax: ClassVar[tuple[str, ...]] = ("subjects:DIR:SOURCE:TARGET",)
    summary: ClassVar[str] = "DIR/<case>/<SOURCE>.nii.gz + <TARGET>.nii.gz, e.g. the output of synthaug data simulate-mr"

    @classmethod
    def parse(cls, fields: list[str]) -> SubjectFolders:
        if len(fields) != 3 or not all(fields):
            raise ValidationError(f"data=subjects:... takes DIR:SOURCE:TARGET (e.g. subjects:sim:T1w:PDw), got {fields}.")
        return cls(_path(fields[0]), fields[1], fields[2])

    def __post_init__(self) -> None:
        if not self.root.is_dir():
            raise DataError(f"data=subjects: {str(self.root)!r} does not exist; give the folder synthaug data "
                            "simulate-mr --out wrote (one sub-folder per case).")
        if self.source == self.target:
            raise ValidationError(f"data=subjects: source and target are both {self.source!r}; give two file names.")

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.root}:{self.source}:{self.target}"



@dataclass(frozen=True)
class NnunetChannels:
    """nnU-Net raw data: two channels of one dataset (paired) or a channel of each of two datasets (unpaired)."""

    source_dataset: Path
    source_channel: str
    target_dataset: Path
    target_channel: str

    kind: ClassVar[str] = "nnunet"
    syntax: ClassVar[tuple[str, ...]] = ("nnunet:DATASET:SRC_CHANNEL:TGT_CHANNEL",
                                         "nnunet:DATASET_A:SRC_CHANNEL:DATASET_B:TGT_CHANNEL")
    summary: ClassVar[str] = ("nnU-Net raw dataset(s): two channels of one (paired) or one channel of each of two "
                              "(unpaired); a channel by index (0001) or dataset.json name")

    @classmethod
    def parse(cls, fields: list[str]) -> NnunetChannels:
        if len(fields) == 3 and all(fields):
            ds = _path(fields[0])
            return cls(ds, fields[1], ds, fields[2])
        if len(fields) == 4 and all(fields):
            return cls(_path(fields[0]), fields[1], _path(fields[2]), fields[3])
        raise ValidationError(
            "data=nnunet:... takes DATASET:SRC_CHANNEL:TGT_CHANNEL (paired, e.g. nnunet:nnUNet_raw/Dataset501_X:0000:0001) "
            f"or DATASET_A:SRC_CHANNEL:DATASET_B:TGT_CHANNEL (unpaired), got {fields}."
        )

    def __post_init__(self) -> None:
        if self.source_dataset == self.target_dataset and self.source_channel == self.target_channel:
            raise ValidationError(f"data=nnunet: source and target are the same channel {self.source_channel!r}; "
                                  "give two channels.")

    @property
    def paired(self) -> bool:
        return self.source_dataset == self.target_dataset

    @property
    def text(self) -> str:
        if self.paired:
            return f"{self.kind}:{self.source_dataset}:{self.source_channel}:{self.target_channel}"
        return f"{self.kind}:{self.source_dataset}:{self.source_channel}:{self.target_dataset}:{self.target_channel}"



TranslationSpec = BuiltinData | SimulatedPair | FolderData | SubjectFolders | NnunetChannels

#: Every kind of ``data=`` text, in help order (the help text and the parser derive from it).
SPEC_KINDS: tuple[type, ...] = (BuiltinData, SimulatedPair, FolderData, SubjectFolders, NnunetChannels)

_PARSERS = {
    "simulated": SimulatedPair.parse,
    "folder": lambda f: FolderData.parse(f, paired=True),
    "unpaired-folder": lambda f: FolderData.parse(f, paired=False),
    "subjects": SubjectFolders.parse,
    "nnunet": NnunetChannels.parse,
}


def spec_syntax(*, lines: bool = False) -> str:
    """Every kind's syntax and what it reads: ``;``-separated, or indented lines (for ``--help``)."""
    if lines:
        return "\n".join("".join(f"  {form}\n" for form in k.syntax) + f"      {k.summary}" for k in SPEC_KINDS)
    return "; ".join(f"{' or '.join(k.syntax)}: {k.summary}" for k in SPEC_KINDS)


def parse_translation_spec(text: str | TranslationSpec) -> TranslationSpec:
    """The record of a ``data=`` text (see the module docstring); a record is returned unchanged.

    >>> parse_translation_spec("simulated:T1w:PDw").text
    'simulated:T1w:PDw'
    >>> parse_translation_spec("brain_t1_t2")
    BuiltinData(name='brain_t1_t2')
    """
    if isinstance(text, SPEC_KINDS):
        return text  # type: ignore[return-value]
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(
            f"data must be a dataset name or a spec text, got {text!r}. Forms: "
            f"{', '.join(form for k in SPEC_KINDS for form in k.syntax)}."
        )
    text = text.strip()
    kind, sep, rest = text.partition(":")
    if not sep:
        if "/" in text or Path(text).exists():
            raise ValidationError(
                f"data={text!r} is a path; say how to read it: folder:SRC_DIR:TGT_DIR, subjects:DIR:SOURCE:TARGET or "
                "nnunet:DATASET:SRC_CHANNEL:TGT_CHANNEL."
            )
        return BuiltinData(text)
    if kind not in _PARSERS:
        raise ValidationError(
            f"data={text!r}: unknown kind {kind!r}; known: {sorted(_PARSERS)}.{_closest(kind, list(_PARSERS))} "
            f"Forms: {', '.join(form for k in SPEC_KINDS for form in k.syntax)}."
        )
    return _PARSERS[kind](rest.split(":"))


def split_cases(
    names: list[str] | tuple[str, ...], *, paired: bool, fixed_test: tuple[str, ...] = (), what: str = "data"
) -> dict[str, tuple[str, ...]]:
    """Deterministic ``{"train", "validation", "test"}`` case names (see the module docstring).

    ``fixed_test`` (e.g. an nnU-Net ``imagesTs`` set) is the test set as given; otherwise the sorted
    names are permuted with :data:`SPLIT_SEED` and the first ``TEST_FRACTION`` (at least one) held out.
    Paired data also holds out ``VALIDATION_FRACTION`` (at least one) for selecting weights.
    """
    import numpy as np

    pool = sorted(set(names) - set(fixed_test))
    order = [pool[i] for i in np.random.default_rng(SPLIT_SEED).permutation(len(pool))]
    n_test = 0 if fixed_test else max(1, int(round(TEST_FRACTION * len(pool))))
    n_val = max(1, int(round(VALIDATION_FRACTION * len(pool)))) if paired else 0
    need = 1 + n_val + n_test
    if len(pool) < need:
        parts = ["one to train"] + (["one to validate"] if paired else []) + ([] if fixed_test else ["one to test"])
        raise DataError(
            f"{what}: {len(pool)} case(s) ({pool[:5]}) are too few; {'paired' if paired else 'unpaired'} data needs at "
            f"least {need} ({', '.join(parts)}). Add cases."
        )
    test = tuple(sorted(fixed_test)) if fixed_test else tuple(sorted(order[:n_test]))
    val = tuple(sorted(order[n_test : n_test + n_val]))
    train = tuple(sorted(order[n_test + n_val :]))
    return {"train": train, "validation": val, "test": test}
