"""Stage `anomaly_class@<c>`: a one-class autoencoder for class c → data/anomaly/<c>/.

``python -m cae.stages.anomaly_class <c>``. Trains ``anomaly.model`` on the training
images of class c only, then scores every test image and every one of those training
images with each autoencoder score (``mse``, ``ssim``, ``latent``) and with the PCA
peer (``pca``: ``anomaly.pca_dims`` components fitted on the same images). Writes, as
one directory:

- ``model.keras``: the class's autoencoder;
- ``test_<score>.npy``, ``train_<score>.npy``: per-image scores (float64), test images
  in the order of ``data/prepared/x_test.npy``;
- ``stats.json``: the training-score statistics (mean, std per score) the decision
  threshold is built from, the number of images and the final losses.

It reads neither ``anomaly.score`` nor ``anomaly.threshold_k``: choosing a score or a
threshold reruns only the cheap `anomaly` stage, never the training.
"""

from __future__ import annotations

import sys

from cae.config import Params, TrainSettings
from cae.errors import CaeError
from cae.paths import HINT_PREPARED, PREPARED_DIR, class_dir
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
# The one-class model trains under the top-level distribute and steps_per_execution.
PARAMS = (
    "seed",
    "distribute",
    "steps_per_execution",
    "anomaly.epochs",
    "anomaly.batch_size",
    "anomaly.model",
    "anomaly.noise",
    "anomaly.pca_dims",
    "anomaly.min_images",
)
# Read, but deliberately not a dependency: anomaly.classes only checks the class named on
# the command line (dvc.yaml's matrix makes one stage per class); listing it would retrain
# every class whenever one is added or removed.
PARAMS_UNTRACKED = ("anomaly.classes",)


def parse_class(argv: list[str], classes: list[int]) -> int:
    """The class named on the command line; it must be one of ``anomaly.classes``."""
    if len(argv) != 1 or not argv[0].isdigit():
        raise CaeError(f"usage: python -m cae.stages.anomaly_class CLASS (one of anomaly.classes {classes})")
    label = int(argv[0])
    if label not in classes:
        raise CaeError(f"class {label} is not in anomaly.classes {classes}")
    return label


def main(params: Params, argv: list[str]) -> None:
    cfg = params.anomaly
    label = parse_class(argv, cfg.classes)

    import numpy as np

    from cae.anomaly import CLASS_SCORES, check_labelled, class_images
    from cae.io import atomic_path, read_arrays, save_npy, write_json
    from cae.prepare import to_float

    data = read_arrays(PREPARED_DIR, ["x_train", "y_train", "x_val", "y_val", "x_test"], hint=HINT_PREPARED, mmap=True)
    check_labelled(data["y_train"])
    train = to_float(class_images(data["x_train"], data["y_train"], label, cfg.min_images))
    val = to_float(class_images(data["x_val"], data["y_val"], label, 1, split="validation"))
    test = to_float(data["x_test"])

    # TensorFlow only now, once the inputs are known to be usable
    from cae import runtime
    from cae.anomaly import fit_one_class
    from cae.model import check_input_shape, save_model

    check_input_shape(train.shape[1:], len(cfg.model.filters))
    runtime.make_deterministic(params.seed)
    log.info(
        "class %d: training on %d images (%d validation) for %d epochs, scoring %d test images",
        label,
        len(train),
        len(val),
        cfg.epochs,
        len(test),
    )
    settings = TrainSettings(
        seed=params.seed,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        distribute=params.distribute,
        steps_per_execution=params.steps_per_execution,
    )
    result = fit_one_class(cfg.model, settings, label, train, val, test, noise=cfg.noise, pca_dims=cfg.pca_dims)
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
    with atomic_path(class_dir(label), directory=True) as tmp:
        save_model(result.model, tmp / "model.keras")
        for name in CLASS_SCORES:
            save_npy(tmp / f"test_{name}.npy", result.test[name].astype(np.float64))
            save_npy(tmp / f"train_{name}.npy", result.train[name].astype(np.float64))
        write_json(tmp / "stats.json", stats)
    log.info(
        "class %d: trained in %.1f s, val_loss %.5f → %s", label, result.seconds, stats["val_loss"], class_dir(label)
    )


if __name__ == "__main__":
    run_stage(lambda params: main(params, sys.argv[1:]))
