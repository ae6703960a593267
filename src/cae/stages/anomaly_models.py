"""Stage `anomaly_models`: one one-class autoencoder per class → data/anomaly/<c>/.

``python -m cae.stages.anomaly_models``. For each class c of ``anomaly.classes`` it
trains ``anomaly.model`` on the training images of class c only, then scores every test
image and every one of those training images with each autoencoder score (``mse``,
``ssim``, ``latent``, ``knn``) and with the PCA peer (``pca``: ``anomaly.pca_dims``
components fitted on the same images). Writes, per class, one directory
``data/anomaly/<c>/``:

- ``model.keras``: the class's autoencoder;
- ``test_<score>.npy``, ``train_<score>.npy``: per-image scores (float64), test images
  in the order of ``data/prepared/x_test.npy``;
- ``stats.json``: the training-score statistics (mean, std per score) the decision
  threshold is built from, the number of images and the final losses.

Every class is checked for enough images before any training, and ``data/anomaly``
is replaced whole at the end: a failure leaves the previous one as it was. The models
train ``workers`` at a time, each in its own process on one CPU thread
(:func:`cae.runtime.run_jobs`), and each is seeded alone: the same weights whichever other
classes are listed, in any order, for any ``workers``.

It reads neither ``anomaly.score`` nor ``anomaly.threshold_k`` nor ``anomaly.ensemble``:
choosing a score or a threshold reruns only the cheap `anomaly` stage, never the training.
"""

from __future__ import annotations

from cae.config import Params, TrainSettings
from cae.paths import ANOMALY_DIR, HINT_PREPARED, PREPARED_DIR, class_dir
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
# The one-class models train under the top-level distribute, steps_per_execution and workers.
PARAMS = (
    "seed",
    "distribute",
    "steps_per_execution",
    "workers",
    "anomaly.classes",
    "anomaly.epochs",
    "anomaly.batch_size",
    "anomaly.model",
    "anomaly.noise",
    "anomaly.neighbours",
    "anomaly.pca_dims",
    "anomaly.min_images",
)


def main(params: Params) -> None:
    cfg = params.anomaly

    from functools import partial

    import numpy as np

    from cae import runtime
    from cae.anomaly import check_labelled, class_images, fit_and_write_class
    from cae.config import check_input_shape
    from cae.io import atomic_path, read_arrays

    data = read_arrays(PREPARED_DIR, ["x_train", "y_train", "x_val", "y_val", "x_test"], hint=HINT_PREPARED, mmap=True)
    check_labelled(data["y_train"])
    check_input_shape(data["x_train"].shape[1:], cfg.model)  # before any worker starts TensorFlow
    # every class's images first: too few of one class fails before any training
    images = {
        label: (
            class_images(data["x_train"], data["y_train"], label, cfg.min_images),
            class_images(data["x_val"], data["y_val"], label, 1, split="validation"),
        )
        for label in cfg.classes
    }
    test = np.array(data["x_test"])  # in memory: it goes to every job
    settings = TrainSettings(
        seed=params.seed,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        distribute=params.distribute,
        steps_per_execution=params.steps_per_execution,
    )
    # side by side in `workers` processes; one after another here when distributed
    workers = params.workers if params.distribute == "none" else None
    log.info(
        "%d one-class models, %s",
        len(cfg.classes),
        f"{min(workers, len(cfg.classes))} at a time" if workers else "one at a time (distributed)",
    )
    # the whole of data/anomaly at once: a failure in any class leaves the previous one as it was
    job = partial(fit_and_write_class, noise=cfg.noise, pca_dims=cfg.pca_dims, neighbours=cfg.neighbours)
    with atomic_path(ANOMALY_DIR, directory=True) as tmp:
        jobs = [
            (tmp / class_dir(label).relative_to(ANOMALY_DIR), cfg.model, settings, label, *images[label], test)
            for label in cfg.classes
        ]
        runtime.run_jobs(job, jobs, workers)
    log.info("%d one-class models → %s", len(cfg.classes), ANOMALY_DIR)


if __name__ == "__main__":
    run_stage(main)
