"""Noisy pairs: a seeded validation split of the training set and corrupted copies.

The clean images stay uint8 (exact); the noisy copies are float32 in [0, 1], because
the corruption is defined on the continuous scale (``clip(x + f·N(0,1), 0, 1)``).
"""

from __future__ import annotations

import numpy as np

from cae.config import Params
from cae.errors import CaeError
from cae.noise import corrupt, corrupt_mixed

PREPARED_FILES = (
    "x_train", "x_train_noisy", "y_train",
    "x_val", "x_val_noisy", "y_val",
    "x_test", "x_test_noisy", "y_test",
    "test_levels", "x_test_levels",
)  # fmt: skip


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 images → float32 in [0, 1]."""
    return (np.asarray(x, dtype=np.float32) / np.float32(255.0)).astype(np.float32, copy=False)


def as_float(x: np.ndarray) -> np.ndarray:
    """Images as float32 in [0, 1]: uint8 ones converted by :func:`to_float`, others as they are."""
    return to_float(x) if x.dtype == np.uint8 else np.asarray(x, dtype=np.float32)


def tf_as_float(x):
    """:func:`as_float` on a TensorFlow tensor, in the graph (the same float32 values)."""
    import tensorflow as tf

    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) / tf.constant(255.0, tf.float32)
    return tf.cast(x, tf.float32)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation of ``range(n)`` cut into (train, val) index arrays, each sorted."""
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        raise CaeError(f"split.val_fraction={val_fraction} leaves no training images out of {n}")
    perm = np.random.default_rng([seed, 0]).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def eval_subset(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of ``size`` of ``n`` test images (all if fewer).

    The baselines and the per-level model scores use the same subset.
    """
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 99]).choice(n, size, replace=False))


def make_pairs(raw: dict[str, np.ndarray], params: Params) -> dict[str, np.ndarray]:
    """Split ``raw`` (x_train, y_train, x_test, y_test) and corrupt every split.

    Training and validation images are corrupted at ``noise.factor`` (each image at
    one level drawn from the list when it is a list); the test images at the
    headline level (``x_test_noisy``) and at every level of ``noise.levels``
    (``x_test_levels``, shape (levels, N, H, W, C), levels in ``test_levels``).
    """
    noise = params.noise
    train_idx, val_idx = split_indices(len(raw["x_train"]), params.split.val_fraction, params.seed)
    clean = {
        "train": (raw["x_train"][train_idx], raw["y_train"][train_idx]),
        "val": (raw["x_train"][val_idx], raw["y_train"][val_idx]),
    }
    out: dict[str, np.ndarray] = {}
    for stream, (split, (x, y)) in enumerate(clean.items(), start=1):
        rng = np.random.default_rng([params.seed, stream])
        out[f"x_{split}"] = x
        out[f"x_{split}_noisy"] = corrupt_mixed(to_float(x), noise.kind, noise.train_levels, rng, noise.block)
        out[f"y_{split}"] = y
    x_test = to_float(raw["x_test"])
    out["x_test"], out["y_test"] = raw["x_test"], raw["y_test"]
    out["x_test_noisy"] = corrupt(x_test, noise.kind, noise.test_level, np.random.default_rng([params.seed, 3]),
                                  noise.block)  # fmt: skip
    levels = noise.levels
    out["test_levels"] = np.asarray(levels, dtype=np.float32)
    out["x_test_levels"] = np.stack([
        corrupt(x_test, noise.kind, level, np.random.default_rng([params.seed, 100 + j]), noise.block)
        for j, level in enumerate(levels)
    ])  # fmt: skip
    return {name: out[name] for name in PREPARED_FILES}
