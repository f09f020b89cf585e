"""Runnable MONAI pipeline with synthaug on the data's device.

Deterministic steps are cached (``CacheDataset``); the sample is then moved to the device and the
random synthesis runs there, batched over slices, with ``ThreadDataLoader(num_workers=0)`` (the MONAI
GPU pattern: no CUDA in forked workers).

    python integrations/examples/monai_pipeline.py --device cuda --steps 20
    python integrations/examples/monai_pipeline.py --weights path/to/your.safetensors --device cpu

Cases: slabs of CT subject A (open data) with their labels mapped to the 9-class super-class
vocabulary the shipped CT generator knows (labels are TotalSegmentator predictions).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def build_cases(n_slabs: int = 4, slab: int = 16) -> list[dict]:
    from synthaug.data.subjects import load_subject
    from synthaug.data.vocabulary import to_shared, to_superclasses

    s = load_subject("ct_a")
    label = to_superclasses(to_shared(s.label, "total")).astype(np.int16)
    cases = []
    for k in range(n_slabs):
        z = slice(k * slab, (k + 1) * slab)
        cases.append({"image": s.image[None, :, :, z].astype(np.float32), "label": label[None, :, :, z],
                      "affine": torch.as_tensor(s.affine)})
    return cases


def main(argv: list[str] | None = None) -> dict:
    from monai.data import CacheDataset, MetaTensor, ThreadDataLoader
    from monai.transforms import Compose, EnsureTyped, Lambdad

    from synthaug.data.vocabulary import superclass_vocabulary
    from synthaug.integrations.monai import RandContextTextureSynthd

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--weights", default="context_ct_a")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--prob", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    names = {n: i for i, n in enumerate(superclass_vocabulary().names)}  # what the label values mean

    def to_meta(d: dict) -> dict:
        return {"image": MetaTensor(d["image"], affine=d["affine"]),
                "label": MetaTensor(d["label"], affine=d["affine"], meta={"labels": names})}

    cached = Compose([Lambdad(keys="image", func=lambda x: x), to_meta])  # your loading/resampling goes here
    ds = CacheDataset(build_cases(), transform=cached, cache_rate=1.0, progress=False, num_workers=0)
    on_device = Compose([
        EnsureTyped(keys=("image", "label"), device=args.device, track_meta=True),
        RandContextTextureSynthd(image_key="image", label_key="label", weights=args.weights, prob=args.prob,
                                 deform=True, max_displacement=4.0),
    ])
    on_device.set_random_state(seed=args.seed)
    loader = ThreadDataLoader(ds, batch_size=1, num_workers=0, shuffle=False)
    t0, seen = time.perf_counter(), 0
    changed = 0
    for _ in range(args.steps):
        for batch in loader:
            item = on_device({"image": batch["image"][0], "label": batch["label"][0]})
            changed += int(not torch.equal(item["image"].as_tensor(), batch["image"][0].as_tensor().to(item["image"].device)))
            seen += 1
            assert item["image"].shape == item["label"].shape
        if seen >= args.steps:
            break
    dt = time.perf_counter() - t0
    print(f"{seen} samples on {args.device}, {changed} synthesised, {dt / max(seen, 1):.2f} s/sample")
    return {"samples": seen, "synthesised": changed, "seconds": dt}


if __name__ == "__main__":
    main()
