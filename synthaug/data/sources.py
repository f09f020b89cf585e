"""Pinned open-data sources: which registry archive, its sha256, and the exact files taken from it.

synthaug ships no medical data. The sample subjects come from files that public packages on the
Python package index already distribute, fetched with ``pip download`` and verified file by file:

- ``totalsegmentator==2.18.0`` source distribution: the small example CT (NIfTI and DICOM) and MR
  volumes of its test suite with the segmentations TotalSegmentator predicted for them, and
  ``map_to_binary.py`` (the class names). The segmentations are model predictions, not manual
  ground truth.
- ``totalsegmentator==2.10.0`` source distribution: the same example images (byte-identical: the
  records below reuse the 2.18.0 sha256 of every image, so a differing image fails the fetch) with
  the segmentations an older TotalSegmentator release predicted; the second label version gives
  the label-noise ceiling of :mod:`synthaug.data.label_noise`.
- ``nilearn==0.14.1`` wheel: the MNI152 2009 (ICBM 152 nonlinear symmetric 09a) T1 template and its
  gray and white matter probability maps.
- ``tptbox==1.1.0`` wheel: a spine CT and a spine T2w MR of its test suite, each with a vertebra
  mask and a vertebra-subregion mask (how the masks were made is not stated). Licence: see
  :data:`TPTBOX` ``.licence``; fetched by the user's own pip, never redistributed by synthaug.

>>> from synthaug.data.sources import SOURCES
>>> SOURCES["nilearn"].pip_command
'pip download nilearn==0.14.1 --no-deps --only-binary :all:'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "SourceFile",
    "Source",
    "SOURCES",
    "TOTALSEGMENTATOR",
    "TOTALSEGMENTATOR_2_10",
    "TOTALSEG_IMAGE_FILES",
    "NILEARN",
    "TPTBOX",
    "SPINE_CT_IMAGE",
    "SPINE_CT_VERTEBRAE",
    "SPINE_CT_SUBREGIONS",
    "SPINE_MR_IMAGE",
    "SPINE_MR_VERTEBRAE",
    "SPINE_MR_SUBREGIONS",
    "CT_IMAGE",
    "CT_LABEL",
    "CT_DICOM_DIR",
    "CT_DICOM_LABEL",
    "MR_IMAGE",
    "MR_LABEL",
    "CLASS_MAP_FILE",
    "MNI_T1",
    "MNI_GM",
    "MNI_WM",
]


@dataclass(frozen=True)
class SourceFile:
    """One file taken from an archive: its path relative to the source folder and its sha256."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Source:
    """A pinned archive on the package index and the files synthaug extracts from it.

    ``name`` is the key used by :func:`synthaug.data.fetch.ensure_source`; the files land in
    ``<cache>/<folder>/<file.path>`` where ``folder`` is ``<project>-<version>`` (the project and
    version of ``requirement``). Inside the archive a file is stored at ``member_prefix + file.path``.
    ``licence`` states what is known about the terms of the extracted files (empty: not checked).
    """

    name: str
    requirement: str
    kind: Literal["sdist", "wheel"]
    archive: str
    archive_sha256: str
    member_prefix: str
    files: tuple[SourceFile, ...]
    description: str = ""
    licence: str = ""

    @property
    def version(self) -> str:
        return self.requirement.partition("==")[2]

    @property
    def project(self) -> str:
        """The package name of ``requirement`` (``totalsegmentator`` for ``totalsegmentator==2.10.0``)."""
        return self.requirement.partition("==")[0]

    @property
    def folder(self) -> str:
        """Name of the cache folder holding the extracted files: ``<project>-<version>``."""
        return f"{self.project}-{self.version}" if self.version else self.name

    @property
    def pip_args(self) -> tuple[str, ...]:
        """Arguments after ``pip download`` (without the ``-d`` destination)."""
        only = ("--no-binary", ":all:") if self.kind == "sdist" else ("--only-binary", ":all:")
        return (self.requirement, "--no-deps", *only)

    @property
    def pip_command(self) -> str:
        """The exact command that downloads the archive, for messages and offline instructions."""
        return "pip download " + " ".join(self.pip_args)

    def member(self, file: SourceFile) -> str:
        """Path of ``file`` inside the archive."""
        return self.member_prefix + file.path

    def file(self, path: str) -> SourceFile:
        """The record of the file at ``path`` (relative to the source folder)."""
        for entry in self.files:
            if entry.path == path:
                return entry
        raise KeyError(path)


