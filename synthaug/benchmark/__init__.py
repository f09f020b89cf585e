"""Benchmarks: downstream nnU-Net Dice per augmentation arm, synthesis speed, and nnU-Net overhead.

- :mod:`synthaug.benchmark.overhead`: what synthesis adds to one nnU-Net training iteration.

Every report carries the exact command and a machine line; the committed reports live in
``benchmarks/results/``.
"""
