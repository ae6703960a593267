"""TensorFlow start-up: quiet logs, seeds and deterministic ops.

Import this module before TensorFlow or Keras: it sets the environment variables
that TensorFlow reads once at import time.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (from the ``FRAMEWORK`` stream of ``seed``) and make TensorFlow's ops deterministic.

    Same params on the same machine then give the same weights, metrics and
    figures, byte for byte.
    """
    import tensorflow as tf

    from cae.seeds import seed_frameworks

    seed_frameworks(seed)
    tf.config.experimental.enable_op_determinism()