# --- totalsegmentator==2.18.0 (sdist) -------------------------------------------------------------

_REF = "tests/reference_files/"
CT_IMAGE = _REF + "example_ct.nii.gz"
CT_LABEL = _REF + "example_seg_fast_force_split.nii.gz"
CT_DICOM_DIR = _REF + "example_ct_dicom"
CT_DICOM_LABEL = _REF + "example_seg_dicom.nii.gz"
MR_IMAGE = _REF + "example_mr_sm.nii.gz"
MR_LABEL = _REF + "example_seg_mr.nii.gz"
CLASS_MAP_FILE = "totalsegmentator/map_to_binary.py"

# The 20 slices of the example CT series (file name suffix after the common UID prefix -> sha256).
_DICOM_PREFIX = CT_DICOM_DIR + "/CT.1.3.12.2.1107.5.1.4.60064.300000221208081134280000"
_DICOM_SHA256 = {
    "16573": "4c5633409fa4d3edf6871e5684e9e1b10325b4d0949997582f43b23a684d0dc4",
    "16574": "9148f91127145497f4d6c6f0780f9452504cd7fe5088ec8f2bf2b21800c731ff",
    "16575": "3edaccec892e0821440cbefe3d5465923bb5146c316cbaf58f578d962f120484",
    "16576": "9b68685f0c5f9bfcfc2c397f4fadf431da288d7422ca72e7d9031d4e039418cd",
    "16577": "c8d2c0dc05e414d47d3652c658d8fecc20c3cf7ce106c10d84ad033d39700bcc",
    "16578": "0ee2c1d58e06cedd91483ca35c04da3c26fea0dbe88aaf1eaa950b57f38357d6",
    "16579": "c76cf0818d4215b92883d109b8a0b62ae0a4d81637eed98738f9c62b6f49bb72",
    "16580": "106e20514fd3ca66895e14dbfba96c01c1195e4ed890c035d4368dd71f3ee116",
    "16581": "5804e6c4a50f4d5b20040ac82a1c6d79cba5f7267d71f10b0a1b49eda1bc13ff",
    "16582": "bef219a16b22949224de4581a2d288863b2585d29556ac24021f03307378cb39",
    "16583": "9de5a49e880417d5330fe299115fdb95831a98234216a31c5c0e9a0be9a6dcd3",
    "16584": "fa00c8d81ec8aa0d0cfc4e05343782c3a75a4c60df8cccf9ff5db42ac454e61d",
    "16585": "ebba0900b0f728db0c94c769db3e5ca38a0cd916386a727541eb3e56350770e5",
    "16586": "f084ec95cfba25efb7cbe86e8b4966b051904037e8385f58fe398c5475693b89",
    "16587": "20a9b88a30ea8a824ac65cb19c1ebf80964b41ff476497706ff2a286e5f27a25",
    "16588": "2a515d3b60f3ff733aac1fc5414206c331e3ed2ccef8c2e0c30b844c538e3ed8",
    "16589": "5880669f1bc36b09cad4bdf487992ec415da0afa014e927efc282e612f467574",
    "16590": "7af4dd5b5766a87368939116b91f90d989820e7b2237fb9bcd10d47db0960875",
    "16591": "671306f4462ae881976c18c6a2d8a1567279fb0166ef0e9e8a41271fac9c1cbb",
    "16592": "fdb76ad5272f074e07cc81509604fd163f2f8a9903d34b16ba6f078250373c51",
}

