"""Human-readable Markdown model cards rendered from the typed :class:`ModelCard`.

The sections follow the model-card convention (Mitchell et al. 2019, "Model Cards for Model Reporting"):
intended use, out-of-scope use, limitations, model details, training data and its licence, measured figures.
``docs/model_cards/*.md`` are written by :func:`write_markdown_cards` (``synthaug weights docs --out
docs/model_cards``) and a test keeps them equal to the shipped cards.
"""

from __future__ import annotations

import json
from pathlib import Path

from synthaug.weights.card import DataSource, ModelCard

__all__ = ["card_to_markdown", "write_markdown_cards"]


def _fmt(value: object) -> str:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{value[0]:.3f} ± {value[1]:.3f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def _mm(spacing: tuple[float, ...]) -> str:
    return " x ".join(f"{v:g}" for v in spacing) + " mm" if spacing else "not recorded"


def _intensity(card: ModelCard) -> str:
    window = card.hu_window
    if window is not None:
        return f"CT window [{window[0]:g}, {window[1]:g}] HU -> [-1, 1] (values outside are clipped)"
    conv = card.intensity_convention
    return f"per-volume {conv.low:g}-{conv.high:g} percentile range -> [-1, 1] (output mapped back to the input's scale)"


def _bullets(items: tuple[str, ...]) -> list[str]:
    return [f"- {item}" for item in items] or ["- (not stated)"]


def _source(src: DataSource) -> list[str]:
    rows = [
        f"### {src.name}{' (SIMULATED)' if src.simulated else ''}",
        "",
        src.description,
        "",
        "| field | value |",
        "|---|---|",
        f"| modality | {src.modality}{f', {src.contrast}' if src.contrast else ''} |",
        f"| native spacing | {_mm(src.spacing)} |",
        f"| cases used for training | {', '.join(src.cases) or '-'} |",
        f"| labels | {src.labels or 'none seen by the network'} |",
        f"| origin | {src.origin} |",
        f"| licence | {src.licence} |",
        "",
    ]
    return rows


def card_to_markdown(card: ModelCard) -> str:
    """A Markdown model card: use and limits first, then what it is, what it was trained on, how good it is."""
    t = card.training
    u = card.usage
    contrast = card.ct_contrast
    lines = [
        f"# Model card: `{card.name}`",
        "",
        "**Not for clinical use.** A research artefact for data augmentation; never use its outputs for diagnosis, "
        "treatment or any decision about a patient.",
        "",
        card.notes or "",
        "",
        "## Intended use",
        "",
        u.intended_use or "(not stated)",
        "",
        "## Out-of-scope use",
        "",
        *_bullets(u.out_of_scope_use),
        "",
        "## Limitations",
        "",
        *_bullets(u.limitations),
        "",
        "## Model details",
        "",
        "| field | value |",
        "|---|---|",
        f"| family | {card.family} |",
        f"| architecture | `{card.architecture}` {json.dumps(card.arguments)} |",
        f"| spatial dims / channels | {card.spatial_dims}D, {card.in_channels} in -> {card.out_channels} out |",
        f"| modality | {card.modality or f'{card.source_modality} -> {card.target_modality}'} |",
        f"| intensity convention | {_intensity(card)} |",
        f"| CT contrast phase seen in training | {', '.join(contrast) if contrast else 'no CT in training'} |",
        f"| training spacing | {_mm(card.spacing)} |",
        f"| labels ({card.n_labels}) | {', '.join(f'{i}={n}' for i, n in enumerate(card.labels)) or '-'} |",
        f"| texture features | {', '.join(card.features.names) or '-'} (bins {card.features.bins}) |",
        f"| inference | canvas {list(card.inference.canvas) or '-'}, size divisor {card.inference.divisor}, "
        f"patch {list(card.inference.patch) or '-'}, latent {card.inference.noise.z_dim}, "
        f"voxel-noise channels {card.inference.noise.pixel_channels} |",
        f"| licence of the weights | {card.licence or '(not stated)'} |",
        f"| file sha256 | `{card.sha256}` |",
        f"| tensor content hash | `{card.tensor_sha256 or '(none embedded)'}` |",
        "",
        "## Training data",
        "",
    ]
    for src in card.training_data:
        lines += _source(src)
    lines += [
        "| training | value |",
        "|---|---|",
        f"| training cases | {', '.join(card.training_cases)} |",
        f"| held-out cases (never trained on) | {', '.join(t.get('heldout_cases', [])) or '-'} |",
        f"| label source | {t.get('label_source', '-')} |",
        f"| run | {t.get('iterations')} iterations, {t.get('seconds')} s on {t.get('machine')} ({t.get('date', '')}) |",
        "",
    ]
    if card.metrics:
        lines += ["## Metrics (held-out)", "", "| metric | value |", "|---|---|"]
        skip = {"weights", "data", "variant", "heldout_cases", "training_seconds", "iterations", "parameters"}
        for k, v in card.metrics.items():
            if k not in skip:
                lines.append(f"| {k} | {_fmt(v)} |")
        lines.append("")
    if t.get("config"):
        lines += ["## Training configuration", "", "```json", json.dumps(t["config"], indent=2), "```", ""]
    return "\n".join(lines)


def write_markdown_cards(out_dir: Path) -> list[Path]:
    """Write ``<name>.md`` for every shipped weights entry into ``out_dir``; return the paths written."""
    from synthaug.weights.registry import builtin_dir, card_of, list_weights

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for card in list_weights():
        if not (builtin_dir() / "cards" / f"{card.name}.json").is_file():
            continue
        path = out_dir / f"{card.name}.md"
        path.write_text(card_to_markdown(card_of(card.name)) + "\n")
        written.append(path)
    return written
