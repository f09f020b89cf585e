"""synthaug.features: per-region texture features (mean, std, entropy, gradient, ...) and feature maps.

- :func:`region_features` - ``(B, N_F, N_L)`` features of every region, hard or soft (differentiable).
- :func:`feature_maps` - ``(B, N_F, N_L, *spatial)`` conditioning maps (value inside its region).
- :func:`normalise_features` / :func:`denormalise_features` - raw units <-> 0..100.
- :func:`register_feature` / :func:`get_feature` / :func:`available_features` - the feature registry.
"""

from synthaug.features.maps import denormalise_features, feature_bounds, feature_maps, normalise_features
from synthaug.features.region import RegionFeatures, region_features  # registers built-ins
from synthaug.features.registry import (
    FeatureSpec,
    available_features,
    get_feature,
    register_feature,
    unregister_feature,
)
from synthaug.features.stats import RegionStats

__all__ = [
    "FeatureSpec",
    "RegionFeatures",
    "RegionStats",
    "available_features",
    "denormalise_features",
    "feature_bounds",
    "feature_maps",
    "get_feature",
    "normalise_features",
    "region_features",
    "register_feature",
    "unregister_feature",
]