TOTALSEGMENTATOR = Source(
    name="totalsegmentator",
    requirement="totalsegmentator==2.18.0",
    kind="sdist",
    archive="totalsegmentator-2.18.0.tar.gz",
    archive_sha256="5d4223ef93973bc36d710869d11e7742ead2c154c72f7f9edcaaadd5b6c4bd03",
    member_prefix="totalsegmentator-2.18.0/",
    files=(
        SourceFile(CT_IMAGE, "dbd3ae6d614d1d7ef3a46925c30c70038ed52da6b37fdd6afdc7b9b71387e3e1"),
        SourceFile(CT_LABEL, "e8097758e56e73099075b6caaebce23ef11bc6fad66a4ec3753b9406846558c7"),
        *(SourceFile(_DICOM_PREFIX + suffix, digest) for suffix, digest in _DICOM_SHA256.items()),
        SourceFile(CT_DICOM_LABEL, "98af7f6536c316ff9084054f20956cd3e28af376b81d582d269fbea2744878fc"),
        SourceFile(MR_IMAGE, "209b46efaff595dd54a9332872e17a722b62654bbb68dbd89acd5090701bbd4f"),
        SourceFile(MR_LABEL, "e73a5ee12962aa2bb2f3e43ab58dfc67990c5a7ef2dcb426a1bf5e5982b9587f"),
        SourceFile(CLASS_MAP_FILE, "ee19259dacd4d52d424849b8bac44a5a5d41c895426bf7c048c69203a1a3777d"),
    ),
    description="TotalSegmentator 2.18.0 test data: example CT (NIfTI + DICOM) and MR with the "
    "segmentations its models predicted (not manual ground truth), and its class maps.",
    licence="package metadata: Apache 2.0; the example scans carry no separate licence statement.",
)

# --- totalsegmentator==2.10.0 (sdist): same images, labels of an older release --------------------

TOTALSEG_IMAGE_FILES: tuple[str, ...] = (
    CT_IMAGE,
    *(_DICOM_PREFIX + suffix for suffix in _DICOM_SHA256),
    MR_IMAGE,
)
"""Image files of the TotalSegmentator example subjects (identical in 2.10.0 and 2.18.0)."""

TOTALSEGMENTATOR_2_10 = Source(
    name="totalsegmentator_2.10",
    requirement="totalsegmentator==2.10.0",
    kind="sdist",
    archive="totalsegmentator-2.10.0.tar.gz",
    archive_sha256="bc4b7e0a886b17ac37f4ad71d8460b68c50c4f9c9b9af38cb0cc65b10b9b2b28",
    member_prefix="totalsegmentator-2.10.0/",
    files=(
        # The images are pinned to the 2.18.0 digests: a 2.10.0 image that differed would fail the fetch.
        *(TOTALSEGMENTATOR.file(path) for path in TOTALSEG_IMAGE_FILES),
        SourceFile(CT_LABEL, "e8097758e56e73099075b6caaebce23ef11bc6fad66a4ec3753b9406846558c7"),
        SourceFile(CT_DICOM_LABEL, "e38c02c2604031f2f01be7dda4ab0c5c9c4d96117a785b97d5f4736cf83ea93b"),
        SourceFile(MR_LABEL, "ef38deb1c2510b7d4ad3d5277845ebbb522a1889a6eb2c67ecb1adcff0e46732"),
        SourceFile(CLASS_MAP_FILE, "91841d5e8dc9bb335abd02b57aa83b2ff69d83962d65834b2e03090dcc9e19b9"),
    ),
    description="TotalSegmentator 2.10.0 test data: the same example images as 2.18.0 with the "
    "segmentations the 2.10.0 models predicted (a second, older label version), and its class maps.",
    licence="package metadata: Apache 2.0; the example scans carry no separate licence statement.",
)

# --- nilearn==0.14.1 (wheel) ----------------------------------------------------------------------

_MNI = "nilearn/datasets/data/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
MNI_T1 = _MNI.format("t1")
MNI_GM = _MNI.format("gm")
MNI_WM = _MNI.format("wm")

