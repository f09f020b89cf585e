"""Adapters to MONAI, TorchIO and nnU-Net. Each module imports its framework on first use.

- :mod:`synthaug.integrations.monai_transforms` - MONAI array and dictionary transforms.
- :mod:`synthaug.integrations.torchio_transforms` - TorchIO random transforms + deterministic twins.
"""
