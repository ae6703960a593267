"""Every random stream of the project, by name: one per use of randomness.

A run has one seed (``seed`` in params.yaml; ``folder.seed`` for the folder split).
Each use of randomness draws from its own stream, named in :class:`Stream` and derived
from that seed as ``numpy.random.default_rng([seed, stream, *keys])``, so no two uses
ever share random numbers, and adding a use never shifts another's draws. A stream that
is used once per epoch, per class, per noise level or per embedding variant takes that
index as a key; every stream has a fixed number of keys (:data:`KEYS`), because
``SeedSequence`` pads short entropy with zeros (``[s, 8]`` and ``[s, 8, 0]`` are the
same stream) and a fixed length rules that out.

Libraries that want an integer seed (scikit-learn's ``random_state``, Keras) get one
from :func:`seed_int`, derived the same way. No other module builds a generator or a
seed list: ``tests/test_seeds.py`` checks both.
"""

from __future__ import annotations

from enum import IntEnum, unique

import numpy as np


@unique
class Stream(IntEnum):
    """The uses of randomness. The numbers are part of the results: never reuse or renumber one."""

    # noisy_pairs (cae.prepare)
    SPLIT = 1  # which training images become validation images
    NOISE_TRAIN = 2  # the corruption of the training images
    NOISE_VAL = 3  # … of the validation images
    NOISE_TEST = 4  # … of the test images at the headline level (x_test_noisy)
    NOISE_LEVEL = 5  # … of the test images at level j of noise.levels (key: j)
    # baselines, evaluate
    EVAL_SUBSET = 6  # the test subset the baselines and the per-level scores share
    BASELINE_TUNING_NOISE = 7  # the noisy validation images a baseline is tuned on (key: level j)
    # training (cae.train, cae.resume, cae.runtime)
    EPOCH_SHUFFLE = 8  # the order of the training images in an epoch (key: epoch)
    FRAMEWORK = 9  # Python's, NumPy's global and TensorFlow's seeds (weight initialisation)
    VAE_SAMPLING = 10  # the variational code's noise in training (the model's SeedGenerator)
    # anomaly_models
    ONE_CLASS_NOISE = 11  # the noise on a one-class model's inputs (key: class)
    ONE_CLASS_PCA = 12  # the PCA peer of a class (key: class)
    # train_embedding, latent, generate
    EMBEDDING_NOISE = 13  # the noise on the embeddings' inputs, the same for both variants
    LATENT_PCA = 14  # the PCA peer of the codes
    LATENT_PLOT_SUBSET = 15  # the test codes drawn in plots/latent_2d.png
    LATENT_PROJECTION = 16  # t-SNE (or PCA) of those codes (key: variant)
    DENSITY_FIT = 17  # the Gaussian mixture fitted on the training codes (key: variant)
    DENSITY_SAMPLE = 18  # the codes drawn from it, and their order (key: variant)
    PRIOR_SAMPLE = 19  # codes drawn from N(0, I) for the variational decoder
    INTERPOLATION_PAIRS = 20  # the test images at the ends of the interpolations
    # download with dataset: folder (cae.folder); seeded by folder.seed
    FOLDER_SPLIT = 21  # the images of a class that go to the test split (key: class)


# How many keys each stream takes (0 when it is used once per run).
KEYS: dict[Stream, int] = {
    Stream.NOISE_LEVEL: 1,
    Stream.BASELINE_TUNING_NOISE: 1,
    Stream.EPOCH_SHUFFLE: 1,
    Stream.ONE_CLASS_NOISE: 1,
    Stream.ONE_CLASS_PCA: 1,
    Stream.LATENT_PROJECTION: 1,
    Stream.DENSITY_FIT: 1,
    Stream.DENSITY_SAMPLE: 1,
    Stream.FOLDER_SPLIT: 1,
}

# The mnist_sample data set's stratified split (cae.data.load_mnist_sample): part of the
# data set's definition, not of a run, so it does not follow `seed`.
MNIST_SAMPLE_SEED = 0


def entropy(seed: int, stream: Stream, *keys: int) -> list[int]:
    """``[seed, stream, *keys]``, after checking that ``stream`` takes that many keys."""
    stream = Stream(stream)
    if len(keys) != KEYS.get(stream, 0):
        raise ValueError(f"stream {stream.name} takes {KEYS.get(stream, 0)} key(s), got {len(keys)}")
    if seed < 0 or any(k < 0 for k in keys):
        raise ValueError(f"seeds and keys must be non-negative (got {seed}, {keys})")
    return [int(seed), int(stream), *(int(k) for k in keys)]


def rng(seed: int, stream: Stream, *keys: int) -> np.random.Generator:
    """The NumPy generator of ``stream`` (and ``keys``) for the run seeded with ``seed``."""
    return np.random.default_rng(entropy(seed, stream, *keys))


def seed_int(seed: int, stream: Stream, *keys: int) -> int:
    """An integer seed in [0, 2**32) for a library (``random_state=``, Keras), from ``stream``."""
    return int(np.random.SeedSequence(entropy(seed, stream, *keys)).generate_state(1)[0])


def seed_frameworks(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and TensorFlow (``keras.utils.set_random_seed``)
    from the :attr:`Stream.FRAMEWORK` stream of ``seed``."""
    import keras

    keras.utils.set_random_seed(seed_int(seed, Stream.FRAMEWORK))


def mnist_sample_rng() -> np.random.RandomState:
    """The legacy generator of the mnist_sample split: its stream is frozen across NumPy versions."""
    return np.random.RandomState(MNIST_SAMPLE_SEED)
