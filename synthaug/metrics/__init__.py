"""Quality metrics used by evaluation and benchmarks (distribution distance, image similarity)."""

from synthaug.metrics.distribution import RandomFeatureExtractor, frechet_distance, kernel_distance

__all__ = ["RandomFeatureExtractor", "frechet_distance", "kernel_distance"]
