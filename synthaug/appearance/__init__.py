"""synthaug.appearance: randomised and simulated per-region appearance for domain-randomised synthesis.

- :mod:`synthaug.appearance.remap` - random per-region transfer functions applied to real images
  (:func:`sample_appearance`, :func:`remap_appearance`): the targets of appearance-randomised generators.
- :mod:`synthaug.appearance.requests` - per-region feature requests for a ConText-GAN generator drawn from
  an appearance record (what a transform's appearance-sampling mode calls).
- :mod:`synthaug.appearance.physics` - simulated MR of a super-class label map (spin echo, spoiled gradient
  echo, in/opposed phase) from literature tissue parameters: a physics prior for MR appearance.
- :mod:`synthaug.appearance.contrast_phase` - per-region CT attenuation of the super-classes in each contrast
  phase (non-contrast, arterial, portal venous, delayed): a prior for unseen contrast phases within CT.
"""

from synthaug.appearance.contrast_phase import (
    PHASE_HU,
    PHASES,
    ContrastPhaseDraw,
    contrast_phase_image,
    phase_region_hu,
    sample_contrast_phase,
)
from synthaug.appearance.remap import (
    KINDS,
    AppearanceParams,
    AppearanceRanges,
    RegionAppearance,
    draw_region_appearance,
    remap_appearance,
    sample_appearance,
)
from synthaug.appearance.requests import (
    PhysicsDraw,
    appearance_requests,
    check_requests,
    clip_requests,
    measure_requests,
    physics_region_means,
    physics_requests,
    render_physics,
    sample_physics,
)

__all__ = [
    "PHASES",
    "PHASE_HU",
    "ContrastPhaseDraw",
    "contrast_phase_image",
    "phase_region_hu",
    "sample_contrast_phase",
    "KINDS",
    "AppearanceParams",
    "AppearanceRanges",
    "RegionAppearance",
    "draw_region_appearance",
    "remap_appearance",
    "sample_appearance",
    "PhysicsDraw",
    "appearance_requests",
    "check_requests",
    "clip_requests",
    "measure_requests",
    "physics_region_means",
    "physics_requests",
    "render_physics",
    "sample_physics",
]
