"""``synthaug demo``: fetch the open sample data, run every transform on it, write NIfTI + a PNG grid.

The main job of the README's quick start. Output goes to a new folder (``./synthaug-demo``, or
``-1``, ``-2``... if it exists: nothing is overwritten); it is built under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run every synthaug transform on the open sample data (NIfTI + PNG preview)")
    p.add_argument("--out", type=Path, default=Path("synthaug-demo"), help="output folder (a free name is chosen if taken)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--device", default="cpu", help="torch device for the generators (e.g. cuda)")
    p.set_defaults(func=run)


def _free_name(path: Path) -> Path:
    if not path.exists():
        return path
    i = 1
    while Path(f"{path}-{i}").exists():
        i += 1
    return Path(f"{path}-{i}")


def run(args: argparse.Namespace) -> int:
    out = _free_name(args.out)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        return _run(args, out, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-written output
        raise


def _run(args: argparse.Namespace, out: Path, tmp: Path) -> int:
    import numpy as np
    import torch

    from synthaug.data.fetch import ensure_all
    from synthaug.data.mr_simulator import simulate_brain_mr
    from synthaug.data.nnunet_export import write_nifti
    from synthaug.data.subjects import load_mni_tissue_maps, load_subject
    from synthaug.data.vocabulary import (
        brain_tissue_vocabulary,
        superclass_vocabulary,
        to_shared,
        to_superclasses,
    )
    from synthaug.visualize import write_grid
    from synthaug.weights.registry import list_weights

    t0 = time.perf_counter()
    folders = ensure_all()
    print(f"[demo] open sample data verified in {Path(next(iter(folders.values()))).parent}")
    gen = torch.Generator().manual_seed(args.seed)
    rows: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []  # name, label, real, synthetic

    def mid(x: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x))
        return t[..., t.shape[-1] // 2]

    # 1. Simulated paired brain MR (T1w / T2w / PDw), labelled SIMULATED everywhere.
    sim = simulate_brain_mr(load_mni_tissue_maps(), seed=args.seed, spacing=2.0, name="simulated_000")
    for contrast, img in sim.images.items():
        write_nifti(tmp / f"simulated_brain_{contrast}.nii.gz", img.astype(np.float32), sim.affine)
    write_nifti(tmp / "simulated_brain_label.nii.gz", sim.label.astype(np.uint8), sim.affine)
    lab = mid(sim.label).long()
    for contrast in ("T1w", "T2w"):
        img = mid(sim.images[contrast]).float()
        scale = torch.quantile(img.flatten(), 0.995)
        rows.append((f"simulated {contrast}", lab, img / scale * 2 - 1, None, None))
    print("[demo] simulated brain MR (T1w/T2w/PDw) written")

    # 2. Every transform with shipped weights.
    from synthaug.transforms.context_texture import ContextTextureSynth

    context_cards = {c.name: c for c in list_weights() if c.family == "context"}
    jobs = [("context_ct_a", "ct_a"), ("context_mni", "mni")]
    for weights, subject_name in jobs:
        if weights not in context_cards:
            print(f"[demo] weights {weights!r} are not shipped in this version; skipping")
            continue
        subject = load_subject(subject_name)
        label = subject.label
        vocabulary = brain_tissue_vocabulary()
        if subject_name.startswith("ct"):
            label = to_superclasses(to_shared(label, "total"))
            vocabulary = superclass_vocabulary()
        card = context_cards[weights]
        if card.spacing:  # bring the volume to the generator's in-plane spacing (as monai Spacingd would)
            subject, label = _resample_in_plane(subject, label, card.spacing[0])
        image_t = torch.from_numpy(subject.image)[None].float().to(args.device)
        label_t = torch.from_numpy(np.asarray(label, dtype=np.int64))[None].to(args.device)
        names = {n: i for i, n in enumerate(vocabulary.names)}  # the label map is read by name
        synth = ContextTextureSynth(weights, deform=True, features="perturb", label_names=names)
        params = synth.sample_params(generator=gen)
        t = time.perf_counter()
        new_image, new_label = synth.apply(image_t, label_t, params)
        dt = time.perf_counter() - t
        stem = f"{subject_name}_context_texture"
        write_nifti(tmp / f"{stem}_image.nii.gz", new_image[0].cpu().numpy().astype(np.float32), subject.affine)
        write_nifti(tmp / f"{stem}_label.nii.gz", new_label[0].cpu().numpy().astype(np.int16), subject.affine)
        conv = synth.card.intensity_convention
        fit = conv.fit(torch.from_numpy(subject.image).float())
        real = conv.normalise(mid(subject.image).float(), fit)
        fake = conv.normalise(mid(new_image[0].cpu()).float(), fit)
        rows.append((f"{subject_name} ConText", mid(new_label[0].cpu()).long(), real, fake, mid(np.asarray(label)).long()))
        print(f"[demo] ContextTextureSynth ({weights}) on {subject_name} {tuple(subject.image.shape)}: {dt:.1f} s")

    # 3. Modality translation of the simulated T1w into T2w (2 mm, the shipped NEC's grid); labels untouched.
    from synthaug.transforms.modality_translate import ModalityTranslate

    translate_weights = "translate_brain_t1_t2_nec"
    if translate_weights not in {c.name for c in list_weights()}:
        print(f"[demo] weights {translate_weights!r} are not shipped in this version; skipping")
    else:
        translator = ModalityTranslate(translate_weights, source="T1w", target="T2w")
        t1 = torch.from_numpy(sim.images["T1w"].astype(np.float32))[None].to(args.device)
        t = time.perf_counter()
        t2, _ = translator.apply(t1, None, translator.params_from_seed(args.seed))
        dt = time.perf_counter() - t
        write_nifti(tmp / "simulated_brain_T1w_to_T2w.nii.gz", t2[0].cpu().numpy().astype(np.float32), sim.affine)
        conv = translator.card.intensity_convention
        real = conv.normalise(mid(t1[0].cpu()), conv.fit(t1[0].cpu()))
        fake = conv.normalise(mid(t2[0].cpu()).float(), conv.fit(t2[0].cpu()))
        rows.append(("simulated T1w -> T2w (NEC)", lab, real, fake, lab))
        print(f"[demo] ModalityTranslate ({translate_weights}) T1w -> T2w on simulated {tuple(t1.shape[1:])}: {dt:.1f} s")

    # 4. Preview grid: columns = original label, original image, new label, synthetic image.

    size = max(max(r[1].shape) for r in rows)
    panels_label, panels_real, panels_fake_label, panels_fake = [], [], [], []
    for _, lab, real, fake, orig_label in rows:
        pad = lambda t, v: _pad(t, size, v)  # noqa: E731
        panels_label.append(pad(orig_label if orig_label is not None else lab, 0))
        panels_real.append(pad(real, -1.0))
        panels_fake_label.append(pad(lab, 0))
        panels_fake.append(pad(fake if fake is not None else real, -1.0))
    titles = [[f"{name}: original label", "original image", "label used for synthesis", "synthetic image"]
              for name, *_ in rows]
    grid = write_grid(
        [torch.stack(panels_label), torch.stack(panels_real)[:, None], torch.stack(panels_fake_label), torch.stack(panels_fake)[:, None]],
        tmp / "preview.png",
        max_rows=len(rows),
        titles=titles,
    )
    (tmp / "README.txt").write_text(
        "synthaug demo output\n"
        "preview.png columns: original label | original image | label used for synthesis | synthetic image\n"
        "CT/MR labels are TotalSegmentator model predictions, not manual ground truth.\n"
        "simulated_brain_* are SIMULATED spin-echo MR images from the MNI152 tissue maps (not patient data).\n"
    )
    os.replace(tmp, out)
    print(f"[demo] done in {time.perf_counter() - t0:.0f} s; outputs in {out.resolve()} (preview: {out / grid.name})")
    return 0


def _resample_in_plane(subject, label, spacing: float):
    import dataclasses

    import numpy as np
    from scipy import ndimage

    zoom = (subject.spacing[0] / spacing, subject.spacing[1] / spacing, 1.0)
    image = ndimage.zoom(subject.image, zoom, order=1).astype(np.float32)
    label = ndimage.zoom(np.asarray(label), zoom, order=0)
    affine = subject.affine.copy()
    affine[:3, 0] *= spacing / subject.spacing[0]
    affine[:3, 1] *= spacing / subject.spacing[1]
    resampled = dataclasses.replace(subject, image=image, label=label.astype(np.int16), affine=affine)
    return resampled, label


def _pad(t, size: int, value: float):
    import torch.nn.functional as F

    h, w = t.shape[-2:]
    ph, pw = size - h, size - w
    x = t.float() if t.is_floating_point() else t.float()
    x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)
    return x if t.is_floating_point() else x.long()


