"""Literature MR tissue parameters of abdominal tissues at 1.5 T and 3 T, and the super-class mixtures.

Used by the physics prior (:mod:`synthaug.appearance.physics`) to render *simulated* MR of a label map in
the super-class vocabulary (:func:`synthaug.data.vocabulary.superclass_vocabulary`). Every value carries
its sources; values that no cited table gives are marked ``assumption`` in :attr:`AbdominalTissue.note`.

Citation check: the 3.0 T relaxation times taken from de Bazelaire 2004 (liver, spleen, kidney cortex and
medulla, pancreas, paravertebral muscle, L4 bone marrow, subcutaneous fat) were checked against the paper's
abstract (Radiology 2004;230:652-659, doi:10.1148/radiol.2303021331), which lists them; a test pins them
(``tests/data/test_abdominal_tissues.py``). Its 1.5 T values and the Stanisz 2005 figures were written from
the papers' tables as remembered, not re-read here. The 1.5 T and 3.0 T values of liver, spleen, kidney cortex
and medulla, muscle and blood agree to the millisecond with a second, independent transcription (the tissue
table of the open-source MR simulator SpinSight; the test pins the comparison); pancreas, bone marrow and
myocardium (and again spleen, kidney medulla and blood) at both fields agree with a third one (the tissue table of
the Fetal-XCMR simulator, pinned too). Fat at 1.5 T stays single-source (the third table gives 450/110 ms,
following another source); for kidney cortex the third table differs (828/71 ms at 1.5 T) while SpinSight agrees
with ours. The proton densities (water content) and fat fractions are rounded literature-typical values; check those against the papers before quoting them in a
publication.
The contrast orders the tests assert follow from the numbers in this file.

Proton density ``pd`` is the MR-visible proton density relative to pure water; ``fat_fraction`` the
proton-density fat fraction. A tissue's signal is ``pd * ((1 - ff) S(T1, T2) + ff S(T1_fat, T2_fat) e^{i phi})``:
its water protons relax with the tissue's own (measured) T1/T2, its fat protons with subcutaneous fat's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from synthaug.errors import ValidationError

__all__ = [
    "FIELDS_T",
    "AbdominalTissue",
    "ABDOMINAL_TISSUES",
    "TissueMixture",
    "SUPERCLASS_MIXTURES",
    "BODY_MIXTURE",
    "get_tissue",
]

#: Field strengths (tesla) the table covers.
FIELDS_T: tuple[float, ...] = (1.5, 3.0)

_DE_BAZELAIRE = (
    "de Bazelaire CMJ, Duhamel GD, Rofsky NM, Alsop DC. MR imaging relaxation times of abdominal and pelvic "
    "tissues measured in vivo at 3.0 T: preliminary results. Radiology 2004;230:652-659 (Table: 1.5 T and 3.0 T)"
)
_STANISZ = (
    "Stanisz GJ, Odrobina EE, Pun J, et al. T1, T2 relaxation and magnetization transfer in tissue at 3T. "
    "Magn Reson Med 2005;54:507-512 (1.5 T and 3 T)"
)
_GOLD = (
    "Gold GE, Han E, Stainsby J, Wright G, Brittain J, Beaulieu C. Musculoskeletal MRI at 3.0 T: relaxation times "
    "and image contrast. AJR 2004;183:343-351 (muscle/marrow/fat ordering at 1.5 T and 3 T)"
)
_WOODARD = (
    "Woodard HQ, White DR. The composition of body tissues. Br J Radiol 1986;59:1209-1218 (water mass fractions, "
    "used as the relative proton density of water-rich tissues)"
)
_SZCZEPANIAK = (
    "Szczepaniak LS, Nurenberg P, Leonard D, et al. Magnetic resonance spectroscopy to measure hepatic triglyceride "
    "content. Am J Physiol Endocrinol Metab 2005;288:E462-E468 (normal liver fat fraction < 5.6 %)"
)
_KUGEL = (
    "Kugel H, Jung C, Schulte O, Heindel W. Age- and sex-specific differences in the 1H-spectrum of vertebral bone "
    "marrow. J Magn Reson Imaging 2001;13:263-268 (adult lumbar marrow fat fraction ~30-50 %)"
)
_REICHERT = (
    "Reichert ILH, Robson MD, Gatehouse PD, et al. Magnetic resonance imaging of cortical bone with ultrashort TE "
    "pulse sequences. Magn Reson Imaging 2005;23:611-618 (cortical bone T2* ~0.4-0.5 ms)"
)
_DU = (
    "Du J, Carl M, Bydder M, Takahashi A, Chung CB, Bydder GM. Qualitative and quantitative ultrashort echo time "
    "(UTE) imaging of cortical bone. J Magn Reson 2010;207:304-311 (cortical bone T1 ~220 ms at 3 T)"
)
_CSF = (
    "Rooney WD et al. Magnetic field and tissue dependencies of human brain longitudinal 1H2O relaxation in vivo. "
    "Magn Reson Med 2007;57:308-318 (CSF T1 ~4.3 s, field independent); textbook free-water T2 ~2 s"
)
_LUNG = (
    "Stadler A, Jakob PM, Griswold M, Barth M, Bankier AA. T1 mapping of the entire lung parenchyma. J Magn Reson "
    "Imaging 2005;21:759-764 (T1 ~1.2-1.3 s at 1.5 T); lung T2* ~1-2 ms and ~20 % proton density (air-filled)"
)
_FAT_PDFF = "adipose tissue proton-density fat fraction ~0.9 (water ~10 %); fat proton density ~0.9 of water"


@dataclass(frozen=True)
class AbdominalTissue:
    """One tissue: T1/T2 (ms) at 1.5 T and 3 T, relative proton density, fat fraction and sources."""

    name: str
    t1_ms_1p5: float
    t2_ms_1p5: float
    t1_ms_3t: float
    t2_ms_3t: float
    pd: float
    fat_fraction: float
    sources: tuple[str, ...]
    note: str = ""

    def __post_init__(self) -> None:
        for f in ("t1_ms_1p5", "t2_ms_1p5", "t1_ms_3t", "t2_ms_3t"):
            if not float(getattr(self, f)) > 0:
                raise ValidationError(f"AbdominalTissue({self.name!r}).{f} must be > 0, got {getattr(self, f)!r}.")
        if not 0.0 <= self.pd <= 1.0 or not 0.0 <= self.fat_fraction <= 1.0:
            raise ValidationError(f"AbdominalTissue({self.name!r}): pd and fat_fraction must lie in [0, 1].")

    def relaxation(self, field_t: float) -> tuple[float, float]:
        """``(T1, T2)`` in ms at ``field_t`` (1.5 or 3.0)."""
        if field_t == 1.5:
            return self.t1_ms_1p5, self.t2_ms_1p5
        if field_t == 3.0:
            return self.t1_ms_3t, self.t2_ms_3t
        raise ValidationError(f"field_t must be one of {FIELDS_T} (tesla), got {field_t!r}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_T = AbdominalTissue
ABDOMINAL_TISSUES: Mapping[str, AbdominalTissue] = MappingProxyType({t.name: t for t in (
    _T("liver", 586, 46, 809, 34, 0.71, 0.03, (_DE_BAZELAIRE, _WOODARD, _SZCZEPANIAK)),
    _T("spleen", 1057, 79, 1328, 61, 0.79, 0.0, (_DE_BAZELAIRE, _WOODARD)),
    _T("kidney_cortex", 966, 87, 1142, 76, 0.83, 0.0, (_DE_BAZELAIRE, _WOODARD)),
    _T("kidney_medulla", 1412, 85, 1545, 81, 0.86, 0.0, (_DE_BAZELAIRE, _WOODARD)),
    _T("pancreas", 584, 46, 725, 43, 0.74, 0.03, (_DE_BAZELAIRE, _WOODARD)),
    _T("muscle", 856, 27, 898, 29, 0.77, 0.03, (_DE_BAZELAIRE, _WOODARD, _GOLD),
       "paraspinal skeletal muscle (de Bazelaire); Stanisz 2005 reports longer values (1.5 T 1008/44 ms, 3 T 1412/50 ms)"),
    _T("fat", 343, 58, 382, 68, 0.90, 0.90, (_DE_BAZELAIRE, _GOLD, _FAT_PDFF), "subcutaneous fat"),
    _T("blood", 1441, 290, 1932, 275, 0.87, 0.0, (_STANISZ, _WOODARD), "static blood; flow is a rendering option"),
    _T("myocardium", 1030, 40, 1471, 47, 0.80, 0.0, (_STANISZ, _WOODARD)),
    _T("bone_marrow", 549, 49, 586, 49, 0.85, 0.40, (_DE_BAZELAIRE, _KUGEL, _GOLD), "vertebral (red/yellow) marrow"),
    _T("cortical_bone", 200, 0.5, 220, 0.45, 0.20, 0.0, (_REICHERT, _DU),
       "approximate: T2 stands for T2* (~0.5 ms), so conventional echoes see no signal; 1.5 T T1 is an assumption"),
    _T("bowel_wall", 900, 50, 1100, 45, 0.80, 0.02, (_DE_BAZELAIRE,),
       "assumption: no in vivo relaxometry in the cited tables; set between skeletal muscle and pancreas"),
    _T("bowel_content", 2500, 150, 2800, 130, 0.90, 0.0, (_CSF,),
       "assumption: mixed fluid/chyme, very variable in vivo (air pockets are the 'air' tissue)"),
    _T("fluid", 4300, 2000, 4300, 2000, 1.0, 0.0, (_CSF,), "free water: bile, urine, CSF; 3 T T2 taken as at 1.5 T"),
    _T("lung", 1200, 2.0, 1300, 1.0, 0.20, 0.0, (_LUNG,), "approximate: T2 stands for T2*"),
    _T("air", 1000, 1.0, 1000, 1.0, 0.0, 0.0, ("no MR-visible protons",)),
)})  # fmt: skip


def get_tissue(name: str) -> AbdominalTissue:
    from synthaug._validate import closest

    if name not in ABDOMINAL_TISSUES:
        raise ValidationError(f"unknown tissue {name!r}; known: {sorted(ABDOMINAL_TISSUES)}.{closest(name, ABDOMINAL_TISSUES)}")
    return ABDOMINAL_TISSUES[name]


@dataclass(frozen=True)
class TissueMixture:
    """The tissues one super-class region is made of, with their mean volume fractions (sum 1)."""

    tissues: tuple[str, ...]
    weights: tuple[float, ...]
    note: str = ""

    def __post_init__(self) -> None:
        if len(self.tissues) != len(self.weights) or not self.tissues:
            raise ValidationError(f"TissueMixture needs one weight per tissue, got {self.tissues} and {self.weights}.")
        for t in self.tissues:
            get_tissue(t)
        if any(w <= 0 for w in self.weights) or abs(sum(self.weights) - 1.0) > 1e-6:
            raise ValidationError(f"TissueMixture weights must be positive and sum to 1, got {self.weights}.")


#: Super-class (synthaug.data.vocabulary.SUPERCLASSES) -> tissue mixture. Inside a region the fractions vary
#: smoothly in space around these means (``heterogeneity``), so a mixed region shows tissue patches.
SUPERCLASS_MIXTURES: Mapping[str, TissueMixture] = MappingProxyType({
    "liver": TissueMixture(("liver", "fluid"), (0.94, 0.06), "liver parenchyma + gallbladder bile"),
    "spleen": TissueMixture(("spleen",), (1.0,)),
    "kidneys": TissueMixture(("kidney_cortex", "kidney_medulla"), (0.6, 0.4), "adrenals rendered as kidney"),
    "gastrointestinal": TissueMixture(("bowel_wall", "bowel_content", "pancreas", "air"), (0.4, 0.35, 0.15, 0.1),
                                      "oesophagus/stomach/bowel wall and content (with gas), pancreas"),
    "cardiovascular": TissueMixture(("blood", "myocardium"), (0.8, 0.2), "vessels and heart chambers + myocardium"),
    "bone": TissueMixture(("bone_marrow", "cortical_bone"), (0.65, 0.35), "marrow cavity + cortex"),
    "muscle": TissueMixture(("muscle",), (1.0,)),
    "other_organs": TissueMixture(("fluid", "lung", "muscle"), (0.5, 0.3, 0.2),
                                  "urinary bladder (urine), lung bases, prostate/spinal cord as soft tissue"),
})  # fmt: skip

#: Unlabelled tissue inside the body (super-class 0 inside the body mask); outside the body is air.
BODY_MIXTURE = TissueMixture(("fat", "muscle", "bowel_content"), (0.85, 0.1, 0.05),
                             "subcutaneous/visceral fat + unlabelled soft tissue and fluid")
