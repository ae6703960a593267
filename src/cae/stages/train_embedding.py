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

from cae.config import Params, TrainSettings
from cae.errors import CaeError
from cae.latent import VARIANTS
from cae.paths import HINT_PREPARED, PREPARED_DIR, embedding_path
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
PARAMS = ("seed", "steps_per_execution", "latent.epochs", "latent.batch_size", "latent.model", "latent.noise")


def parse_variant(argv: list[str]) -> str:
    if len(argv) != 1 or argv[0] not in VARIANTS:
        raise CaeError(f"usage: python -m cae.stages.train_embedding VARIANT (one of {', '.join(VARIANTS)})")
    return argv[0]


def main(params: Params, argv: list[str]) -> None:
    from cae import runtime, seeds
    from cae.io import read_arrays
    from cae.model import check_input_shape, save_model
    from cae.noise import noisy_inputs
    from cae.prepare import to_float
    from cae.seeds import Stream
    from cae.train import train_autoencoder

    variant = parse_variant(argv)
    cfg = params.latent
    model = cfg.model.model_copy(update={"variational": variant == "variational"})
    # one process, one device: the embeddings are small; the top level's steps per execution
    settings = TrainSettings(
        seed=params.seed,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        steps_per_execution=params.steps_per_execution,
    )
    data = read_arrays(PREPARED_DIR, ["x_train", "x_val"], hint=HINT_PREPARED)
    check_input_shape(data["x_train"].shape[1:], len(model.filters))
    x_train, x_val = to_float(data["x_train"]), to_float(data["x_val"])
    noise = cfg.noise
    # the same noise for both variants
    inputs, val_inputs = noisy_inputs(x_train, x_val, noise, seeds.rng(params.seed, Stream.EMBEDDING_NOISE))
    runtime.make_deterministic(params.seed)
    log.info(
        "training the %s embedding (code of %d) on %d images%s for %d epochs (batch %d)",
        variant,
        model.latent_dim,
        len(x_train),
        f" with Gaussian noise {noise:g} on its inputs" if noise else "",
        settings.epochs,
        settings.batch_size,
    )
    result = train_autoencoder(model, settings, inputs, x_train, val_inputs, x_val)
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
