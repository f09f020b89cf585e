"""Synthesis speed of every shipped generator transform, side by side with its peers, in one run.

For each transform x generator (``ContextTextureSynth`` with the ``context`` weights, ``StyleSwap`` with
``style`` weights, ``ModalityTranslate`` with ``translate`` weights) and each volume size, on one device:

- **time per megavoxel** of one call on a single volume (median of ``repeats``), and the **time split inside
  the call**: every phase the transform marks (``synthaug.inference.phases``: checks, intensity fit, deformation,
  features, padding, noise, generator, calibration, output, ...), exclusive and synchronised;
- the **canvas fill** (volume voxels over the voxels the generator renders: padded slices, overlapping patches);
- **growth with size**: a least-squares fit of ``seconds = a + b * megavoxels``, the log-log exponent (1 =
  linear) and the spread of ms / megavoxel over the sizes that fill the generator's canvas;
- **reduced precision**: each generator again under ``synthaug.networks.inference.precision("bf16")`` (and
  ``"fp16"`` on CUDA), timed in the same rounds, with PSNR/SSIM of its output against the fp32 output;
- **FLOPs** of the call and of the generator forward, counted with :class:`torch.utils.flop_counter.FlopCounterMode`
  on the exact inputs (matmul/conv FLOPs; element-wise work such as normalisation counts 0), the achieved
  FLOP/s and the **efficiency** against the fp32 ``torch.mm`` peak timed in the same rounds on the same
  device and thread count;
- **peak memory** of one call: on CUDA ``torch.cuda.max_memory_allocated`` above the allocation before the
  call; on CPU the high-water mark of the bytes torch's allocator holds during the call (torch.profiler
  memory events, summed in time order), plus the process peak-RSS rise (Linux ``VmHWM`` reset through
  ``/proc/self/clear_refs``; it also sees numpy) as a cross-check;
- **ratios** of time per megavoxel to TorchIO ``RandomLabelsToImage`` and MONAI ``Rand3DElasticd`` on the same
  label map/image, and to one plain nnU-Net training iteration (``PlainConvUNet`` built with nnU-Net's default
  3d_fullres topology rules for that patch, batch 2, nnU-Net's Dice+CE deep-supervision loss, SGD step; the
  ratio compares the same number of voxels, i.e. synthesising every volume of the batch vs one iteration), and
  the same for a 2d iteration (nnU-Net 2d rules on the volume's middle slice, batch 12);
- optionally (``overhead=``) the synthesis share of a real ``nnUNetTrainerSynthAug`` iteration for 2d and
  3d_fullres at the recipe's probability (:mod:`synthaug.benchmark.overhead`), and (``expansion=``) offline
  expansion throughput under ``torchrun`` with 1 and 2 processes, outputs compared by sha256.

The real label maps (and images) come from the data each generator was trained on (``card.training.config.data``):
the largest training volume, cropped to its labelled bounding box and resampled to each size (labels nearest
neighbour, images trilinear). All items of one size run interleaved, round after round (matmul, generators,
peers, nnU-Net), so a shared machine's load hits them alike; medians are reported.

Python::

    from synthaug.benchmark.speed import measure_speed, speed_markdown
    result = measure_speed([(64, 64, 16), (96, 96, 24)], repeats=3)

Command line: ``synthaug benchmark speed --out benchmarks/results/speed --threads 1`` (``benchmarks/speed.sh`` holds
the full command behind the committed report); ``--device cuda`` gives the GPU table.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthaug._optional import require
from synthaug.errors import DataError, SynthAugError, ValidationError
from synthaug.inference.phases import record_phases
from synthaug.transforms.slicewise import resolve_chunk

__all__ = [
    "DEFAULT_SIZES",
    "SHIPPED_GENERATORS",
    "Source",
    "default_source",
    "derive",
    "fit_to_size",
    "measure_expansion",
    "measure_speed",
    "rendered_voxels",
    "speed_markdown",
]

DEFAULT_SIZES: tuple[tuple[int, int, int], ...] = ((64, 64, 16), (128, 128, 32), (192, 192, 48))
SHIPPED_GENERATORS: tuple[str, ...] = ("context_ct_a", "context_mni", "style_ct_a", "translate_brain_pd_t2_resgan")
TRANSFORM_OF_FAMILY = {"context": "ContextTextureSynth", "style": "StyleSwap", "translate": "ModalityTranslate"}
_GENERATOR_METHOD = {"context": "forward", "style": "render", "translate": "forward"}
TORCHIO, MONAI, NNUNET, MATMUL = "TorchIO RandomLabelsToImage", "MONAI Rand3DElasticd", "nnU-Net iteration", "fp32 matmul"
NNUNET_2D = f"{NNUNET} 2d"


# ------------------------------------------------------------------------------------------ data


@dataclass(frozen=True, eq=False)
class Source:
    """One real volume: ``image`` ``(X, Y, Z)`` raw intensities, ``label`` ``(X, Y, Z)`` generator class ids."""

    name: str
    image: np.ndarray
    label: np.ndarray
    description: str


_SOURCES: dict[str, Source] = {}


def default_source(card: Any) -> Source:
    """The largest training volume of the data a generator card was trained on (cached per data name).

    ``context``/``style`` cards: :func:`synthaug.training.datasets.get_training_data` (its labels must be the
    card's classes); ``translate`` cards: a validation subject of
    :func:`synthaug.training.translate_data.get_translation_data` (source-modality image + its label map).
    """
    data = str(card.training.get("config", {}).get("data", "") or "")
    if not data:
        raise DataError(f"model card {card.name!r} does not record its training data (training.config.data).")
    key = f"{card.family}:{data}"
    if key in _SOURCES:
        return _SOURCES[key]
    if card.family == "translate":
        from synthaug.training.translate_data import get_translation_data

        td = get_translation_data(data)
        case = td.split("validation")[0]
        if case.source is None:
            raise DataError(f"translation data {data!r} has no source image in its validation split.")
        label = case.label if case.label is not None else case.mask
        simulated = " (simulated)" if td.simulated else ""
        src = Source(data, np.asarray(case.source, np.float32), np.asarray(label).astype(np.int64),
                     f"{case.case_id} {td.source_modality}{simulated}, labels {', '.join(td.label_names)}")
    else:
        from synthaug.training.datasets import get_training_data

        td = get_training_data(data)
        if tuple(td.labels) != tuple(card.labels):
            raise DataError(f"training data {data!r} labels {td.labels} are not the classes of {card.name!r} {card.labels}.")
        vol = max(td.train, key=lambda v: v.image.size)
        src = Source(data, np.asarray(vol.image, np.float32), np.asarray(vol.label).astype(np.int64),
                     f"{vol.case_id} {td.modality} ({td.label_source})")
    _SOURCES[key] = src
    return src


def fit_to_size(source: Source, size: Sequence[int], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``(image (1, 1, *size) float32, label (1, 1, *size) int64)``: the labelled bounding box resampled to ``size``."""
    label = np.asarray(source.label)
    fg = np.nonzero(label)
    if not fg[0].size:
        raise DataError(f"source {source.name!r} has an empty label map.")
    box = tuple(slice(int(a.min()), int(a.max()) + 1) for a in fg)
    img = torch.from_numpy(np.ascontiguousarray(source.image[box], dtype=np.float32))[None, None]
    lab = torch.from_numpy(np.ascontiguousarray(label[box]))[None, None].float()
    size = tuple(int(s) for s in size)
    img = F.interpolate(img, size=size, mode="trilinear", align_corners=False)
    lab = F.interpolate(lab, size=size, mode="nearest").long()
    return img.to(device), lab.to(device)


# ------------------------------------------------------------------------------------------ timing helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Timer:
    """Wraps one method of a module instance: accumulated synchronised seconds and (optionally) FLOPs."""

    def __init__(self, module: torch.nn.Module, method: str, device: torch.device) -> None:
        self.module, self.method, self.device = module, method, device
        self.seconds, self.flops, self.calls, self.count_flops = 0.0, 0, 0, False

    def reset(self) -> None:
        self.seconds, self.flops, self.calls = 0.0, 0, 0

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Timer]:
        original = getattr(self.module, self.method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            _sync(self.device)
            t0 = time.perf_counter()
            if self.count_flops:
                from torch.utils.flop_counter import FlopCounterMode

                with FlopCounterMode(display=False) as fc:
                    out = original(*args, **kwargs)
                self.flops += int(fc.get_total_flops())
            else:
                out = original(*args, **kwargs)
            _sync(self.device)
            self.seconds += time.perf_counter() - t0
            self.calls += 1
            return out

        setattr(self.module, self.method, timed)  # instance attribute shadows the class method
        try:
            yield self
        finally:
            delattr(self.module, self.method)


@dataclass
class _Item:
    key: str
    kind: str  # "generator", "peer" or "reference"
    run: Callable[[int], Any]
    voxels: int
    data: str = ""
    transform: str = ""
    weights: str = ""
    timer: _Timer | None = None
    notes: str = ""
    precision: str = "fp32"
    rendered: int = 0  # voxels the generator renders (padded canvases, overlapping patches)
    times: list[float] = field(default_factory=list)
    gen_times: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _profiler_peak(prof: Any, device: torch.device) -> int | None:
    """High-water mark of allocated bytes on ``device`` from the profiler's per-allocation memory events."""
    try:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except Exception:  # private API: absent in some torch builds
        return None
    want = "CUDA" if device.type == "cuda" else "CPU"
    events = [e for e in events if want in str(e.device_type())]
    events.sort(key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += int(e.nbytes())
        peak = max(peak, cur)
    return peak


def _is_conv(op: str) -> bool:
    return "conv" in op.lower()


def _instrumented(item: _Item, device: torch.device, seed: int) -> None:
    """Two untimed calls after warm-up: one under torch.profiler (memory, operator self times), one under
    FlopCounterMode (FLOPs; the generator's own through the method timer). Kept apart so neither skews the other."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    stats: dict[str, Any] = {}
    # 1. memory and where the time goes
    _sync(device)
    rss_before = _status_kb("VmRSS")
    hwm_ok = _reset_hwm()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    with profile(activities=activities, profile_memory=True) as prof:
        item.run(seed)
        _sync(device)
    hwm = _status_kb("VmHWM")
    if device.type == "cuda":
        stats["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(device) - base)
        stats["memory_method"] = "torch.cuda.max_memory_allocated above the allocation before the call"
    else:
        stats["peak_memory_bytes"] = _profiler_peak(prof, device)
        stats["memory_method"] = "torch CPU allocator high-water during the call (torch.profiler memory events)"
    stats["rss_peak_delta_bytes"] = (max(0, hwm - rss_before) if hwm_ok and hwm is not None and rss_before is not None
                                     else None)
    if item.kind != "reference":
        try:
            ka = prof.key_averages()
            attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
            times = [(e.key, max(0.0, float(getattr(e, attr, 0.0)))) for e in ka]
            total = sum(t for _, t in times) or 1.0
            stats["top_ops"] = [[k, round(100 * t / total, 1)] for k, t in sorted(times, key=lambda kt: -kt[1])[:6]]
            stats["conv_share"] = sum(t for k, t in times if _is_conv(k)) / total
        except Exception:  # a report extra: never fail the benchmark on it
            stats["top_ops"] = []
    # 2. FLOPs on the exact inputs
    if item.timer is not None:
        item.timer.reset()
        item.timer.count_flops = True
    try:
        from synthaug.networks.inference import configure

        # the plain module (the timer wraps its method): FLOPs are the model's, not those of the inference
        # copy's rewrites (the sub-pixel form multiplies by zeros)
        with configure(optimise=False), FlopCounterMode(display=False) as fc:
            item.run(seed)
    finally:
        if item.timer is not None:
            item.timer.count_flops = False
    stats["total_flops"] = int(fc.get_total_flops())
    if item.timer is not None:
        stats["generator_flops"] = int(item.timer.flops)
        stats["generator_calls"] = int(item.timer.calls)
    item.stats.update(stats)


# ------------------------------------------------------------------------------------------ items


def rendered_voxels(transform: Any, card: Any, spatial: Sequence[int]) -> int:
    """Voxels the generator renders for one volume of ``spatial`` size: slices padded to the card's canvas and
    divisor, or every overlapping patch (what the time is spent on; below the canvas it exceeds the volume)."""
    from synthaug.inference.sliding_window import patch_starts

    spatial = tuple(int(v) for v in spatial)
    spec = card.inference
    patch = getattr(transform, "patch_size", None)
    if patch:
        steps = [max(1, int(math.floor(p * (1.0 - float(transform.overlap))))) for p in patch]
        if card.spatial_dims == 3:
            dims, count_slices = spatial, 1
        else:
            axis = transform.slice_axis
            dims = tuple(v for i, v in enumerate(spatial) if i != axis)
            count_slices = spatial[axis]
        starts = [len(patch_starts(max(n, p), p, st)) for n, p, st in zip(dims, patch, steps)]
        return int(count_slices * math.prod(starts) * math.prod(patch))
    axis = getattr(transform, "slice_axis", 2)
    h, w = (v for i, v in enumerate(spatial) if i != axis)
    canvas = tuple(spec.canvas) if spec.canvas else (0, 0)
    if card.family == "style":
        canvas = (0, 0)  # StyleSwap pads to the divisor only
    th, tw = max(h, canvas[0]), max(w, canvas[1])
    divisor = max(1, int(spec.divisor))
    th += (-th) % divisor
    tw += (-tw) % divisor
    return int(spatial[axis] * th * tw)


def _generator_item(name: str, card: Any, image: torch.Tensor, label: torch.Tensor, data: str,
                    device: torch.device, precision: str = "fp32") -> _Item:
    item = _generator_item_fp32(name, card, image, label, data, device)
    if precision == "fp32":
        return item
    from synthaug.networks.inference import precision as run_in

    base = item.run

    def run(seed: int) -> Any:
        with run_in(precision):
            return base(seed)

    item.run, item.precision = run, precision
    item.key = f"{item.key} [{precision}]"
    item.timer = None  # one method timer per network (the fp32 twin's); the FLOPs are the same model's
    return item


def _generator_item_fp32(name: str, card: Any, image: torch.Tensor, label: torch.Tensor, data: str,
                         device: torch.device) -> _Item:
    from synthaug.weights.registry import load

    family = card.family
    net, loaded = load(name, device=device, dtype=torch.float32)  # the loaded card has the network's divisor
    timer = _Timer(net, _GENERATOR_METHOD[family], device)
    notes = ""
    if family == "context":
        from synthaug.transforms.context_texture import ContextTextureSynth

        t = ContextTextureSynth(name, labels_are_classes=True)  # labels are cut in the generator's own classes

        def run(seed: int) -> Any:
            return t.apply_batch(image, label, seeds=[seed])

        transform = "ContextTextureSynth"
        notes = ("defaults: elastic label deformation, 'perturb' features, region calibration; 2D slices along axis 2, "
                 f"{resolve_chunk(t.chunk, device)} slices per call")
    elif family == "style":
        from synthaug.transforms.style_swap import StyleSwap

        t = StyleSwap(name, labels_are_classes=True)  # no bank: learned default codes (a bank's codes are cached after the first call)

        def run(seed: int) -> Any:
            return t.apply_batch(image, label, seeds=[seed])

        transform = "StyleSwap"
        notes = ("no style bank (learned default codes; bank codes are computed once and cached); "
                 f"{resolve_chunk(t.chunk, device)} slices per call")
    elif family == "translate":
        try:
            from synthaug.transforms.modality_translate import ModalityTranslate

            t = ModalityTranslate(name)

            def run(seed: int) -> Any:
                return t.apply_batch(image, None, seeds=[seed])

            transform = "ModalityTranslate"
            per_call = resolve_chunk(t.chunk, device)
            if card.spatial_dims == 3 or t.mode == "patches":
                notes = f"mode {t.mode}, patch {t.patch_size}, overlap {t.overlap}, {per_call} patches per call"
            else:
                notes = f"mode {t.mode}: 2D slices along axis {t.slice_axis}, {per_call} slices per call"
        except ImportError:  # the transform module is optional here: time its inference directly
            from synthaug.inference.sliding_window import sliding_window_inference

            inf = card.inference
            conv = card.intensity_convention

            @torch.no_grad()
            def run(seed: int) -> Any:
                x = conv.normalise(image, conv.fit_batch(image))
                return sliding_window_inference(x, net, patch_size=int(inf.patch[0]) if inf.patch else 32,
                                                overlap=inf.overlap, weighting=inf.weighting, batch_size=16,
                                                pad_mode="constant", pad_value=inf.pad_value)

            transform = "sliding_window_inference"
            notes = "synthaug.transforms.modality_translate unavailable: the generator's sliding-window inference"
    else:  # pragma: no cover - filtered by the caller
        raise ValidationError(f"no transform for family {family!r}.")
    rendered = rendered_voxels(t, loaded, image.shape[2:]) if transform != "sliding_window_inference" else 0
    return _Item(f"{transform} [{name}]", "generator", run, int(image[0, 0].numel()), data=data,
                 transform=transform, weights=name, timer=timer, notes=notes, rendered=rendered)


def _torchio_item(image: torch.Tensor, label: torch.Tensor, data: str) -> _Item:
    tio = require("torchio")
    subject = tio.Subject(label=tio.LabelMap(tensor=label[0].cpu()))
    t = tio.RandomLabelsToImage(label_key="label")

    def run(seed: int) -> Any:
        torch.manual_seed(seed)  # TorchIO draws from the global generator
        return t(subject)

    return _Item(f"{TORCHIO} [{data}]", "peer", run, int(label[0, 0].numel()), data=data, transform=TORCHIO,
                 notes="default Gaussian per label, on CPU (TorchIO transforms run on CPU)")


def _monai_item(image: torch.Tensor, label: torch.Tensor, data: str, device: torch.device) -> _Item:
    require("monai")
    from monai.transforms import Rand3DElasticd

    t = Rand3DElasticd(keys=["image", "label"], sigma_range=(5, 8), magnitude_range=(100, 200), prob=1.0,
                       mode=("bilinear", "nearest"), padding_mode="border", device=device)
    sample = {"image": image[0], "label": label[0].float()}

    def run(seed: int) -> Any:
        t.set_random_state(seed)
        return t(sample)

    return _Item(f"{MONAI} [{data}]", "peer", run, int(label[0, 0].numel()), data=data, transform=MONAI,
                 notes="sigma 5-8, magnitude 100-200, prob 1, image bilinear + label nearest, on the device")


def nnunet_network(
    patch: Sequence[int], n_classes: int, *, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> tuple[torch.nn.Module, list[list[int]], tuple[int, ...]]:
    """``PlainConvUNet`` with nnU-Net's default topology for ``patch`` (3 entries: 3d_fullres, 2 entries: 2d):
    (network, pooling strides, the patch nnU-Net would use: ``patch`` padded up to a multiple of the total pooling)."""
    require("nnunetv2")
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    dims = len(patch)
    spacing = tuple(spacing)[:dims]
    _, pool, conv, shape, _ = get_pool_and_conv_props(spacing, tuple(patch), 4, 999999)
    n = len(conv)
    cap = 320 if dims == 3 else 512  # nnU-Net's feature cap: 320 in 3D, 512 in 2D
    conv_op, norm_op = (torch.nn.Conv3d, torch.nn.InstanceNorm3d) if dims == 3 else (torch.nn.Conv2d, torch.nn.InstanceNorm2d)
    net = PlainConvUNet(
        1, n, [min(32 * 2**i, cap) for i in range(n)], conv_op, conv, pool, 2, n_classes, 2, True,
        norm_op, {"eps": 1e-5, "affine": True}, None, None, torch.nn.LeakyReLU, {"inplace": True},
        deep_supervision=True,
    )
    return net, [[int(v) for v in p] for p in pool], tuple(int(v) for v in shape)


NNUNET_2D_BATCH = 12  # nnU-Net 2d batch for a 128x128-class patch is larger than 3d_fullres's 2; 12 is its minimum-budget value


def _nnunet_item(image: torch.Tensor, label: torch.Tensor, n_classes: int, data: str, device: torch.device,
                 batch_size: int, configuration: str = "3d_fullres") -> _Item:
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    if configuration == "2d":  # slices of the volume (along Z, as the 2D generators cut it)
        z = image.shape[-1] // 2
        batch_size = NNUNET_2D_BATCH
        image, label = image[..., z], label[..., z]  # the middle slice (1, 1, X, Y), repeated to the batch below
    net, pool, patch = nnunet_network(tuple(image.shape[2:]), n_classes)
    net = net.to(device)
    mode = "trilinear" if len(patch) == 3 else "bilinear"
    if patch != tuple(image.shape[2:]):  # nnU-Net pads patches to a multiple of its pooling
        image = F.interpolate(image, size=patch, mode=mode, align_corners=False)
        label = F.interpolate(label.float(), size=patch, mode="nearest").long()
    scales = np.cumprod(np.vstack(pool), axis=0)[:-1]
    weights = np.array([1 / 2**i for i in range(len(scales))])
    weights[-1] = 0
    loss = DeepSupervisionWrapper(
        DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                       weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss),
        weights / weights.sum(),
    )
    x = (image - image.mean()) / image.std().clamp_min(1e-6)  # nnU-Net's z-score normalisation
    reps = (batch_size,) + (1,) * (x.ndim - 1)
    data_batch = x.repeat(*reps).contiguous()
    lab = label.float().repeat(*reps)
    targets = [F.interpolate(lab, size=tuple(int(p // s) for p, s in zip(patch, sc)), mode="nearest") for sc in scales]
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    amp = device.type == "cuda"  # nnU-Net trains with autocast + GradScaler on CUDA
    scaler = torch.amp.GradScaler("cuda") if amp else None

    def run(seed: int) -> Any:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, enabled=amp):
            out = net(data_batch)
            value = loss(out, targets)
        if scaler is not None:
            scaler.scale(value).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            scaler.step(optimizer)
            scaler.update()
        else:
            value.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            optimizer.step()
        return value.detach()

    stages = len(pool)
    key = NNUNET if configuration == "3d_fullres" else f"{NNUNET} 2d"
    return _Item(key, "peer", run, int(image[0, 0].numel()) * batch_size, data=data, transform=key,
                 notes=f"PlainConvUNet (nnU-Net {configuration} rules, {stages} stages, patch "
                       f"{'x'.join(map(str, patch))}), batch {batch_size}, Dice+CE deep supervision, SGD step"
                       f"{' (AMP)' if amp else ' (fp32)'}")


def _matmul_item(n: int, device: torch.device) -> _Item:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    return _Item(MATMUL, "reference", lambda seed: torch.mm(a, b), 0, transform=f"torch.mm {n}x{n} fp32")


def _precision_quality(items: Sequence[_Item], *, seed: int) -> dict[str, dict[str, float]]:
    """PSNR (dB) and SSIM of every reduced-precision generator item's output against its fp32 twin's, on the same
    input and seed (data range: the fp32 output's); untimed."""
    from synthaug.losses.structural import psnr, ssim

    out: dict[str, dict[str, float]] = {}
    for it in items:
        if it.kind != "generator" or it.precision == "fp32":
            continue
        ref_item = next(r for r in items if r.kind == "generator" and r.weights == it.weights and r.precision == "fp32")
        ref, test = ref_item.run(seed)[0].double(), it.run(seed)[0].double()
        rng = float(ref.max() - ref.min()) or 1.0
        # SSIM over the 2D slices (along the last axis, as the 2D generators render them), 7x7 windows
        as_2d = (lambda v: v.movedim(-1, 1).reshape(-1, 1, *v.shape[2:4])) if ref.ndim == 5 else (lambda v: v)
        window = 7 if min(ref.shape[2:4]) >= 7 else None
        out[it.key] = {
            "psnr_vs_fp32": float(psnr(test, ref, data_range=rng).mean()),
            "ssim_vs_fp32": (float(ssim(as_2d(test), as_2d(ref), data_range=rng, window_size=window).mean())
                             if window else None),
            "max_abs_diff_vs_fp32_of_range": float((test - ref).abs().max()) / rng,
        }
    return out


def _tree_digest(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder``."""
    import hashlib

    out = {}
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        out[str(f.relative_to(folder))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def measure_expansion(
    raw: str | Path, recipe: str | Path, *, per_case: int = 1, processes: Sequence[int] = (1, 2),
    device: str | torch.device = "cpu", work: str | Path | None = None, seed: int = 0,
) -> dict[str, Any]:
    """Offline expansion (``synthaug expand``) of ``raw`` under ``torchrun --nproc_per_node N`` for each N, one torch
    thread per process: wall seconds, synthetic cases per second, speed-up over one process, and whether every
    output file is byte-identical (sha256) to the one-process run.

    With ``per_case > 1`` each process count also runs at one case per training case, and the two runs split the
    wall time into a fixed start-up (interpreter, imports, weights, process group, originals) and seconds per
    synthetic case (``seconds = startup + cases * per_case_seconds``): the steady-state speed-up is the ratio of the
    per-case seconds, which is what a large dataset sees.
    """
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    raw = Path(raw)
    meta = json.loads((raw / "dataset.json").read_text()) if (raw / "dataset.json").is_file() else None
    if meta is None:
        raise DataError(f"{raw} is not an nnU-Net raw dataset folder (no dataset.json).")
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        raise DataError(f"torchrun not found next to {sys.executable}; install torch's console scripts.")
    root = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="synthaug-expand-speed-"))
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    runs, digests = [], {}

    def run(n: int, pc: int) -> tuple[float, int, dict[str, str]]:
        out = root / f"p{n}_k{pc}" / raw.name
        if out.parent.exists():
            shutil.rmtree(out.parent)
        out.parent.mkdir(parents=True)
        cmd = [str(torchrun), "--standalone", "--nproc_per_node", str(int(n)), "-m", "synthaug.cli.main", "expand",
               "--dataset", str(raw), "--out", str(out), "--recipe", str(recipe), "--per-case", str(int(pc)),
               "--seed", str(int(seed)), "--device", str(device), "--quiet", "--no-preview"]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if res.returncode != 0:
            raise DataError(f"expansion with {n} process(es) failed: {res.stderr[-2000:]}")
        digest = _tree_digest(out)
        shutil.rmtree(out.parent, ignore_errors=True)
        return seconds, sum(1 for k in digest if k.startswith("synthaug_provenance/")), digest

    try:
        for n in processes:
            seconds, made, digests[n] = run(n, per_case)
            r: dict[str, Any] = {"processes": int(n), "seconds": seconds, "synthetic_cases": made,
                                 "cases_per_second": made / seconds if seconds > 0 else None}
            if per_case > 1:
                small_s, small_made, _ = run(n, 1)
                slope = (seconds - small_s) / (made - small_made) if made > small_made else None
                if slope is not None and slope <= 0:
                    slope = None  # the per-case time is below the timing noise of a whole command: not resolved
                r.update(seconds_one_per_case=small_s, per_case_seconds=slope,
                         startup_seconds=small_s - small_made * slope if slope is not None else None)
            runs.append(r)
    finally:
        if work is None:
            shutil.rmtree(root, ignore_errors=True)
    base = runs[0]
    for r in runs:
        r["speedup"] = base["seconds"] / r["seconds"] if r["seconds"] > 0 else None
        if r.get("per_case_seconds") and base.get("per_case_seconds"):
            r["steady_speedup"] = base["per_case_seconds"] / r["per_case_seconds"]
        r["byte_identical"] = digests[r["processes"]] == digests[base["processes"]]
    return {"dataset": str(raw), "recipe": str(recipe), "per_case": int(per_case), "files": len(digests[base["processes"]]),
            "runs": runs}


# ------------------------------------------------------------------------------------------ the benchmark


def _median(v: Sequence[float]) -> float:
    return float(statistics.median(v)) if v else float("nan")


def _iqr(v: Sequence[float]) -> list[float]:
    if len(v) < 2:
        return [v[0], v[0]] if v else [float("nan")] * 2
    q = statistics.quantiles(v, n=4)
    return [q[0], q[2]]


def _fit(mvox: Sequence[float], seconds: Sequence[float]) -> dict[str, float | None]:
    """``seconds = a + b * megavoxels`` (least squares, R^2) and the log-log exponent."""
    x, y = np.asarray(mvox, float), np.asarray(seconds, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return {"slope_ms_per_megavoxel": None, "intercept_ms": None, "r2": None, "exponent": None}
    b, a = np.polyfit(x, y, 1)
    pred = a + b * x
    ss = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else 1.0
    k = float(np.polyfit(np.log(x), np.log(y), 1)[0]) if (y > 0).all() else None
    return {"slope_ms_per_megavoxel": 1e3 * float(b), "intercept_ms": 1e3 * float(a), "r2": r2, "exponent": k}


def derive(rows: list[dict[str, Any]], matmul: Sequence[Mapping[str, Any]]) -> None:
    """Fill the derived fields of ``rows`` in place: FLOP/s, efficiency against the matmul peak timed in the same
    size block (same rounds, so the same machine load), and the ratios to the peers on the same data and size."""
    peaks = {tuple(m["size"]): m["flops_per_second"] for m in matmul}
    for row in rows:
        peak = peaks[tuple(row["size"])]
        row["peak_flops_per_second"] = peak
        s = row["seconds"]
        row["flops_per_second"] = row["total_flops"] / s if row["total_flops"] and s > 0 else None
        row["efficiency"] = row["flops_per_second"] / peak if row["flops_per_second"] else None
        if row["kind"] == "generator":
            if not row.get("generator_flops") and row.get("precision", "fp32") != "fp32":
                twin = next((r for r in rows if r["kind"] == "generator" and r["weights"] == row["weights"]
                             and r["size"] == row["size"] and r.get("precision", "fp32") == "fp32"), None)
                row["generator_flops"] = twin["generator_flops"] if twin else 0
            g = row["generator_seconds"]
            row["generator_flops_per_second"] = row["generator_flops"] / g if row["generator_flops"] and g > 0 else None
            row["generator_efficiency"] = row["generator_flops_per_second"] / peak if row["generator_flops_per_second"] else None
            for peer, label in ((TORCHIO, "torchio"), (MONAI, "monai"), (NNUNET, "nnunet"), (NNUNET_2D, "nnunet_2d")):
                ref = next((r for r in rows if r["transform"] == peer and r["size"] == row["size"]
                            and (peer in (NNUNET, NNUNET_2D) or r["data"] == row["data"])), None)
                row[f"ratio_to_{label}"] = row["ms_per_megavoxel"] / ref["ms_per_megavoxel"] if ref else None


def _select(weights: Sequence[str] | None) -> tuple[list[tuple[str, Any]], list[dict[str, str]]]:
    from synthaug.weights.registry import builtin_dir, card_of, list_weights

    known = {c.name: c for c in list_weights()}
    if weights is None:
        shipped = sorted(p.stem for p in (builtin_dir() / "cards").glob("*.json"))
        names = list(dict.fromkeys([*SHIPPED_GENERATORS, *shipped]))
    else:
        names = list(weights)
    chosen, skipped = [], []
    for name in names:
        if name not in known:
            skipped.append({"weights": name, "reason": "not in `synthaug weights list` (no such weights shipped or "
                                                       "on SYNTHAUG_WEIGHTS_PATH at run time)"})
            continue
        card = card_of(name)
        if card.family not in TRANSFORM_OF_FAMILY:
            skipped.append({"weights": name, "reason": f"family {card.family!r} has no generator transform"})
            continue
        chosen.append((name, card))
    return chosen, skipped


def measure_speed(
    sizes: Sequence[Sequence[int]] = DEFAULT_SIZES,
    *,
    weights: Sequence[str] | None = None,
    repeats: int = 5,
    warmup: int = 1,
    device: str | torch.device = "cpu",
    matmul_size: int | None = None,
    batch_size: int = 2,
    peers: bool = True,
    nnunet: bool = True,
    sources: Mapping[str, Source] | None = None,
    precisions: Sequence[str] | None = None,
    overhead: tuple[str | Path, str | Path] | None = None,
    expansion: tuple[str | Path, str | Path, int] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Interleaved, synchronised timings of every generator transform and its peers at each volume size.

    Args:
        sizes: volume sizes ``(X, Y, Z)``; slices for 2D generators run along Z.
        weights: weights names (default: every shipped ``context``/``style``/``translate`` generator plus the
            expected shipped names; names not in the registry are reported as skipped).
        repeats, warmup: measured and unmeasured rounds per size (every item once per round).
        matmul_size: edge of the fp32 ``torch.mm`` whose FLOP/s is the peak (default 2048 CPU, 8192 CUDA).
        batch_size: nnU-Net iteration batch (nnU-Net's 3d_fullres default: 2).
        peers, nnunet: include TorchIO/MONAI, and the nnU-Net iteration.
        sources: ``{weights name: Source}`` overriding :func:`default_source` (tests, your own data).
        precisions: generator inference precisions timed side by side (default fp32 and bf16; on CUDA also
            fp16); each reduced one also gets its PSNR/SSIM against the fp32 output of the same call.
        overhead: ``(preprocessed dataset, recipe)``: also measure the synthesis share of a real nnU-Net training
            iteration for 2d and 3d_fullres (:func:`synthaug.benchmark.overhead.measure_overhead`).
        expansion: ``(raw dataset, recipe, per_case)``: also measure offline expansion throughput with 1 and 2
            processes under torchrun (:func:`measure_expansion`).

    Returns ``{"settings", "peak_flops_per_second", "matmul", "rows", "growth", "skipped"}``; one row per
    item and size (see :func:`speed_markdown` for what the columns mean).
    """
    say = log or (lambda s: None)
    if repeats < 1 or warmup < 0:
        raise ValidationError(f"repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}.")
    sizes = [tuple(int(s) for s in size) for size in sizes]
    if not sizes or any(len(s) != 3 or min(s) < 1 for s in sizes):
        raise ValidationError(f"sizes must be (X, Y, Z) triples of positive integers, got {sizes}.")
    device = torch.device(device)
    n_mm = int(matmul_size or (8192 if device.type == "cuda" else 2048))
    if precisions is None:
        precisions = ("fp32", "bf16", "fp16") if device.type == "cuda" else ("fp32", "bf16")
    precisions = tuple(dict.fromkeys(["fp32", *precisions]))
    chosen, skipped = _select(weights)
    gens: list[tuple[str, Any, Source]] = []
    for name, card in chosen:
        try:
            src = sources[name] if sources is not None and name in sources else default_source(card)
        except SynthAugError as exc:
            skipped.append({"weights": name, "reason": f"no benchmark data: {exc}"})
            continue
        gens.append((name, card, src))
        say(f"[speed] {name}: {src.description}")
    if not gens:
        raise DataError(f"no generator to benchmark (skipped: {skipped}).")

    rows: list[dict[str, Any]] = []
    matmul: list[dict[str, Any]] = []
    for size in sizes:
        mvox = float(np.prod(size)) / 1e6
        items: list[_Item] = [_matmul_item(n_mm, device)]
        per_data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name, card, src in gens:
            if src.name not in per_data:
                per_data[src.name] = fit_to_size(src, size, device)
            image, label = per_data[src.name]
            for mode in precisions:
                items.append(_generator_item(name, card, image, label, src.name, device, mode))
        if peers:
            for data, (image, label) in per_data.items():
                items.append(_torchio_item(image, label, data))
                items.append(_monai_item(image, label, data, device))
        if nnunet:
            data, (image, label) = next(iter(per_data.items()))
            n_classes = int(max(int(lab.max()) for _, lab in per_data.values())) + 1
            items.append(_nnunet_item(image, label, n_classes, data, device, batch_size))
            items.append(_nnunet_item(image, label, n_classes, data, device, batch_size, configuration="2d"))
        t_size = time.perf_counter()
        with contextlib.ExitStack() as stack:
            for it in items:
                if it.timer is not None:
                    stack.enter_context(it.timer.installed())
            for r in range(warmup):
                for it in items:
                    it.run(r)
            for it in items:
                _instrumented(it, device, seed=warmup)
            quality = _precision_quality(items, seed=warmup)
            for r in range(repeats):
                for it in items:
                    _sync(device)
                    with record_phases(device) as rec:
                        t0 = time.perf_counter()
                        it.run(warmup + 1 + r)
                        _sync(device)
                        it.times.append(time.perf_counter() - t0)
                    if it.kind == "generator":
                        it.phases.append(dict(rec.seconds))
                        it.gen_times.append(rec.seconds.get("generator", 0.0))
        say(f"[speed] {'x'.join(map(str, size))}: {time.perf_counter() - t_size:.0f} s for {len(items)} items x "
            f"{warmup + 1 + repeats} calls")
        mm = items[0]
        mm_s = _median(mm.times)
        matmul.append({"size": list(size), "n": n_mm, "seconds": mm_s, "flops_per_second": 2 * n_mm**3 / mm_s,
                       "iqr": _iqr(mm.times)})
        for it in items[1:]:
            s = _median(it.times)
            row: dict[str, Any] = {
                "item": it.key, "kind": it.kind, "transform": it.transform, "weights": it.weights, "data": it.data,
                "size": list(size), "megavoxels": it.voxels / 1e6, "repeats": repeats, "seconds": s,
                "seconds_iqr": _iqr(it.times), "ms_per_megavoxel": 1e3 * s / (it.voxels / 1e6), "notes": it.notes,
                "total_flops": it.stats.get("total_flops", 0),
                "peak_memory_bytes": it.stats.get("peak_memory_bytes"),
                "memory_method": it.stats.get("memory_method"),
                "rss_peak_delta_bytes": it.stats.get("rss_peak_delta_bytes"),
                "size_megavoxels": mvox,
                "top_ops": it.stats.get("top_ops", []),
                "conv_share": it.stats.get("conv_share"),
            }
            if it.kind == "generator":
                g = _median(it.gen_times)
                names = list(dict.fromkeys(k for ph in it.phases for k in ph))
                phases = {k: _median([ph.get(k, 0.0) for ph in it.phases]) for k in names}
                row.update({
                    "precision": it.precision,
                    "generator_seconds": g, "generator_share": g / s if s > 0 else None,
                    "generator_flops": it.stats.get("generator_flops", 0),
                    "generator_calls": it.stats.get("generator_calls", 0),
                    "phases": phases,
                    "unmarked_seconds": max(0.0, s - sum(phases.values())),
                    "rendered_voxels": it.rendered,
                    "canvas_fill": it.voxels / it.rendered if it.rendered else None,
                    **quality.get(it.key, {}),
                })
            rows.append(row)
        del items, per_data
        if device.type == "cuda":
            torch.cuda.empty_cache()

    derive(rows, matmul)
    growth = []
    for key in dict.fromkeys(r["item"] for r in rows):
        rs = [r for r in rows if r["item"] == key]
        fit = _fit([r["megavoxels"] for r in rs], [r["seconds"] for r in rs])
        full = [r["ms_per_megavoxel"] for r in rs if r.get("canvas_fill") is not None and r["canvas_fill"] >= 0.999]
        spread = (max(full) - min(full)) / statistics.median(full) if len(full) >= 2 else None
        growth.append({"item": key, "kind": rs[0]["kind"], "ms_per_megavoxel": [r["ms_per_megavoxel"] for r in rs],
                       "sizes": [r["size"] for r in rs], "canvas_fill": [r.get("canvas_fill") for r in rs],
                       "spread_at_or_above_canvas": spread, **fit})
    iteration = []
    if overhead is not None:
        from synthaug.benchmark.overhead import measure_overhead

        preprocessed, recipe = overhead
        for configuration in ("2d", "3d_fullres"):
            say(f"[speed] nnU-Net iteration ratio ({configuration}) on {preprocessed}")
            iteration.append(measure_overhead(preprocessed, configuration, recipe, repeats=max(3, repeats),
                                              device=device))
    scaling = None
    if expansion is not None:
        raw, recipe, per_case = expansion
        say(f"[speed] expansion throughput with 1 and 2 processes on {raw}")
        scaling = measure_expansion(raw, recipe, per_case=per_case, device=device)
    return {
        "settings": {"device": str(device), "threads": torch.get_num_threads(), "sizes": [list(s) for s in sizes],
                     "repeats": repeats, "warmup": warmup, "matmul_size": n_mm, "batch_size": batch_size,
                     "nnunet_2d_batch_size": NNUNET_2D_BATCH, "precisions": list(precisions),
                     "torch": torch.__version__, "sources": {n: s.description for n, _, s in gens}},
        "iteration": iteration,
        "expansion": scaling,
        "peak_flops_per_second": _median([m["flops_per_second"] for m in matmul]),
        "matmul": matmul,
        "rows": rows,
        "growth": growth,
        "skipped": skipped,
    }


# ------------------------------------------------------------------------------------------ the report


def _f(v: Any, fmt: str = "{:.1f}", none: str = "-") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    return fmt.format(v)


def _mb(v: Any) -> str:
    return _f(None if v is None else v / 2**20, "{:.0f}")


def _size(s: Sequence[int]) -> str:
    return "x".join(str(int(v)) for v in s)


def speed_markdown(result: Mapping[str, Any], *, command: str, machine: str, date: str,
                   notes: Sequence[str] = ()) -> str:
    """The committed report: generator table, peer table, growth, efficiency and bottlenecks."""
    st = result["settings"]
    peak = result["peak_flops_per_second"]
    rows = result["rows"]
    gens = [r for r in rows if r["kind"] == "generator"]
    peers = [r for r in rows if r["kind"] != "generator"]
    mm = ", ".join(f"{_size(m['size'])} block: {m['flops_per_second'] / 1e9:.1f}" for m in result["matmul"])
    lines = [
        "# Synthesis speed: generator transforms vs TorchIO, MONAI and an nnU-Net iteration",
        "",
        f"Date: {date}. Machine: {machine}. Device: {st['device']}, torch threads {st['threads']}.",
        "",
        f"Command: `{command}`",
        "",
        f"Sizes {', '.join(_size(s) for s in st['sizes'])} (X x Y x Z voxels, one volume per call); "
        f"{st['warmup']} warm-up round(s), then one instrumented call (FLOPs, memory), then {st['repeats']} timed rounds; "
        "every item runs once per round, interleaved; medians.",
        "",
        f"**fp32 matmul peak** (`torch.mm` {st['matmul_size']}x{st['matmul_size']}, timed in every round): "
        f"{mm} GFLOP/s (median over the blocks {peak / 1e9:.1f}). Efficiencies divide by the peak of the same size "
        "block (timed in the same rounds, so under the same machine load).",
        "",
        "Data (labels are the generator's classes, images raw intensities): "
        + "; ".join(f"`{k}`: {v}" for k, v in st.get("sources", {}).items())
        + ". Each volume is cropped to its labelled bounding box and resampled to the size (labels nearest).",
        "",
        "## Generator transforms",
        "",
        "| transform [weights] | size | s / volume | ms / MVox | canvas fill | generator share | generator GFLOP | "
        "generator GFLOP/s | efficiency vs peak | peak memory (MiB) | RSS rise (MiB) | x TorchIO | x MONAI | "
        "x nnU-Net 3d_fullres iter | x nnU-Net 2d iter |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in gens:
        lines.append(
            f"| {r['item']} | {_size(r['size'])} | {r['seconds']:.3f} | {r['ms_per_megavoxel']:.0f} | "
            f"{_f(r.get('canvas_fill') and 100 * r['canvas_fill'], '{:.0f}%')} | "
            f"{_f(r.get('generator_share') and 100 * r['generator_share'], '{:.0f}%')} | "
            f"{_f(r.get('generator_flops') and r['generator_flops'] / 1e9, '{:.2f}')} | "
            f"{_f(r.get('generator_flops_per_second') and r['generator_flops_per_second'] / 1e9)} | "
            f"{_f(r.get('generator_efficiency') and 100 * r['generator_efficiency'], '{:.1f}%')} | "
            f"{_mb(r.get('peak_memory_bytes'))} | {_mb(r.get('rss_peak_delta_bytes'))} | "
            f"{_f(r.get('ratio_to_torchio'), '{:.2f}')} | {_f(r.get('ratio_to_monai'), '{:.2f}')} | "
            f"{_f(r.get('ratio_to_nnunet'), '{:.3f}')} | {_f(r.get('ratio_to_nnunet_2d'), '{:.3f}')} |"
        )
    lines += [
        "",
        "*canvas fill*: voxels of the volume over voxels the generator renders (slices padded to the card's training "
        "canvas and size divisor, or overlapping patches); below 100% the difference is padding the call pays for. "
        "*generator share*: fraction of the call spent in the frozen network's forward (the phase `generator`; the "
        "rest is itemised below). *generator GFLOP*: FLOPs of the plain network (the inference copy's rewrites are "
        "not counted). *Efficiency*: generator FLOPs / generator forward time / fp32 matmul peak of the same size "
        "block (for bf16/fp16 rows still the fp32 peak). *x peer*: time per megavoxel divided by the peer's on the "
        "same label map and size (> 1 = slower than the peer); for nnU-Net the iteration's megavoxels are the whole "
        f"batch ({st['batch_size']} volumes in 3d_fullres, {st.get('nnunet_2d_batch_size', '-')} slices in 2d), so the "
        "ratio is the time to synthesise every sample of a batch over one training iteration on it.",
        "",
        "## Peers and reference",
        "",
        "| item | size | s / call | ms / MVox | GFLOP | GFLOP/s | efficiency vs peak | peak memory (MiB) | RSS rise (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in peers:
        lines.append(
            f"| {r['item']} | {_size(r['size'])} | {r['seconds']:.3f} | {r['ms_per_megavoxel']:.0f} | "
            f"{_f(r['total_flops'] / 1e9 if r['total_flops'] else None, '{:.1f}')} | "
            f"{_f(r.get('flops_per_second') and r['flops_per_second'] / 1e9)} | "
            f"{_f(r.get('efficiency') and 100 * r['efficiency'], '{:.1f}%')} | "
            f"{_mb(r.get('peak_memory_bytes'))} | {_mb(r.get('rss_peak_delta_bytes'))} |"
        )
    notes_peer = sorted({f"{r['transform']}: {r['notes']}" for r in peers if r.get("notes")})
    lines += ["", *(f"- {n}" for n in notes_peer)]
    lines += [
        "",
        "## Growth with size",
        "",
        "Fit `seconds = a + b * megavoxels` over the sizes; *exponent*: slope of log(seconds) vs log(megavoxels) "
        "(1 = linear, < 1 = a fixed cost or padding dominates small sizes).",
        "",
        "| item | ms / MVox by size | canvas fill by size | spread at or above the canvas | slope (ms / MVox) | "
        "intercept (ms) | R^2 | exponent |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in result["growth"]:
        fills = g.get("canvas_fill") or []
        lines.append(
            f"| {g['item']} | {' / '.join(f'{v:.0f}' for v in g['ms_per_megavoxel'])} | "
            f"{' / '.join(_f(v and 100 * v, '{:.0f}%') for v in fills) if any(v is not None for v in fills) else '-'} | "
            f"{_f(g.get('spread_at_or_above_canvas') and 100 * g['spread_at_or_above_canvas'], '{:.0f}%')} | "
            f"{_f(g['slope_ms_per_megavoxel'], '{:.0f}')} | {_f(g['intercept_ms'], '{:.0f}')} | "
            f"{_f(g['r2'], '{:.3f}')} | {_f(g['exponent'], '{:.2f}')} |"
        )
    lines += ["", "*spread*: (max - min) / median of ms / MVox over the sizes whose canvas fill is 100% (target: "
                  "within +-15%, i.e. a spread under 30%)."]
    largest: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        if r["kind"] != "reference" and (r["item"] not in largest or r["megavoxels"] > largest[r["item"]]["megavoxels"]):
            largest[r["item"]] = r
    lines += [
        "",
        "## Where the time goes inside a call (largest size)",
        "",
        "Exclusive wall time of each marked phase of the call (`synthaug.inference.phases`, device synchronised at "
        "both ends), as a share of the call; *unmarked*: the rest (Python dispatch between phases).",
        "",
    ]
    phase_names = list(dict.fromkeys(k for r in largest.values() if r["kind"] == "generator" for k in r.get("phases", {})))
    if phase_names:
        lines += ["| item | s / call | " + " | ".join(phase_names) + " | unmarked |",
                  "|---|---|" + "---|" * (len(phase_names) + 1)]
        for key, r in largest.items():
            if r["kind"] != "generator":
                continue
            ph, total = r.get("phases", {}), r["seconds"] or 1.0
            cells = [_f(100 * ph[n] / total, "{:.1f}%") if n in ph else "-" for n in phase_names]
            lines.append(f"| {key} | {r['seconds']:.3f} | " + " | ".join(cells)
                         + f" | {_f(100 * r.get('unmarked_seconds', 0.0) / total, '{:.1f}%')} |")
    lines += [
        "",
        "## Efficiency against the matmul peak (largest size)",
        "",
        "Targets (issue 19): 2D generators >= 60% of the measured fp32 matmul peak, ResGAN >= 40%. An efficiency above "
        "100% means the reference is not the core's hardware peak: the reference is one `torch.mm` (fp32, the run's "
        "threads), which oneDNN convolutions can outrun, and bf16 rows are still divided by the fp32 reference; the "
        "generator FLOPs are also those of the plain network, so an inference copy that does less work shows as "
        "faster. *conv share*: share "
        "of the call's operator self time in convolution operators (torch.profiler, one separate untimed call); "
        "*top operators*: the largest operator self times of that call.",
        "",
        "| item | efficiency (generator forward) | efficiency (whole call) | conv share | top operators (self time) |",
        "|---|---|---|---|---|",
    ]
    for key, r in largest.items():
        if not r.get("total_flops"):
            continue
        ops = ", ".join(f"`{n}` {p:.0f}%" for n, p in r.get("top_ops", [])[:4])
        lines.append(
            f"| {key} | {_f(r.get('generator_efficiency') and 100 * r['generator_efficiency'], '{:.1f}%')} | "
            f"{_f(r.get('efficiency') and 100 * r['efficiency'], '{:.1f}%')} | "
            f"{_f(r.get('conv_share') and 100 * r['conv_share'], '{:.0f}%')} | {ops or '-'} |"
        )
    verdicts = []
    for key, r in largest.items():
        eff = r.get("generator_efficiency")
        if r["kind"] != "generator" or eff is None or r.get("precision", "fp32") != "fp32":
            continue
        target = 0.4 if "resgan" in str(r.get("weights", "")) else 0.6
        ph = {k: v for k, v in r.get("phases", {}).items() if k != "generator"}
        outside = 1 - (r.get("generator_share") or 0.0)
        top = sorted(ph.items(), key=lambda kv: -kv[1])[:3]
        where = ", ".join(f"{k} {100 * v / r['seconds']:.0f}%" for k, v in top if r["seconds"] > 0)
        verdicts.append(f"- {key}: generator forward at {100 * eff:.0f}% of the peak "
                        f"({'meets' if eff >= target else 'below'} the {100 * target:.0f}% target); "
                        f"{100 * outside:.0f}% of the call is outside the generator"
                        + (f" (largest measured phases: {where})." if where else "."))
    if verdicts:
        lines += ["", *verdicts]
    quality = [r for r in gens if r.get("precision", "fp32") != "fp32"]
    if quality:
        lines += [
            "",
            "## Reduced precision: speed and quality against fp32",
            "",
            "Same input and seed; `synthaug.networks.inference.precision(...)` around the call (autocast; outputs "
            "returned in float32). PSNR/SSIM of the reduced-precision output against the fp32 output, data range = "
            "the fp32 output's range.",
            "",
            "| item | size | s / volume | x fp32 time | PSNR vs fp32 (dB) | SSIM vs fp32 | max abs diff (of range) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in quality:
            ref = next((g for g in gens if g["weights"] == r["weights"] and g["size"] == r["size"]
                        and g.get("precision", "fp32") == "fp32"), None)
            lines.append(
                f"| {r['item']} | {_size(r['size'])} | {r['seconds']:.3f} | "
                f"{_f(ref and r['seconds'] / ref['seconds'], '{:.2f}')} | {_f(r.get('psnr_vs_fp32'), '{:.1f}')} | "
                f"{_f(r.get('ssim_vs_fp32'), '{:.4f}')} | {_f(r.get('max_abs_diff_vs_fp32_of_range'), '{:.1e}')} |"
            )
    if result.get("iteration"):
        lines += [
            "",
            "## Synthesis per nnU-Net training iteration (real trainer, recipe's probability)",
            "",
            "`synthaug.benchmark.overhead.measure_overhead`: nnU-Net's own `train_step` vs the synthesis hook of "
            "`nnUNetTrainerSynthAug` on the same batch, interleaved, medians. Target: <= 5% for 3d_fullres.",
            "",
            "| configuration | batch x patch | plain step (s) | synthesis, recipe (s) | ratio | synthesis, all samples (s) | ratio |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in result["iteration"]:
            lines.append(
                f"| {r['configuration']} | {r['batch_size']} x {'x'.join(map(str, r['patch_size']))} | "
                f"{r['plain_seconds']:.3f} | {r['synthesis_recipe_seconds']:.3f} | {100 * r['ratio_recipe']:.1f}% | "
                f"{r['synthesis_all_seconds']:.3f} | {100 * r['ratio_all']:.1f}% |"
            )
    exp = result.get("expansion")
    if exp:
        lines += [
            "",
            "## Offline expansion throughput (torchrun, 1 thread per process)",
            "",
            f"`synthaug expand` of `{exp['dataset']}` with `{exp['recipe']}`, {exp['per_case']} synthetic case(s) per "
            f"training case; outputs compared file by file with sha256 ({exp['files']} files). Target: 2 processes "
            ">= 1.8x one process, byte-identical."
            + (" *start-up* and *s / synthetic case*: the run above and one at one case per training case, fitted as "
               "`seconds = start-up + cases x s/case`; the steady-state speed-up (ratio of s / case) is what a dataset "
               "large enough to hide the start-up sees." if any(r.get("per_case_seconds") for r in exp["runs"]) else ""),
            "",
            "| processes | s | synthetic cases | cases / s | speed-up | start-up (s) | s / synthetic case | steady-state "
            "speed-up | byte-identical to 1 process |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in exp["runs"]:
            lines.append(f"| {r['processes']} | {r['seconds']:.1f} | {r['synthetic_cases']} | "
                         f"{_f(r['cases_per_second'], '{:.3f}')} | {_f(r['speedup'], '{:.2f}x')} | "
                         f"{_f(r.get('startup_seconds'))} | {_f(r.get('per_case_seconds'), '{:.3f}')} | "
                         f"{_f(r.get('steady_speedup'), '{:.2f}x')} | {'yes' if r['byte_identical'] else 'NO'} |")
    if result.get("skipped"):
        lines += ["", "## Skipped", ""] + [f"- `{s['weights']}`: {s['reason']}" for s in result["skipped"]]
    gen_notes = sorted({f"{r['item']}: {r['notes']}" for r in gens if r.get("notes")})
    mem = sorted({r["memory_method"] for r in rows if r.get("memory_method")})
    lines += [
        "",
        "## Notes",
        "",
        *(f"- {n}" for n in gen_notes),
        "- FLOPs: `torch.utils.flop_counter.FlopCounterMode` on the exact inputs of the instrumented call "
        "(matmul/convolution FLOPs only; normalisation, activations, noise, interpolation and indexing count 0). "
        "Generator FLOPs: the plain network's method the transform calls, counted in a separate call with the inference "
        "copy switched off (`synthaug.networks.inference.configure(optimise=False)`); generator time: the `generator` "
        "phase of the timed calls (the inference copy, `synthaug.networks.inference.infer`).",
        f"- Peak memory: {'; '.join(mem)}. RSS rise: process peak RSS (Linux VmHWM, reset before the call) minus RSS "
        "before it; it includes numpy and allocator caching, and memory freed earlier can be reused without a rise.",
        "- Timings are medians of interleaved rounds (whether the machine was quiet is for the run's own note to say); "
        "ratios measured side by "
        "side are more stable than the absolute times.",
        *(f"- {n}" for n in notes),
    ]
    return "\n".join(lines) + "\n"
