"""Corruption models that turn clean images into the noisy half of a training pair.

All functions take images as float32 in [0, 1] of shape (N, H, W, C), a level
``factor`` and a NumPy ``Generator``, so that the same seed gives the same noise,
byte for byte. What ``factor`` means depends on the kind:

==============  ==============================================================
``gaussian``    ``clip(x + factor·N(0, 1), 0, 1)`` — additive, std ``factor``
``speckle``     ``clip(x + factor·x·N(0, 1), 0, 1)`` — multiplicative
``poisson``     shot noise with ``1/factor²`` photons at full intensity, so the
                noise std at a white pixel is ``factor`` (as for ``gaussian``)
``salt_pepper`` a fraction ``factor`` of pixels set to 0 or 1 (half each)
``masking``     a fraction ``factor`` of pixels (or of ``block``×``block``
                blocks) dropped to 0
==============  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from cae.config import NOISE_KINDS


def gaussian(x: np.ndarray, factor: float, rng: np.random.Generator, block: int = 1) -> np.ndarray:
    noise = rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(x + np.float32(factor) * noise, 0.0, 1.0)


def noisy_inputs(
    train: np.ndarray, val: np.ndarray, factor: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The inputs of a model trained to denoise clean ``train`` / ``val`` images: Gaussian
    noise of std ``factor`` on each (drawn in that order from ``rng``), or the images
    themselves when ``factor`` is 0."""
    if factor <= 0:
        return train, val
    return gaussian(train, factor, rng), gaussian(val, factor, rng)


def speckle(x: np.ndarray, factor: float, rng: np.random.Generator, block: int = 1) -> np.ndarray:
    noise = rng.standard_normal(x.shape, dtype=np.float32)
    return np.clip(x + np.float32(factor) * x * noise, 0.0, 1.0)


def poisson(x: np.ndarray, factor: float, rng: np.random.Generator, block: int = 1) -> np.ndarray:
    if factor == 0:
        return x.copy()
    peak = 1.0 / factor**2
    return np.clip(rng.poisson(x.astype(np.float64) * peak) / peak, 0.0, 1.0).astype(np.float32)


def salt_pepper(x: np.ndarray, factor: float, rng: np.random.Generator, block: int = 1) -> np.ndarray:
    u = rng.random(x.shape[:3] + (1,), dtype=np.float32)  # same pixels in every channel
    out = x.copy()
    out[np.broadcast_to(u < factor / 2, x.shape)] = 0.0
    out[np.broadcast_to((u >= factor / 2) & (u < factor), x.shape)] = 1.0
    return out


def masking(x: np.ndarray, factor: float, rng: np.random.Generator, block: int = 1) -> np.ndarray:
    n, h, w, _ = x.shape
    hb, wb = -(-h // block), -(-w // block)
    drop = rng.random((n, hb, wb, 1), dtype=np.float32) < factor
    drop = np.repeat(np.repeat(drop, block, axis=1), block, axis=2)[:, :h, :w]
    return np.where(drop, np.float32(0.0), x)


# Each kind of cae.config.NOISE_KINDS (the names noise.kind accepts) is the function of that name.
NOISE: dict[str, Callable[..., np.ndarray]] = {kind: globals()[kind] for kind in NOISE_KINDS}


def corrupt(x: np.ndarray, kind: str, factor: float, rng: np.random.Generator, block: int = 1) -> np.ndarray:
    """Apply the corruption ``kind`` at level ``factor`` to images ``x`` (float32, [0, 1])."""
    try:
        fn = NOISE[kind]
    except KeyError:
        raise ValueError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}") from None
    return fn(np.asarray(x, dtype=np.float32), float(factor), rng, block).astype(np.float32, copy=False)


def corrupt_mixed(
    x: np.ndarray, kind: str, factors: list[float], rng: np.random.Generator, block: int = 1
) -> np.ndarray:
    """Corrupt each image at a level drawn uniformly from ``factors`` (a blind-denoiser mix)."""
    out = np.empty(np.shape(x), dtype=np.float32)
    corrupt_into(out, lambda idx: np.asarray(x[idx], dtype=np.float32), len(x), kind, factors, rng, block)
    return out


def corrupt_into(
    out,
    rows: Callable[[np.ndarray], np.ndarray],
    n: int,
    kind: str,
    factors: list[float],
    rng: np.random.Generator,
    block: int = 1,
    chunk: int | None = None,
) -> None:
    """``out[i]`` = image ``i`` of ``n`` (``rows(indices)`` → float32 images), corrupted at a
    level drawn uniformly from ``factors`` (the one level if there is one).

    At most ``chunk`` images are read, corrupted and written at a time (``out`` may be a
    file being written, see :class:`cae.io.NpyWriter`). Every noise model draws its
    random numbers image by image in order, so the bytes do not depend on ``chunk``.
    """
    if len(factors) == 1:
        groups = [(factors[0], np.arange(n))]
    else:
        choice = rng.integers(0, len(factors), n)
        groups = [(f, np.flatnonzero(choice == i)) for i, f in enumerate(factors)]
    for factor, idx in groups:
        step = chunk or max(1, len(idx))
        for start in range(0, len(idx), step):
            part = idx[start : start + step]
            out[part] = corrupt(rows(part), kind, factor, rng, block)
