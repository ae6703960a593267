"""Corruption models that turn clean images into the noisy half of a training pair.

All functions take images as float32 in [0, 1] and a NumPy ``Generator`` so that the
same seed gives the same noise, byte for byte.
"""

from __future__ import annotations

import numpy as np

NOISE_KINDS = ("gaussian",)


def gaussian(x: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """``clip(x + factor * N(0, 1), 0, 1)`` — the reference denoising corruption."""
    noise = rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(x + np.float32(factor) * noise, 0.0, 1.0).astype(np.float32, copy=False)


def corrupt(x: np.ndarray, kind: str, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Apply the corruption ``kind`` at level ``factor`` to images ``x`` (float32, [0, 1])."""
    if kind == "gaussian":
        return gaussian(x, factor, rng)
    raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
