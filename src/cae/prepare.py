"""Noisy pairs: a seeded validation split of the training set and corrupted copies.

The clean images stay uint8 (exact); the noisy copies are float32 in [0, 1], because
the corruption is defined on the continuous scale (``clip(x + f·N(0,1), 0, 1)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cae import seeds
from cae.config import NoiseParams, SplitParams
from cae.errors import CaeError
from cae.io import NpyWriter, atomic_path, chunk_rows
from cae.noise import corrupt_into
from cae.seeds import Stream

PREPARED_FILES = (
    "x_train",
    "x_train_noisy",
    "y_train",
    "x_val",
    "x_val_noisy",
    "y_val",
    "x_test",
    "x_test_noisy",
    "y_test",
    "test_levels",
    "x_test_levels",
)


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
    perm = seeds.rng(seed, Stream.SPLIT).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def eval_subset(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset of ``size`` of ``n`` test images (all if fewer).

    The baselines and the per-level model scores use the same subset.
    """
    if size >= n:
        return np.arange(n)
    return np.sort(seeds.rng(seed, Stream.EVAL_SUBSET).choice(n, size, replace=False))


def make_pairs(raw: dict[str, np.ndarray], noise: NoiseParams, split: SplitParams, seed: int) -> dict[str, np.ndarray]:
    """:func:`fill_pairs` into arrays in memory: ``{name: array}`` in :data:`PREPARED_FILES` order."""
    out: dict[str, np.ndarray] = {}

    def create(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        out[name] = np.empty(shape, dtype)
        return out[name]

    fill_pairs(raw, noise, split, seed, create)
    return {name: out[name] for name in PREPARED_FILES}


def write_pairs(
    raw: dict[str, np.ndarray], noise: NoiseParams, split: SplitParams, seed: int, out_dir: Path
) -> dict[str, tuple[int, ...]]:
    """:func:`fill_pairs` straight into ``out_dir/<name>.npy``, a chunk of images at a time,
    so memory stays bounded whatever the data set's size; ``out_dir`` appears complete or
    not at all. Returns each array's shape."""
    writers: dict[str, NpyWriter] = {}
    with atomic_path(out_dir, directory=True) as tmp:

        def create(name: str, shape: tuple[int, ...], dtype) -> NpyWriter:
            writers[name] = NpyWriter(tmp / f"{name}.npy", shape, dtype)
            return writers[name]

        try:
            fill_pairs(raw, noise, split, seed, create)
        finally:
            for w in writers.values():
                w.close()
    return {name: w.shape for name, w in writers.items()}


def fill_pairs(raw: dict[str, np.ndarray], noise: NoiseParams, split: SplitParams, seed: int, create) -> None:
    """Split ``raw`` (x_train, y_train, x_test, y_test) and corrupt every split, the
    split and each corruption drawn from its own stream of ``seed`` (:mod:`cae.seeds`).

    Training and validation images are corrupted at ``noise.factor`` (each image at
    one level drawn from the list when it is a list); the test images at the
    headline level (``x_test_noisy``) and at every level of ``noise.levels``
    (``x_test_levels``, shape (levels, N, H, W, C), levels in ``test_levels``).

    ``raw`` may hold arrays or :class:`cae.io.NpyRows`; each output is made by
    ``create(name, shape, dtype)`` (an array, or a :class:`cae.io.NpyWriter`) and filled
    a chunk of images at a time (:func:`cae.io.chunk_rows`): the bytes do not depend on
    the chunk size.
    """
    shape = tuple(raw["x_train"].shape[1:])
    chunk = chunk_rows(shape)
    train_idx, val_idx = split_indices(len(raw["x_train"]), split.val_fraction, seed)

    def copy(name: str, src, idx: np.ndarray) -> None:
        dst = create(name, (len(idx), *src.shape[1:]), src.dtype)
        for start in range(0, len(idx), chunk):
            part = idx[start : start + chunk]
            dst[start : start + len(part)] = src[part]

    def noisy(dst, src, idx: np.ndarray, levels: list[float], rng: np.random.Generator) -> None:
        corrupt_into(dst, lambda part: to_float(src[idx[part]]), len(idx), noise.kind, levels, rng, noise.block, chunk)

    x, y = raw["x_train"], raw["y_train"]
    for stream, part_name, idx in ((Stream.NOISE_TRAIN, "train", train_idx), (Stream.NOISE_VAL, "val", val_idx)):
        copy(f"x_{part_name}", x, idx)
        noisy(
            create(f"x_{part_name}_noisy", (len(idx), *shape), np.float32),
            x,
            idx,
            noise.train_levels,
            seeds.rng(seed, stream),
        )
        create(f"y_{part_name}", (len(idx),), np.uint8)[:] = np.asarray(y[idx], np.uint8)
    x, every = raw["x_test"], np.arange(len(raw["x_test"]))
    copy("x_test", x, every)
    create("y_test", (len(x),), np.uint8)[:] = np.asarray(raw["y_test"][every], np.uint8)
    noisy(
        create("x_test_noisy", (len(x), *shape), np.float32),
        x,
        every,
        [noise.test_level],
        seeds.rng(seed, Stream.NOISE_TEST),
    )
    levels = noise.levels
    create("test_levels", (len(levels),), np.float32)[:] = np.asarray(levels, dtype=np.float32)
    stacked = create("x_test_levels", (len(levels), len(x), *shape), np.float32)
    for j, level in enumerate(levels):
        part = stacked[j] if isinstance(stacked, np.ndarray) else stacked.part(j)
        noisy(part, x, every, [level], seeds.rng(seed, Stream.NOISE_LEVEL, j))
