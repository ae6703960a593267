"""Stage `train_embedding`: the embedding autoencoders → models/embedding-{plain,variational}.keras.

``python -m cae.stages.train_embedding``. Trains ``latent.model`` (a dense code of
``latent_dim`` numbers) on the clean training images to reconstruct them, for
``latent.epochs`` epochs of ``latent.batch_size``, validated on the clean validation
images, twice: ``plain``, and ``variational``, the same architecture as a variational
autoencoder (``model.variational: true``, KL weight ``latent.model.kl_weight``). With
``latent.noise`` > 0 each is a denoising autoencoder: its inputs (training and
validation) carry Gaussian noise of that standard deviation, drawn once from the seed and
the same for both, and its targets are clean. The two train side by side, ``workers`` at
a time, each in its own process on one CPU thread (:func:`cae.runtime.run_jobs`): the
same models for any ``workers``. These are not the denoiser of `train`: each is tuned
for its own job, with its own params.
"""

from __future__ import annotations

from cae.config import Params, TrainSettings
from cae.paths import HINT_PREPARED, PREPARED_DIR, embedding_path
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
PARAMS = (
    "seed",
    "steps_per_execution",
    "workers",
    "latent.epochs",
    "latent.batch_size",
    "latent.model",
    "latent.noise",
)


def main(params: Params) -> None:
    from cae import runtime
    from cae.config import check_input_shape
    from cae.embedding import train_embedding
    from cae.io import read_arrays
    from cae.latent import VARIANTS

    cfg = params.latent
    # one device per model: the embeddings are small; the top level's steps per execution
    settings = TrainSettings(
        seed=params.seed,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        steps_per_execution=params.steps_per_execution,
    )
    data = read_arrays(PREPARED_DIR, ["x_train", "x_val"], hint=HINT_PREPARED)
    check_input_shape(data["x_train"].shape[1:], cfg.model)  # before any worker starts TensorFlow
    jobs = [(cfg.model, cfg.noise, settings, v, data["x_train"], data["x_val"], embedding_path(v)) for v in VARIANTS]
    log.info("%d embedding models, %d at a time", len(jobs), min(params.workers, len(jobs)))
    runtime.run_jobs(train_embedding, jobs, params.workers)


if __name__ == "__main__":
    run_stage(main)