NILEARN = Source(
    name="nilearn",
    requirement="nilearn==0.14.1",
    kind="wheel",
    archive="nilearn-0.14.1-py3-none-any.whl",
    archive_sha256="725206484e9fb3f6691f9c2d20204a068759d5072f12055324702ee0cb2bbe8a",
    member_prefix="",
    files=(
        SourceFile(MNI_T1, "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6"),
        SourceFile(MNI_GM, "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed"),
        SourceFile(MNI_WM, "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db"),
    ),
    description="MNI152 2009 nonlinear symmetric (09a) T1 template and GM/WM probability maps, "
    "as shipped in the nilearn wheel (population template, not a subject).",
    licence="not stated in the nilearn 0.14.1 wheel: its description of the template "
    "(nilearn/datasets/description/icbm152_2009.rst) says 'License: unknown'; nilearn's own code is "
    "BSD-3-Clause. The template's makers (McConnell Brain Imaging Centre, Montreal Neurological Institute, "
    "McGill University) distribute the ICBM 2009 templates under a permissive notice (copyright Louis "
    "Collins; use, copy, modify and distribute for any purpose without fee, keeping the copyright notice), "
    "as projects redistributing them quote it. A population average of 152 adults, no single subject.",
)

# --- tptbox==1.1.0 (wheel) ------------------------------------------------------------------------

_TPT = "TPTBox/tests/"
SPINE_CT_IMAGE = _TPT + "sample_ct/sub-ct_label-22_ct.nii.gz"
SPINE_CT_VERTEBRAE = _TPT + "sample_ct/sub-ct_seg-vert_label-22_msk.nii.gz"
SPINE_CT_SUBREGIONS = _TPT + "sample_ct/sub-ct_seg-subreg_label-22_msk.nii.gz"
SPINE_MR_IMAGE = _TPT + "sample_mri/sub-mri_label-6_T2w.nii.gz"
SPINE_MR_VERTEBRAE = _TPT + "sample_mri/sub-mri_seg-vert_label-6_msk.nii.gz"
SPINE_MR_SUBREGIONS = _TPT + "sample_mri/sub-mri_seg-subreg_label-6_msk.nii.gz"

TPTBOX = Source(
    name="tptbox",
    requirement="tptbox==1.1.0",
    kind="wheel",
    archive="tptbox-1.1.0-py3-none-any.whl",
    archive_sha256="975a68f4117ab81fcc2d819d6127f301b1cc50210e08e73df1b9a818ee3be984",
    member_prefix="",
    files=(
        SourceFile(SPINE_CT_IMAGE, "51e09da4b00f8a22c17bfc55f63b8c21d2a9f6f1d3e4044143f29e12744abec9"),
        SourceFile(SPINE_CT_VERTEBRAE, "e5529ffb420d83be69c5fc0fbac4b6990bcaa067a5c0939fc7d705c47527ea1d"),
        SourceFile(SPINE_CT_SUBREGIONS, "afb7fdf9770ac460e7ca50b5d2b13aeb2d13e44d179424a48750049b177e93b5"),
        SourceFile(SPINE_MR_IMAGE, "961495b42cdfc02eaf50eb3f471d705793b82802fedb05f5f02aa5367528cf44"),
        SourceFile(SPINE_MR_VERTEBRAE, "14ee727a3f565512ddbf0c9d8ce8d9ce127acc43f0d21bc7771c2fcbd343023a"),
        SourceFile(SPINE_MR_SUBREGIONS, "34c7a3ddccee7b502951d96e0ccc0bf7498ff3f9c47a7bdfcefb51a7e3ca2785"),
    ),
    description="TPTBox 1.1.0 test data: a spine CT (HU) and a spine T2w MR of two different subjects, "
    "1.5 mm isotropic, each with a vertebra instance mask and a vertebra-subregion mask (how the "
    "masks were made is not stated: a reference of unknown quality, not known to be manual).",
    licence="unclear: the wheel's LICENSE file is Apache-2.0 but its classifier says 'Other/Proprietary "
    "License', and the origin of the scans is not stated. synthaug has your own pip fetch the wheel "
    "from the package index into your cache; it never redistributes these files and the repository "
    "holds none of them. Check the terms before reusing them.",
)

SOURCES: dict[str, Source] = {
    source.name: source for source in (TOTALSEGMENTATOR, TOTALSEGMENTATOR_2_10, NILEARN, TPTBOX)
}
