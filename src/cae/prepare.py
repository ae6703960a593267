"""Noisy pairs: a seeded validation split of the training set and corrupted copies.

The clean images stay uint8 (exact); the noisy copies are float32 in [0, 1], because
the corruption is defined on the continuous scale (``clip(x + f·N(0,1), 0, 1)``).
"""

from __future__ import annotations

import numpy as np

from cae.config import Params
from cae.errors import CaeError
from cae.noise import corrupt

PREPARED_FILES = (
    "x_train", "x_train_noisy", "y_train",
    "x_val", "x_val_noisy", "y_val",
    "x_test", "x_test_noisy", "y_test",
)  # fmt: skip


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 images → float32 in [0, 1]."""
    return (np.asarray(x, dtype=np.float32) / np.float32(255.0)).astype(np.float32, copy=False)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation of ``range(n)`` cut into (train, val) index arrays, each sorted."""
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        raise CaeError(f"split.val_fraction={val_fraction} leaves no training images out of {n}")
    perm = np.random.default_rng([seed, 0]).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def make_pairs(raw: dict[str, np.ndarray], params: Params) -> dict[str, np.ndarray]:
    """Split ``raw`` (x_train, y_train, x_test, y_test) and corrupt every split."""
    train_idx, val_idx = split_indices(len(raw["x_train"]), params.split.val_fraction, params.seed)
    clean = {
        "train": (raw["x_train"][train_idx], raw["y_train"][train_idx]),
        "val": (raw["x_train"][val_idx], raw["y_train"][val_idx]),
        "test": (raw["x_test"], raw["y_test"]),
    }
    out: dict[str, np.ndarray] = {}
    for stream, (split, (x, y)) in enumerate(clean.items(), start=1):
        rng = np.random.default_rng([params.seed, stream])
        out[f"x_{split}"] = x
        out[f"x_{split}_noisy"] = corrupt(to_float(x), params.noise.kind, params.noise.factor, rng)
        out[f"y_{split}"] = y
    return {name: out[name] for name in PREPARED_FILES}
