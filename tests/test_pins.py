"""Output pins: every shipped transform, on a fixed phantom and fixed seeds, gives the committed numbers.

The committed results (benchmarks/results/) were produced by these code paths; a refactor that changes a
transform's output by more than float noise breaks a pin here. The pins were written by this file on the
code before the one-engine redesign (issue 16) and must not be rewritten to make a change pass; rewrite
them only for an intended, documented behaviour change:

    .venv/bin/python tests/test_pins.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

PINS = Path(__file__).with_name("pins.json")


def _ct_phantom(shape=(48, 44, 4), seed=0):
    """A 9-class super-class label map (context_ct_a's vocabulary) and a CT-like image in HU with air."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros(shape, dtype=torch.long)
    lab[4:44, 4:40] = 7           # muscle / body wall
    lab[8:40, 8:36] = 6           # other organs
    lab[10:24, 10:22] = 5         # liver
    lab[26:34, 10:16] = 8         # spleen
    lab[26:32, 24:30] = 4         # kidneys
    lab[14:20, 26:32] = 3         # gastrointestinal
    lab[34:38, 18:24] = 1         # bone
    lab[20:24, 24:27] = 2         # cardiovascular
    hu = torch.tensor([-1000.0, 400.0, 40.0, 10.0, 30.0, 55.0, 35.0, 50.0, 45.0])
    img = hu[lab] + 12 * torch.randn(shape, generator=g)
    return img[None], lab[None]


def _brain_phantom(shape=(40, 40, 3), seed=1):
    g = torch.Generator().manual_seed(seed)
    lab = torch.zeros(shape, dtype=torch.long)
    lab[4:36, 4:36] = 1
    lab[7:33, 7:33] = 2
    lab[12:28, 12:28] = 3
    img = torch.tensor([0.0, 300.0, 600.0, 800.0])[lab] + 20 * torch.randn(shape, generator=g)
    return img[None], lab[None]


def _summary(x: torch.Tensor) -> dict[str, float]:
    x = x.detach().double()
    flat = x.flatten()
    idx = torch.linspace(0, flat.numel() - 1, 9).long()
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max()),
            "samples": [float(v) for v in flat[idx]]}


def compute() -> dict[str, dict]:
    from synthaug.transforms import (
        ContextTextureSynth,
        GaussianMixtureSynth,
        ModalityTranslate,
        StyleBank,
        StyleSwap,
    )

    torch.set_num_threads(1)
    out: dict[str, dict] = {}
    img, lab = _ct_phantom()
    for name, kw in {"context_ct_a": {}, "context_ct_a_nodeform_card": {"deform": False, "features": "card"}}.items():
        t = ContextTextureSynth("context_ct_a", labels_are_classes=True, **kw)
        y, new_lab = t.apply_batch(img[None], lab[None], seeds=[1234, ])
        out[name] = {"image": _summary(y), "label": _summary(new_lab.float())}
    bimg, blab = _brain_phantom()
    y, _ = ContextTextureSynth("context_mni", deform=False, labels_are_classes=True).apply_batch(bimg[None], blab[None], seeds=[99])
    out["context_mni"] = {"image": _summary(y)}
    img2, lab2 = _ct_phantom(seed=5)
    bank = StyleBank([{"image": img2, "label": lab2, "id": "style_case"}])
    y, new_lab = StyleSwap("style_ct_a", bank, labels_are_classes=True).apply_batch(img[None], lab[None], seeds=[77])
    out["style_ct_a"] = {"image": _summary(y), "label": _summary(new_lab.float())}
    y, _ = GaussianMixtureSynth().apply_batch(img[None], lab[None], seeds=[5])
    out["gaussian_mixture"] = {"image": _summary(y)}
    y, _ = ModalityTranslate("translate_brain_t1_t2_nec", source="T1w", target="T2w").apply_batch(bimg[None], None, seeds=[0])
    out["translate_brain_t1_t2_nec"] = {"image": _summary(y)}
    return out


def compute_batch() -> dict[str, dict]:
    """The nnU-Net batch path: a recipe with every generator family on a CT-normalised 2D batch."""
    from synthaug.integrations.nnunet.normalization import ChannelNormalization, intensity_for
    from synthaug.recipes import BatchSynthesizer, Recipe

    torch.set_num_threads(1)
    props = {"mean": 60.0, "std": 110.0, "percentile_00_5": -980.0, "percentile_99_5": 600.0}
    norm = ChannelNormalization("CTNormalization", props)
    names = ["background", "bone", "cardiovascular", "gastrointestinal", "kidneys", "liver", "other_organs",
             "muscle", "spleen"]
    labels = {n: i for i, n in enumerate(names)}
    recipe = Recipe.from_dict({"seed": 3, "transforms": [
        {"name": "context_texture", "probability": 0.4, "options": {"weights": "context_ct_a"},
         "deform": {"enabled": True, "control_points": 4, "max_displacement": 3.0}},
        {"name": "gaussian_mixture", "probability": 0.3},
        {"name": "style_swap", "probability": 0.3, "options": {"weights": "style_ct_a"}},
    ]})
    synth = BatchSynthesizer(recipe, intensity=intensity_for(norm), dataset_labels=labels, seed=3)
    imgs, labs = zip(*(_ct_phantom(shape=(48, 44), seed=s) for s in range(6)))
    data = (torch.stack(imgs) - props["mean"]) / props["std"]
    target = torch.stack(labs).to(torch.int16)
    res = synth(data, target, epoch=0)
    return {"batch": {"data": _summary(res.data), "target": _summary(res.target.float()), "choice": res.choice}}


def compute_faces() -> dict[str, dict]:
    """MONAI (``set_random_state``) and TorchIO (torch's seed, TorchIO's convention) faces on the same phantom."""
    import torchio as tio

    from synthaug.integrations.monai import RandContextTextureSynthd
    from synthaug.integrations.torchio import RandomContextTextureSynth

    torch.set_num_threads(1)
    img, lab = _ct_phantom()
    t = RandContextTextureSynthd(image_key="image", label_key="label", weights="context_ct_a", prob=1.0,
                                 labels_are_classes=True)
    t.set_random_state(0)
    affine = torch.diag(torch.tensor([3.0, 3.0, 3.0, 1.0]))  # the generator's training spacing (3 mm)
    from monai.data import MetaTensor

    d = t({"image": MetaTensor(img, affine=affine), "label": MetaTensor(lab, affine=affine)})
    out = {"monai_context": {"image": _summary(d["image"]), "label": _summary(d["label"].float())}}
    torch.manual_seed(0)
    subject = tio.Subject(image=tio.ScalarImage(tensor=img, affine=affine.numpy()),
                          label=tio.LabelMap(tensor=lab, affine=affine.numpy()))
    s = RandomContextTextureSynth(weights="context_ct_a", labels_are_classes=True)(subject)
    out["torchio_context"] = {"image": _summary(s["image"].data), "label": _summary(s["label"].data.float())}
    return out


def _close(a, b, path=""):
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert abs(a - b) <= 2e-3 + 2e-4 * abs(b), f"{path}: {a} vs pinned {b}"
    else:
        assert a == b, f"{path}: {a} vs pinned {b}"


_PARTS = {"transforms": compute, "batch": compute_batch, "faces": compute_faces}


@pytest.mark.parametrize("part", sorted(_PARTS))
def test_outputs_match_the_pins(part):
    pins = json.loads(PINS.read_text())[part]
    now = _PARTS[part]()
    _close(now, pins, part)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_pins.py --write")
    PINS.write_text(json.dumps({k: f() for k, f in _PARTS.items()}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PINS}")
