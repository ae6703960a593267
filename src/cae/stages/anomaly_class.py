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
from pathlib import Path

from cae.config import Params
from cae.errors import CaeError
from cae.stages import HINT_PREPARED, PREPARED_DIR, log, run_stage

ANOMALY_DIR = Path("data/anomaly")
CLASS_SCORES = ("mse", "ssim", "latent", "pca")


def class_dir(label: int) -> Path:
    return ANOMALY_DIR / str(label)


def class_hint(label: int) -> str:
    return f"run `dvc repro anomaly_class@{label}`"


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

    from cae.anomaly import check_labelled, class_images
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
    result = fit_one_class(params, label, train, val, test)
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


def read_class(label: int) -> tuple[dict, dict, dict]:
    """What `anomaly_class@<label>` wrote: (test scores, training scores, stats)."""
    import json

    from cae.io import read_arrays

    names = [f"{split}_{s}" for split in ("test", "train") for s in CLASS_SCORES]
    arrays = read_arrays(class_dir(label), names, hint=class_hint(label))
    stats_path = class_dir(label) / "stats.json"
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, ValueError) as exc:
        raise CaeError(f"{stats_path}: missing or unreadable ({exc}); {class_hint(label)}") from None
    test = {s: arrays[f"test_{s}"] for s in CLASS_SCORES}
    train = {s: arrays[f"train_{s}"] for s in CLASS_SCORES}
    return test, train, stats


if __name__ == "__main__":
    run_stage(lambda params: main(params, sys.argv[1:]))
