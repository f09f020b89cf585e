"""Synthesis speed of every shipped generator transform, side by side with its peers, in one run.

For each transform x generator (``ContextTextureSynth`` with the ``context`` weights, ``StyleSwap`` with
``style`` weights, ``ModalityTranslate`` with ``translate`` weights) and each volume size, on one device:

- **time per megavoxel** of one call on a single volume (median of ``repeats``), and of the frozen
  generator's forward calls inside it (the network method is wrapped with a synchronised timer);
- **growth with size**: a least-squares fit of ``seconds = a + b * megavoxels`` and of the log-log
  exponent (1 = linear);
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
  ratio compares the same number of voxels, i.e. synthesising every volume of the batch vs one iteration).

The real label maps (and images) come from the data each generator was trained on (``card.training.config.data``):
the largest training volume, cropped to its labelled bounding box and resampled to each size (labels nearest
neighbour, images trilinear). All items of one size run interleaved, round after round (matmul, generators,
peers, nnU-Net), so a shared machine's load hits them alike; medians are reported.

Python::

    from synthaug.benchmark.speed import measure_speed, speed_markdown
    result = measure_speed([(64, 64, 16), (96, 96, 24)], repeats=3)

Command line: ``synthaug benchmark speed --out benchmarks/results/speed --threads 1``.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthaug._optional import require
from synthaug.errors import DataError, SynthAugError, ValidationError
from synthaug.transforms.slicewise import resolve_chunk

__all__ = [
    "DEFAULT_SIZES",
    "SHIPPED_GENERATORS",
    "Source",
    "default_source",
    "derive",
    "fit_to_size",
    "measure_speed",
    "speed_markdown",
]

DEFAULT_SIZES: tuple[tuple[int, int, int], ...] = ((64, 64, 16), (96, 96, 24), (128, 128, 32))
SHIPPED_GENERATORS: tuple[str, ...] = ("context_ct_a", "context_mni", "style_ct_a", "translate_brain_pd_t2_resgan")
TRANSFORM_OF_FAMILY = {"context": "ContextTextureSynth", "style": "StyleSwap", "translate": "ModalityTranslate"}
_GENERATOR_METHOD = {"context": "forward", "style": "render", "translate": "forward"}
TORCHIO, MONAI, NNUNET, MATMUL = "TorchIO RandomLabelsToImage", "MONAI Rand3DElasticd", "nnU-Net iteration", "fp32 matmul"


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
    times: list[float] = field(default_factory=list)
    gen_times: list[float] = field(default_factory=list)
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
            stats["conv_seconds_profiled"] = sum(t for k, t in times if _is_conv(k)) / 1e6
        except Exception:  # a report extra: never fail the benchmark on it
            stats["top_ops"] = []
    # 2. FLOPs on the exact inputs
    if item.timer is not None:
        item.timer.reset()
        item.timer.count_flops = True
    try:
        with FlopCounterMode(display=False) as fc:
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


def _generator_item(name: str, card: Any, image: torch.Tensor, label: torch.Tensor, data: str,
                    device: torch.device) -> _Item:
    from synthaug.weights.registry import load

    family = card.family
    net, _ = load(name, device=device, dtype=torch.float32)
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
    return _Item(f"{transform} [{name}]", "generator", run, int(image[0, 0].numel()), data=data,
                 transform=transform, weights=name, timer=timer, notes=notes)


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
    """``PlainConvUNet`` with nnU-Net's default 3d_fullres topology for ``patch``: (network, pooling strides,
    the patch nnU-Net would use: ``patch`` padded up to a multiple of the total pooling)."""
    require("nnunetv2")
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    _, pool, conv, shape, _ = get_pool_and_conv_props(tuple(spacing), tuple(patch), 4, 999999)
    n = len(conv)
    net = PlainConvUNet(
        1, n, [min(32 * 2**i, 320) for i in range(n)], torch.nn.Conv3d, conv, pool, 2, n_classes, 2, True,
        torch.nn.InstanceNorm3d, {"eps": 1e-5, "affine": True}, None, None, torch.nn.LeakyReLU, {"inplace": True},
        deep_supervision=True,
    )
    return net, [[int(v) for v in p] for p in pool], tuple(int(v) for v in shape)


def _nnunet_item(image: torch.Tensor, label: torch.Tensor, n_classes: int, data: str, device: torch.device,
                 batch_size: int) -> _Item:
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    net, pool, patch = nnunet_network(tuple(image.shape[2:]), n_classes)
    net = net.to(device)
    if patch != tuple(image.shape[2:]):  # nnU-Net pads patches to a multiple of its pooling
        image = F.interpolate(image, size=patch, mode="trilinear", align_corners=False)
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
    data_batch = x.repeat(batch_size, 1, 1, 1, 1).contiguous()
    lab = label.float().repeat(batch_size, 1, 1, 1, 1)
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
    return _Item(NNUNET, "peer", run, int(image[0, 0].numel()) * batch_size, data=data, transform=NNUNET,
                 notes=f"PlainConvUNet (nnU-Net 3d_fullres rules, {stages} stages), batch {batch_size}, "
                       f"Dice+CE deep supervision, SGD step"
                       f"{' (AMP)' if amp else ' (fp32)'}")


def _matmul_item(n: int, device: torch.device) -> _Item:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device)
    b = torch.randn(n, n, generator=g).to(device)
    return _Item(MATMUL, "reference", lambda seed: torch.mm(a, b), 0, transform=f"torch.mm {n}x{n} fp32")


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
        cs = row.get("conv_seconds_profiled")
        # FLOP/s inside the convolution kernels alone (their self time under the profiler; FLOPs are conv/matmul)
        row["conv_kernel_efficiency"] = row["total_flops"] / cs / peak if row["total_flops"] and cs else None
        if row["kind"] == "generator":
            g = row["generator_seconds"]
            row["generator_flops_per_second"] = row["generator_flops"] / g if row["generator_flops"] and g > 0 else None
            row["generator_efficiency"] = row["generator_flops_per_second"] / peak if row["generator_flops_per_second"] else None
            for peer, label in ((TORCHIO, "torchio"), (MONAI, "monai"), (NNUNET, "nnunet")):
                ref = next((r for r in rows if r["transform"] == peer and r["size"] == row["size"]
                            and (peer == NNUNET or r["data"] == row["data"])), None)
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
            items.append(_generator_item(name, card, image, label, src.name, device))
        if peers:
            for data, (image, label) in per_data.items():
                items.append(_torchio_item(image, label, data))
                items.append(_monai_item(image, label, data, device))
        if nnunet:
            data, (image, label) = next(iter(per_data.items()))
            n_classes = int(max(int(lab.max()) for _, lab in per_data.values())) + 1
            items.append(_nnunet_item(image, label, n_classes, data, device, batch_size))
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
            for r in range(repeats):
                for it in items:
                    if it.timer is not None:
                        it.timer.reset()
                    _sync(device)
                    t0 = time.perf_counter()
                    it.run(warmup + 1 + r)
                    _sync(device)
                    it.times.append(time.perf_counter() - t0)
                    if it.timer is not None:
                        it.gen_times.append(it.timer.seconds)
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
                "conv_seconds_profiled": it.stats.get("conv_seconds_profiled"),
            }
            if it.timer is not None:
                g = _median(it.gen_times)
                row.update({
                    "generator_seconds": g, "generator_share": g / s if s > 0 else None,
                    "generator_flops": it.stats.get("generator_flops", 0),
                    "generator_calls": it.stats.get("generator_calls", 0),
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
        growth.append({"item": key, "kind": rs[0]["kind"], "ms_per_megavoxel": [r["ms_per_megavoxel"] for r in rs],
                       "sizes": [r["size"] for r in rs], **fit})
    return {
        "settings": {"device": str(device), "threads": torch.get_num_threads(), "sizes": [list(s) for s in sizes],
                     "repeats": repeats, "warmup": warmup, "matmul_size": n_mm, "batch_size": batch_size,
                     "torch": torch.__version__, "sources": {n: s.description for n, _, s in gens}},
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
        "| transform [weights] | size | s / volume | ms / MVox | generator share | generator GFLOP | generator GFLOP/s | "
        "efficiency vs peak | peak memory (MiB) | RSS rise (MiB) | x TorchIO | x MONAI | x nnU-Net iter |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in gens:
        lines.append(
            f"| {r['item']} | {_size(r['size'])} | {r['seconds']:.3f} | {r['ms_per_megavoxel']:.0f} | "
            f"{_f(r.get('generator_share') and 100 * r['generator_share'], '{:.0f}%')} | "
            f"{_f(r.get('generator_flops') and r['generator_flops'] / 1e9, '{:.2f}')} | "
            f"{_f(r.get('generator_flops_per_second') and r['generator_flops_per_second'] / 1e9)} | "
            f"{_f(r.get('generator_efficiency') and 100 * r['generator_efficiency'], '{:.1f}%')} | "
            f"{_mb(r.get('peak_memory_bytes'))} | {_mb(r.get('rss_peak_delta_bytes'))} | "
            f"{_f(r.get('ratio_to_torchio'), '{:.2f}')} | {_f(r.get('ratio_to_monai'), '{:.2f}')} | "
            f"{_f(r.get('ratio_to_nnunet'), '{:.3f}')} |"
        )
    lines += [
        "",
        "*generator share*: fraction of the call spent in the frozen network's forward (the rest: intensity fit, "
        "label deformation, feature measurement, padding, calibration, patch gathering/averaging). *Efficiency*: "
        "generator FLOPs / generator forward time / matmul peak of the same size block. *x peer*: time per megavoxel divided by the peer's on "
        "the same label map and size (> 1 = slower than the peer); for nnU-Net the iteration's megavoxels are the "
        f"whole batch ({st['batch_size']} volumes), so the ratio is the time to synthesise every volume of a batch over "
        "one training iteration on it.",
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
        "| item | ms / MVox by size | slope (ms / MVox) | intercept (ms) | R^2 | exponent |",
        "|---|---|---|---|---|---|",
    ]
    for g in result["growth"]:
        lines.append(
            f"| {g['item']} | {' / '.join(f'{v:.0f}' for v in g['ms_per_megavoxel'])} | "
            f"{_f(g['slope_ms_per_megavoxel'], '{:.0f}')} | {_f(g['intercept_ms'], '{:.0f}')} | "
            f"{_f(g['r2'], '{:.3f}')} | {_f(g['exponent'], '{:.2f}')} |"
        )
    largest: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        if r["kind"] != "reference" and (r["item"] not in largest or r["megavoxels"] > largest[r["item"]]["megavoxels"]):
            largest[r["item"]] = r
    lines += [
        "",
        "## Efficiency against the matmul peak, and where the time goes (largest size)",
        "",
        "Target: generator inference at or above 50% of the measured fp32 matmul peak. *conv share*: share of the "
        "call's operator self time spent in convolution operators (torch.profiler, separate untimed call); *conv-kernel "
        "efficiency*: the call's FLOPs over that convolution time, against the peak (how fast the convolutions "
        "themselves run, without the layers around them).",
        "",
        "| item | efficiency (generator forward) | efficiency (whole call) | conv share | conv-kernel efficiency | top operators (self time) |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in largest.items():
        if not r.get("total_flops"):
            continue
        ops = ", ".join(f"`{n}` {p:.0f}%" for n, p in r.get("top_ops", [])[:4])
        lines.append(
            f"| {key} | {_f(r.get('generator_efficiency') and 100 * r['generator_efficiency'], '{:.1f}%')} | "
            f"{_f(r.get('efficiency') and 100 * r['efficiency'], '{:.1f}%')} | "
            f"{_f(r.get('conv_share') and 100 * r['conv_share'], '{:.0f}%')} | "
            f"{_f(r.get('conv_kernel_efficiency') and 100 * r['conv_kernel_efficiency'], '{:.0f}%')} | {ops or '-'} |"
        )
    verdicts = []
    for key, r in largest.items():
        eff = r.get("generator_efficiency")
        if r["kind"] != "generator" or eff is None:
            continue
        if eff >= 0.5:
            verdicts.append(f"- {key}: {100 * eff:.0f}% of the peak: meets the 50% target.")
            continue
        ck, share = r.get("conv_kernel_efficiency"), r.get("conv_share")
        why = []
        if ck is not None and ck < 0.5:
            why.append(f"the convolutions themselves run at {100 * ck:.0f}% of the peak (narrow layers: few channels "
                       "per convolution give oneDNN little work per weight load; 3D kernels on small patches)")
        if share is not None and share < 0.7:
            why.append(f"{100 * (1 - share):.0f}% of the self time is outside convolutions (normalisation, "
                       "activations, copies, padding, indexing: memory-bound work that adds time but no counted FLOPs)")
        if r.get("generator_share") is not None and r["generator_share"] < 0.8:
            why.append(f"{100 * (1 - r['generator_share']):.0f}% of the call is outside the generator "
                       "(intensity fit, deformation, feature measurement, calibration, patch gathering)")
        verdicts.append(f"- {key}: {100 * eff:.0f}% of the peak, below the 50% target"
                        + (": " + "; ".join(why) + "." if why else "."))
    if verdicts:
        lines += ["", *verdicts]
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
        "Generator FLOPs/time: only inside the network method the transform calls (wrapped with a synchronised timer).",
        f"- Peak memory: {'; '.join(mem)}. RSS rise: process peak RSS (Linux VmHWM, reset before the call) minus RSS "
        "before it; it includes numpy and allocator caching, and memory freed earlier can be reused without a rise.",
        "- Timings are medians of interleaved rounds on a machine shared with other jobs; ratios measured side by "
        "side are more stable than the absolute times.",
        *(f"- {n}" for n in notes),
    ]
    return "\n".join(lines) + "\n"
