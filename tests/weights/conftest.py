import pytest
import torch

from synthaug.intensity import IntensityConvention
from synthaug.networks.context import ContextGenerator
from synthaug.weights.card import FeatureSpec, ModelCard


@pytest.fixture
def tiny_context():
    torch.manual_seed(0)
    args = {"n_labels": 3, "n_features": 2, "variant": "p2pf", "spatial_dims": 2, "widths": [4, 8], "fusion_widths": [4]}
    net = ContextGenerator(**args)
    card = ModelCard(
        name="tiny",
        family="context",
        architecture="context_generator",
        arguments=args,
        spatial_dims=2,
        in_channels=3,
        out_channels=1,
        intensity=IntensityConvention.ct_window().to_dict(),
        labels=("background", "a", "b"),
        features=FeatureSpec(names=("mean", "entropy")),
        training_cases=("ctA_z000-009",),
    )
    return net, card
