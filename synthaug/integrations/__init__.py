"""Thin adapters to MONAI, TorchIO and nnU-Net; each module imports its framework on first use.

- :mod:`synthaug.integrations.monai` - MONAI array and dictionary forms of every registered transform;
- :mod:`synthaug.integrations.torchio` - TorchIO random forms of every registered transform + the deterministic
  twin :class:`~synthaug.integrations.torchio.SynthAugReplay`;
- :mod:`synthaug.integrations.nnunet` - the ``nnUNetTrainerSynthAug`` trainer and nnU-Net's normalisation mapping.

The faces are generated from :mod:`synthaug.recipes.registry` (one declaration per transform); the engine
(recipes, batch synthesis, expansion) is :mod:`synthaug.recipes`.
"""
