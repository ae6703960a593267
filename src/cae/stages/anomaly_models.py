"""Stage `anomaly_models`: one one-class autoencoder per class → data/anomaly/<c>/.

``python -m cae.stages.anomaly_models``. For each class c of ``anomaly.classes``, in one
process (TensorFlow starts once), trains ``anomaly.model`` on the training images of
class c only, then scores every test image and every one of those training images with
each autoencoder score (``mse``, ``ssim``, ``latent``, ``knn``) and with the PCA peer
(``pca``: ``anomaly.pca_dims`` components fitted on the same images). Writes, per class,
one directory ``data/anomaly/<c>/``:

- ``model.keras``: the class's autoencoder;
- ``test_<score>.npy``, ``train_<score>.npy``: per-image scores (float64), test images
  in the order of ``data/prepared/x_test.npy``;
- ``stats.json``: the training-score statistics (mean, std per score) the decision
  threshold is built from, the number of images and the final losses.

Every class is checked for enough images before any training, and ``data/anomaly``
is replaced whole at the end: a failure leaves the previous one as it was. Each class's model is
seeded alone (the same weights whichever other classes are listed, in any order).

It reads neither ``anomaly.score`` nor ``anomaly.threshold_k`` nor ``anomaly.ensemble``:
choosing a score or a threshold reruns only the cheap `anomaly` stage, never the training.
"""

from __future__ import annotations

from cae.config import Params, TrainSettings
from cae.paths import ANOMALY_DIR, HINT_PREPARED, PREPARED_DIR, class_dir
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
# The one-class models train under the top-level distribute and steps_per_execution.
PARAMS = (
    "seed",
    "distribute",
    "steps_per_execution",
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

    import numpy as np

    from cae.anomaly import CLASS_SCORES, check_labelled, class_images
    from cae.io import atomic_path, read_arrays, save_npy, write_json
    from cae.prepare import to_float

    data = read_arrays(PREPARED_DIR, ["x_train", "y_train", "x_val", "y_val", "x_test"], hint=HINT_PREPARED, mmap=True)
    check_labelled(data["y_train"])
    # every class's images first: too few of one class fails before any training
    images = {
        label: (
            class_images(data["x_train"], data["y_train"], label, cfg.min_images),
            class_images(data["x_val"], data["y_val"], label, 1, split="validation"),
        )
        for label in cfg.classes
    }
    test = to_float(data["x_test"])

    # TensorFlow only now, once the inputs are known to be usable
    import keras

    from cae import runtime
    from cae.anomaly import fit_one_class
    from cae.model import check_input_shape, save_model

    check_input_shape(test.shape[1:], len(cfg.model.filters))
    settings = TrainSettings(
        seed=params.seed,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        distribute=params.distribute,
        steps_per_execution=params.steps_per_execution,
    )
    # the whole of data/anomaly at once: a failure in any class leaves the previous one as it was
    with atomic_path(ANOMALY_DIR, directory=True) as tmp:
        for i, label in enumerate(cfg.classes, 1):
            train, val = (to_float(x) for x in images[label])
            keras.backend.clear_session()  # the previous class's graphs and layer names
            runtime.make_deterministic(params.seed)
            log.info(
                "class %d (%d of %d): training on %d images (%d validation) for %d epochs, scoring %d test images",
                label,
                i,
                len(cfg.classes),
                len(train),
                len(val),
                cfg.epochs,
                len(test),
            )
            result = fit_one_class(
                cfg.model,
                settings,
                label,
                train,
                val,
                test,
                noise=cfg.noise,
                pca_dims=cfg.pca_dims,
                neighbours=cfg.neighbours,
            )
            stats = {
                "class": label,
                "train_images": len(train),
                "epochs": len(result.history["loss"]),
                "loss": round(result.history["loss"][-1], 6),
                "val_loss": round(result.history["val_loss"][-1], 6),
                "train_scores": {
                    name: {"mean": float(np.mean(result.train[name])), "std": float(np.std(result.train[name]))}
                    for name in CLASS_SCORES
                },
            }
            out = tmp / class_dir(label).relative_to(ANOMALY_DIR)
            out.mkdir()
            save_model(result.model, out / "model.keras")
            for name in CLASS_SCORES:
                save_npy(out / f"test_{name}.npy", result.test[name].astype(np.float64))
                save_npy(out / f"train_{name}.npy", result.train[name].astype(np.float64))
            write_json(out / "stats.json", stats)
            log.info(
                "class %d: trained in %.1f s, val_loss %.5f → %s",
                label,
                result.seconds,
                stats["val_loss"],
                class_dir(label),
            )


if __name__ == "__main__":
    run_stage(main)
