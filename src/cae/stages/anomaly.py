"""Stage `anomaly`: the one-class study, aggregated → metrics/anomaly.json and plots.

Reads what `anomaly_models` wrote for every class and the test labels, and for each
class and each score — ``mse``, ``ssim``, ``latent``, ``knn``, the ``ensemble`` of
``anomaly.ensemble`` and the PCA
peer ``pca`` — measures AUROC and average precision of "not c" (anomaly, positive)
against c, and precision / recall / F1 of the decision ``score > mean + k·std`` of
the class's training scores (``k`` = ``anomaly.threshold_k``).

- ``metrics/anomaly.json``: headline figures of the selected score (``anomaly.score``):
  the mean over classes of AUROC, average precision and F1, the worst class's AUROC
  (``auroc_min``), the peer's ``pca_auroc_mean`` and the number of classes on which
  the score's AUROC is above the peer's (``classes_above_pca``); the per-class figures
  are in ``plots/anomaly_by_class.csv``.
  There is no top-level ``threshold``: each class has its own model and threshold
  (see ``plots/anomaly_by_class.csv``), none of which applies to the denoiser
  ``cae score`` runs.
- ``plots/anomaly_by_class.csv``: ``class, method, auroc, ap, threshold, precision,
  recall, f1`` for every class and every score.
- ``plots/anomaly_roc.csv``: ``class, fpr, tpr``, the selected score's ROC curve per
  class, thinned to ``anomaly.roc_points`` points.
- ``plots/anomaly_examples.png``: for ``anomaly.example_class``, the most and the least
  anomalous test images over their reconstructions.
"""

from __future__ import annotations

from cae.config import ENSEMBLE_SCORE, Params
from cae.errors import CaeError
from cae.paths import (
    ANOMALY_BY_CLASS,
    ANOMALY_EXAMPLES,
    ANOMALY_METRICS,
    ANOMALY_ROC,
    HINT_PREPARED,
    PREPARED_DIR,
    class_dir,
    class_hint,
)
from cae.stages import log, run_stage

PARAMS = ("seed", "anomaly")  # the params this stage reads (dvc.yaml's `params:` is written from this)


def _csv(path, columns, rows) -> None:
    import csv
    import io

    from cae.io import write_bytes

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(path, buf.getvalue().encode())


def examples_figure(seed: int, batch_size: int, examples: int, label: int, scores, x_test) -> None:
    """The ``examples`` most and least anomalous test images for class ``label``, with reconstructions."""
    import numpy as np

    from cae import runtime
    from cae.anomaly import extremes
    from cae.model import load_model
    from cae.plots import image_rows
    from cae.prepare import to_float

    most, least = extremes(scores, examples)
    runtime.make_deterministic(seed)
    model = load_model(class_dir(label) / "model.keras", image_shape=x_test.shape[1:])
    images = to_float(np.asarray(x_test[np.concatenate([most, least])]))
    recon = model.predict(images, batch_size=batch_size, verbose=0)
    n = len(most)
    image_rows(
        [images[:n], recon[:n], images[n:], recon[n:]],
        [f"class {label}:\nmost\nanomalous", "reconstructed", "least\nanomalous", "reconstructed"],
        ANOMALY_EXAMPLES,
    )


def main(params: Params) -> None:
    import numpy as np

    from cae.anomaly import BY_CLASS_COLUMNS, METHODS, class_rows, ensemble_scores, read_class, roc_points, summarise
    from cae.io import read_arrays, write_json

    cfg = params.anomaly
    data = read_arrays(PREPARED_DIR, ["x_test", "y_test"], hint=HINT_PREPARED, mmap=True)
    y_test = np.asarray(data["y_test"]).reshape(-1)
    rows, roc_rows, selected = [], [], {}
    for label in cfg.classes:
        if not (y_test == label).any() or (y_test == label).all():
            raise CaeError(f"anomaly class {label}: the test set needs images of class {label} and of others")
        test, train, _ = read_class(label)
        if len(test["mse"]) != len(y_test):
            raise CaeError(
                f"{class_dir(label)}: scores {len(test['mse'])} test images, the test set has "
                f"{len(y_test)}; {class_hint(label)}"
            )
        test[ENSEMBLE_SCORE], train[ENSEMBLE_SCORE] = ensemble_scores(test, train, cfg.ensemble)
        anomalous = y_test != label
        rows += class_rows(label, test, train, anomalous, cfg.threshold_k)
        fpr, tpr = roc_points(test[cfg.score], anomalous, cfg.roc_points)
        roc_rows += [
            {"class": label, "fpr": round(float(f), 6), "tpr": round(float(t), 6)}
            for f, t in zip(fpr, tpr, strict=True)
        ]
        selected[label] = test[cfg.score]

    metrics = summarise(rows, cfg.score, cfg.classes)
    examples_figure(
        params.seed, cfg.batch_size, cfg.examples, cfg.example_class, selected[cfg.example_class], data["x_test"]
    )
    _csv(ANOMALY_BY_CLASS, BY_CLASS_COLUMNS, rows)
    _csv(ANOMALY_ROC, ("class", "fpr", "tpr"), roc_rows)
    write_json(ANOMALY_METRICS, metrics)

    log.info("%-9s %s", "AUROC %", " ".join(f"{c:>6}" for c in cfg.classes) + "    mean")
    for method in METHODS:
        values = [r["auroc"] * 100 for r in rows if r["method"] == method]
        mark = "*" if method == cfg.score else " "
        log.info("%-8s%s %s", method, mark, " ".join(f"{v:6.2f}" for v in values) + f"  {np.mean(values):6.2f}")
    log.info(
        "%s (k=%g): precision %.3f, recall %.3f, F1 %.3f (means over classes)",
        cfg.score,
        cfg.threshold_k,
        *(np.mean([r[key] for r in rows if r["method"] == cfg.score]) for key in ("precision", "recall", "f1")),
    )


if __name__ == "__main__":
    run_stage(main)
