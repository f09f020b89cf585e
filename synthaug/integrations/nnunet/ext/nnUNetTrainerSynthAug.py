"""Thin re-export for nnU-Net's trainer lookup (nnUNet_extTrainer); the code lives in synthaug."""

from synthaug.integrations.nnunet.trainer import nnUNetTrainerSynthAug

__all__ = ["nnUNetTrainerSynthAug"]
