"""Human-readable Markdown model cards rendered from the typed :class:`ModelCard`."""

from __future__ import annotations

import json

from synthaug.weights.card import ModelCard

__all__ = ["card_to_markdown"]


def _fmt(value: object) -> str:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{value[0]:.3f} ± {value[1]:.3f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def card_to_markdown(card: ModelCard) -> str:
    """A Markdown model card: what it is, what it expects, what it was trained on, how good it is."""
    t = card.training
    lines = [
        f"# Model card: `{card.name}`",
        "",
        card.notes or "",
        "",
        "| field | value |",
        "|---|---|",
        f"| family | {card.family} |",
        f"| architecture | `{card.architecture}` {json.dumps(card.arguments)} |",
        f"| spatial dims / channels | {card.spatial_dims}D, {card.in_channels} in -> {card.out_channels} out |",
        f"| modality | {card.modality or f'{card.source_modality} -> {card.target_modality}'} |",
        f"| intensity convention | {card.intensity} |",
        f"| spacing (mm, in-plane) | {list(card.spacing) or 'native grid of the training data'} |",
        f"| labels ({card.n_labels}) | {', '.join(f'{i}={n}' for i, n in enumerate(card.labels))} |",
        f"| texture features | {', '.join(card.features.names) or '-'} (bins {card.features.bins}) |",
        f"| inference | canvas {list(card.inference.canvas) or '-'}, size divisor {card.inference.divisor}, "
        f"patch {list(card.inference.patch) or '-'}, latent {card.inference.noise.z_dim}, "
        f"voxel-noise channels {card.inference.noise.pixel_channels} |",
        f"| training cases | {', '.join(card.training_cases)} |",
        f"| held-out cases (never trained on) | {', '.join(t.get('heldout_cases', [])) or '-'} |",
        f"| label source | {t.get('label_source', '-')} |",
        f"| training | {t.get('iterations')} iterations, {t.get('seconds')} s on {t.get('machine')} ({t.get('date', '')}) |",
        f"| file sha256 | `{card.sha256}` |",
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
