"""Stage `train_embedding@<variant>`: the embedding autoencoder → models/embedding-<variant>.keras.

``python -m cae.stages.train_embedding plain|variational``. Trains ``latent.model`` (a
dense code of ``latent_dim`` numbers) on the clean training images to reconstruct them,
for ``latent.epochs`` epochs of ``latent.batch_size``, validated on the clean validation
images. With ``latent.noise`` > 0 it is a denoising autoencoder: its inputs (training
and validation) carry Gaussian noise of that standard deviation, drawn once and the
same for both variants, and its targets are clean. ``variational`` trains the same
architecture as a variational autoencoder (``model.variational: true``, KL weight
``latent.model.kl_weight``). These are not the denoiser of `train`: each is tuned for
its own job, with its own params.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cae.config import Params
from cae.errors import CaeError
from cae.stages import HINT_PREPARED, PREPARED_DIR, log, run_stage

VARIANTS = ("plain", "variational")


def embedding_path(variant: str) -> Path:
    return Path(f"models/embedding-{variant}.keras")


def embedding_hint(variant: str) -> str:
    return f"run `dvc repro train_embedding@{variant}`"


def parse_variant(argv: list[str]) -> str:
    if len(argv) != 1 or argv[0] not in VARIANTS:
        raise CaeError(f"usage: python -m cae.stages.train_embedding VARIANT (one of {', '.join(VARIANTS)})")
    return argv[0]


def embedding_params(params: Params, variant: str) -> Params:
    """``params`` with the embedding's model and training params in place of the denoiser's."""
    cfg = params.latent
    model = cfg.model.model_copy(update={"variational": variant == "variational"})
    return params.model_copy(
        update={
            "model": model,
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "task": "reconstruct",
            "distribute": "none",
        }
    )


def main(params: Params, argv: list[str]) -> None:
    from cae import runtime
    from cae.io import read_arrays
    from cae.model import check_input_shape, save_model
    from cae.noise import noisy_inputs
    from cae.prepare import to_float
    from cae.train import train_autoencoder

    variant = parse_variant(argv)
    run = embedding_params(params, variant)
    data = read_arrays(PREPARED_DIR, ["x_train", "x_val"], hint=HINT_PREPARED)
    check_input_shape(data["x_train"].shape[1:], len(run.model.filters))
    x_train, x_val = to_float(data["x_train"]), to_float(data["x_val"])
    noise = params.latent.noise
    inputs, val_inputs = noisy_inputs(x_train, x_val, noise, [params.seed, 500])  # the same for both variants
    runtime.make_deterministic(params.seed)
    log.info(
        "training the %s embedding (code of %d) on %d images%s for %d epochs (batch %d)",
        variant,
        run.model.latent_dim,
        len(x_train),
        f" with Gaussian noise {noise:g} on its inputs" if noise else "",
        run.epochs,
        run.batch_size,
    )
    result = train_autoencoder(run, inputs, x_train, val_inputs, x_val)
    save_model(result.model, embedding_path(variant))
    log.info(
        "%s embedding trained in %.1f s: loss %.5f, val_loss %.5f → %s",
        variant,
        result.seconds,
        result.history["loss"][-1],
        result.history["val_loss"][-1],
        embedding_path(variant),
    )


if __name__ == "__main__":
    run_stage(lambda params: main(params, sys.argv[1:]))
