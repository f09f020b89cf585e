"""Runnable TorchIO pipeline: ``SubjectsDataset`` + ``Queue`` with synthaug before patch sampling.

    python integrations/examples/torchio_pipeline.py --steps 4

Cases: slabs of CT subject A (open data), labels mapped to the shipped CT generator's 9 super-classes.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main(argv: list[str] | None = None) -> dict:
    import torchio as tio

    from synthaug.data.subjects import load_subject
    from synthaug.data.vocabulary import superclass_vocabulary, to_shared, to_superclasses
    from synthaug.integrations.torchio import RandomContextTextureSynth

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--weights", default="context_ct_a")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)  # TorchIO draws its parameters from torch's generator

    s = load_subject("ct_a")
    label = to_superclasses(to_shared(s.label, "total")).astype(np.int16)
    names = {n: i for i, n in enumerate(superclass_vocabulary().names)}  # what the label values mean
    subjects = []
    for k in range(4):
        z = slice(k * 16, (k + 1) * 16)
        subjects.append(tio.Subject(
            image=tio.ScalarImage(tensor=torch.from_numpy(s.image[None, :, :, z].astype(np.float32)), affine=s.affine),
            label=tio.LabelMap(tensor=torch.from_numpy(label[None, :, :, z]), affine=s.affine, labels=names),
        ))
    transform = tio.Compose([RandomContextTextureSynth(weights=args.weights, p=0.5, max_displacement=4.0)])
    dataset = tio.SubjectsDataset(subjects, transform=transform)
    queue = tio.Queue(dataset, max_length=8, samples_per_volume=2,
                      sampler=tio.UniformSampler((args.patch, args.patch, 16)), num_workers=0, shuffle_subjects=False)
    loader = torch.utils.data.DataLoader(queue, batch_size=2, num_workers=0)
    t0, n = time.perf_counter(), 0
    for batch in loader:
        assert batch["image"][tio.DATA].shape == batch["label"][tio.DATA].shape
        n += batch["image"][tio.DATA].shape[0]
        if n >= args.steps:
            break
    dt = time.perf_counter() - t0
    print(f"{n} patches, {dt / max(n, 1):.2f} s/patch")
    return {"patches": n, "seconds": dt}


if __name__ == "__main__":
    main()
