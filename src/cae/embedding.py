"""The embedding autoencoders of the latent study: what the `train_embedding` stage trains.

Kept apart from :mod:`cae.latent` (which reads and measures the trained models) so that
the `latent` and `generate` stages do not depend on the training code.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from cae.config import ModelParams, TrainSettings

log = logging.getLogger("cae")


def train_embedding(
    model: ModelParams,
    noise: float,
    settings: TrainSettings,
    variant: str,
    x_train: np.ndarray,
    x_val: np.ndarray,
    out: Path,
) -> dict[str, Any]:
    """One job of `train_embedding`: the ``variant`` (``plain`` or ``variational``) of
    ``model``, trained on the clean images ``x_train`` (validated on ``x_val``, both as
    stored) to reconstruct them, and saved to ``out``. With ``noise`` > 0 its inputs
    carry Gaussian noise of that standard deviation, drawn from ``settings.seed`` and the
    same for both variants. The model comes out the same whatever this process trained
    before. Returns the training time and final losses."""
    import keras

    from cae import runtime, seeds
    from cae.model import save_model
    from cae.noise import noisy_inputs
    from cae.prepare import to_float
    from cae.train import train_autoencoder

    model = model.model_copy(update={"variational": variant == "variational"})
    x_train, x_val = to_float(x_train), to_float(x_val)
    rng = seeds.rng(settings.seed, seeds.Stream.EMBEDDING_NOISE)
    inputs, val_inputs = noisy_inputs(x_train, x_val, noise, rng)
    keras.backend.clear_session()  # a model trained before in this process: its graphs and layer names
    runtime.make_deterministic(settings.seed)
    log.info(
        "training the %s embedding (code of %d) on %d images%s for %d epochs (batch %d)",
        variant,
        model.latent_dim,
        len(x_train),
        f" with Gaussian noise {noise:g} on its inputs" if noise else "",
        settings.epochs,
        settings.batch_size,
    )
    result = train_autoencoder(model, settings, inputs, x_train, val_inputs, x_val, label=f"{variant} embedding")
    save_model(result.model, out)
    summary = {
        "seconds": result.seconds,
        "loss": result.history["loss"][-1],
        "val_loss": result.history["val_loss"][-1],
    }
    log.info(
        "%s embedding trained in %.1f s: loss %.5f, val_loss %.5f → %s",
        variant,
        summary["seconds"],
        summary["loss"],
        summary["val_loss"],
        out,
    )
    return summary
