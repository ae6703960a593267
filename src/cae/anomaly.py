"""One-class anomaly detection: scores, the PCA peer, AUROC and a thresholded decision.

The protocol (Ruff et al., Deep SVDD, 2018): a model is fitted on the training images
of one class c only; every test image is scored, and the score should rank the other
classes ("anomaly", the positive label) above class c ("normal").

Scores (per image, higher means more unusual):

- ``mse``: mean squared reconstruction error per pixel;
- ``ssim``: 1 − SSIM between the image and its reconstruction (scikit-image, data range 1);
- ``latent``: distance of the encoder's code to the class's mean code, standardised by
  the spread of the class's training codes: the squared Mahalanobis distance under their
  (shrunk) covariance, divided by the number of dimensions;
- ``knn``: the mean Euclidean distance of the encoder's code to its ``k`` nearest codes
  of the class's training images (for a training image, the ``k`` nearest others): a
  density estimate that, unlike ``latent``, needs no single Gaussian blob of codes;
- ``ensemble``: the mean of several of the above, each standardised by its mean and
  standard deviation over the class's training images;
- ``pca``: the peer: mean squared error of the reconstruction from the class's first
  ``pca_dims`` principal components.

The decision: an image is an anomaly when its score exceeds ``mean + k·std`` of the
normal class's *training* scores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cae import seeds
from cae.config import AE_SCORES, ANOMALY_SCORES, ModelParams, TrainSettings
from cae.errors import CaeError
from cae.paths import class_dir, class_hint
from cae.seeds import Stream

PEER_SCORE = "pca"
CLASS_SCORES = (*AE_SCORES, PEER_SCORE)  # what `anomaly_models` writes, per class and image
METHODS = (*ANOMALY_SCORES, PEER_SCORE)  # what `anomaly` measures: every score and the peer
BY_CLASS_COLUMNS = ("class", "method", "auroc", "ap", "threshold", "precision", "recall", "f1")
_STD_FLOOR = 1e-12

log = logging.getLogger("cae")


def check_labelled(y: np.ndarray) -> None:
    """:class:`CaeError` unless the labels name at least two classes: the one-class study
    scores one class against the others (a folder without class sub-folders has none)."""
    present = np.unique(np.asarray(y).reshape(-1))
    if len(present) < 2:
        raise CaeError(
            f"the data set has {'one class' if len(present) else 'no labels'}: the anomaly stages need at least "
            "two labelled classes (with dataset: folder, one sub-folder per class); run the denoising "
            "stages only (`dvc repro plots`)"
        )


def class_images(x: np.ndarray, y: np.ndarray, label: int, min_images: int, split: str = "training") -> np.ndarray:
    """The images of ``x`` whose label is ``label``; :class:`CaeError` naming the class if too few."""
    y = np.asarray(y).reshape(-1)
    mask = y == label
    n = int(mask.sum())
    if n < min_images:
        present = ", ".join(str(v) for v in np.unique(y))
        raise CaeError(
            f"anomaly class {label}: {n} {split} images, at least {min_images} needed "
            f"(anomaly.min_images); classes in the data: {present}. Remove {label} from anomaly.classes"
        )
    return x[mask]


def mse_scores(images: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Mean squared error per image, (N, ...) → (N,), in float64."""
    diff = images.reshape(len(images), -1).astype(np.float64) - recon.reshape(len(recon), -1)
    return np.mean(diff * diff, axis=1)


def ssim_scores(images: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """1 − SSIM per image (N, H, W, C), as :func:`cae.evaluate.ssim_per_image` computes it."""
    from cae.evaluate import ssim_per_image

    return 1.0 - ssim_per_image(images, recon)


def latent_fit(train_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and precision (inverse covariance) of the class's training codes.

    The covariance is the Ledoit-Wolf shrinkage estimate, which stays invertible when
    codes have more dimensions than there are images, or dimensions that never vary.
    """
    from sklearn.covariance import LedoitWolf

    flat = train_codes.reshape(len(train_codes), -1).astype(np.float64)
    fit = LedoitWolf().fit(flat)
    return fit.location_, fit.get_precision()


def latent_scores(codes: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of each code to ``mean``, divided by the dimensions:
    the mean squared deviation in standard deviations of the class's codes."""
    z = codes.reshape(len(codes), -1).astype(np.float64) - mean
    return np.einsum("ij,jk,ik->i", z, precision, z) / z.shape[1]


def knn_scores(train_codes: np.ndarray, test_codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean Euclidean distance of each code to its ``k`` nearest training codes:
    (test scores, training scores). A training code's neighbours exclude itself, so its
    score is what an unseen image of the class would get. ``k`` is capped at the number
    of other training codes; with a single training code, its own score is 0."""
    from sklearn.neighbors import NearestNeighbors

    a = train_codes.reshape(len(train_codes), -1).astype(np.float64)
    b = test_codes.reshape(len(test_codes), -1).astype(np.float64)
    k = max(1, min(k, len(a) - 1))
    index = NearestNeighbors(n_neighbors=min(k + 1, len(a))).fit(a)
    test = index.kneighbors(b, n_neighbors=min(k, len(a)))[0].mean(axis=1)
    # the query is its own nearest neighbour at distance 0 (or an identical code is):
    # dropping the first column drops a distance of 0 either way
    train = index.kneighbors(a)[0][:, 1:].mean(axis=1) if len(a) > 1 else np.zeros(len(a))
    return test, train


def standardise(scores: np.ndarray, train_scores: np.ndarray) -> np.ndarray:
    """``(scores − mean) / std`` with the mean and std of ``train_scores``."""
    std = float(np.std(train_scores))
    return (np.asarray(scores, np.float64) - float(np.mean(train_scores))) / max(std, _STD_FLOOR)


def ensemble_scores(
    test: dict[str, np.ndarray], train: dict[str, np.ndarray], members: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The mean of the standardised ``members``: (test scores, training scores)."""
    test_z = [standardise(test[m], train[m]) for m in members]
    train_z = [standardise(train[m], train[m]) for m in members]
    return np.mean(test_z, axis=0), np.mean(train_z, axis=0)


def pca_scores(train: np.ndarray, test: np.ndarray, dims: int, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Reconstruction MSE from the first ``dims`` principal components of ``train``:
    (test scores, training scores). ``dims`` is capped at the number of training images.
    ``random_state`` is scikit-learn's (neither solver used here draws from it)."""
    from cae.latent import fit_pca

    a = train.reshape(len(train), -1).astype(np.float64)
    b = test.reshape(len(test), -1).astype(np.float64)
    pca = fit_pca(a, dims, random_state)
    basis = pca.components_  # orthonormal rows

    def error(v):
        # the squared distance to the principal subspace, without rebuilding the images:
        # what the centred image holds less what its projection on the components keeps
        centred = v - pca.mean_
        kept = centred @ basis.T
        residual = np.einsum("ij,ij->i", centred, centred) - np.einsum("ij,ij->i", kept, kept)
        return np.maximum(residual, 0.0) / v.shape[1]

    return error(b), error(a)


def threshold_of(train_scores: np.ndarray, k: float) -> float:
    """The decision threshold: mean + k·std of the normal class's training scores."""
    return float(np.mean(train_scores) + k * np.std(train_scores))


def decision_metrics(scores: np.ndarray, is_anomaly: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of "anomaly" (score > threshold) against the truth.

    Precision is 0 when nothing is flagged, as is F1 when precision and recall are 0.
    """
    flagged = np.asarray(scores) > threshold
    truth = np.asarray(is_anomaly, bool)
    tp = int(np.sum(flagged & truth))
    precision = tp / int(flagged.sum()) if flagged.any() else 0.0
    recall = tp / int(truth.sum()) if truth.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _check_both_labels(is_anomaly: np.ndarray) -> np.ndarray:
    truth = np.asarray(is_anomaly, bool)
    if truth.all() or not truth.any():
        raise CaeError("AUROC needs test images of the normal class and of at least one other class")
    return truth


def auroc(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the positive label "anomaly" (ties count half)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(_check_both_labels(is_anomaly), scores))


def average_precision(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve) for "anomaly"."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(_check_both_labels(is_anomaly), scores))


def roc_points(scores: np.ndarray, is_anomaly: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve (fpr, tpr), thinned to at most ``max_points`` points evenly spaced along
    it, always keeping (0, 0) and (1, 1)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(_check_both_labels(is_anomaly), scores, drop_intermediate=True)
    if len(fpr) > max_points:
        # even spacing by arc length keeps the shape of both the steep and the flat parts
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(fpr), np.diff(tpr)))])
        idx = np.unique(np.searchsorted(arc, np.linspace(0, arc[-1], max_points)))
        idx = np.unique(np.concatenate([[0], idx, [len(fpr) - 1]]))
        fpr, tpr = fpr[idx], tpr[idx]
    return fpr, tpr


def extremes(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``n`` highest scores (most anomalous first) and the ``n`` lowest
    (least anomalous first); ties broken by index, so the choice is deterministic."""
    scores = np.asarray(scores)
    index = np.arange(len(scores))
    n = min(n, len(scores))
    return np.lexsort((index, -scores))[:n], np.lexsort((index, scores))[:n]


# --- one class: fit the autoencoder, score every image ------------------------------------


@dataclass
class OneClassResult:
    """A one-class autoencoder and the per-image scores of the test and training images."""

    model: Any
    history: dict[str, list[float]]
    seconds: float
    test: dict[str, np.ndarray] = field(default_factory=dict)
    train: dict[str, np.ndarray] = field(default_factory=dict)


def autoencoder_scores(model, images: dict[str, np.ndarray], batch_size: int) -> dict[str, dict[str, np.ndarray]]:
    """Per-image ``mse`` and ``ssim`` scores and ``codes`` of each named set of ``images``,
    from one pass of the model that gives the reconstruction and the encoder's code at once."""
    import keras

    from cae.model import encoder_of

    both = keras.Model(model.input, [model.output, encoder_of(model).output], name="recon_and_code")
    out = {}
    for name, x in images.items():  # the model's predict function is traced once, for the first set
        recon, codes = both.predict(x, batch_size=batch_size, verbose=0)
        out[name] = {"mse": mse_scores(x, recon), "ssim": ssim_scores(x, recon), "codes": codes}
    return out


def fit_one_class(
    model: ModelParams,
    settings: TrainSettings,
    label: int,
    train: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    *,
    noise: float = 0.0,
    pca_dims: int = 32,
    neighbours: int = 5,
) -> OneClassResult:
    """Train ``model`` (with ``settings``) on one class's images (uint8, or float32 in
    [0, 1]) and score ``test`` and ``train`` with every score in :data:`AE_SCORES` and the
    PCA peer (``pca``, ``pca_dims`` components); ``knn`` averages over ``neighbours`` codes.
    What `anomaly_models` does for each class.

    With ``noise`` > 0 the model learns to denoise: its inputs carry Gaussian noise of that
    standard deviation, its targets are clean. Scores are always of clean images, predicted
    in batches of :func:`cae.model.predict_batch` of ``settings.batch_size``. The model
    is seeded alone (``settings.seed``, TensorFlow's graphs cleared first), so it comes out
    the same whichever other classes are trained, before or after it, in this process.
    """
    import keras

    from cae import runtime
    from cae.model import predict_batch
    from cae.noise import noisy_inputs
    from cae.prepare import as_float
    from cae.runtime import numerics_after_tensorflow
    from cae.train import train_autoencoder

    train, val, test = as_float(train), as_float(val), as_float(test)
    keras.backend.clear_session()  # the previous class's graphs and layer names
    runtime.make_deterministic(settings.seed)
    inputs, val_inputs = noisy_inputs(train, val, noise, seeds.rng(settings.seed, Stream.ONE_CLASS_NOISE, label))
    fitted = train_autoencoder(model, settings, inputs, train, val_inputs, val, label=f"class {label}")
    result = OneClassResult(fitted.model, fitted.history, fitted.seconds)
    batch = predict_batch(settings.batch_size)
    scores = autoencoder_scores(fitted.model, {"test": test, "train": train}, batch)
    result.test, result.train = scores["test"], scores["train"]
    with numerics_after_tensorflow():
        train_codes, test_codes = result.train.pop("codes"), result.test.pop("codes")
        mean, precision = latent_fit(train_codes)
        result.train["latent"] = latent_scores(train_codes, mean, precision)
        result.test["latent"] = latent_scores(test_codes, mean, precision)
        result.test["knn"], result.train["knn"] = knn_scores(train_codes, test_codes, neighbours)
        peer_seed = seeds.seed_int(settings.seed, Stream.ONE_CLASS_PCA, label)
        result.test[PEER_SCORE], result.train[PEER_SCORE] = pca_scores(train, test, pca_dims, peer_seed)
    return result


def write_class(result: OneClassResult, label: int, out: Path) -> dict[str, Any]:
    """Write class ``label``'s model, scores and ``stats.json`` (the directory layout
    :func:`read_class` reads) into the new directory ``out``; returns the stats."""
    from cae.io import save_npy, write_json
    from cae.model import save_model

    stats = {
        "class": label,
        "train_images": len(result.train[PEER_SCORE]),
        "epochs": len(result.history["loss"]),
        "loss": round(result.history["loss"][-1], 6),
        "val_loss": round(result.history["val_loss"][-1], 6),
        "train_scores": {
            name: {"mean": float(np.mean(result.train[name])), "std": float(np.std(result.train[name]))}
            for name in CLASS_SCORES
        },
    }
    out.mkdir()
    save_model(result.model, out / "model.keras")
    for name in CLASS_SCORES:
        save_npy(out / f"test_{name}.npy", result.test[name].astype(np.float64))
        save_npy(out / f"train_{name}.npy", result.train[name].astype(np.float64))
    write_json(out / "stats.json", stats)
    return stats


def fit_and_write_class(
    out: Path,
    model: ModelParams,
    settings: TrainSettings,
    label: int,
    train: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    **options: Any,
) -> dict[str, Any]:
    """One job of `anomaly_models`: :func:`fit_one_class` (the same arguments and
    ``options``), then :func:`write_class` into ``out``, with a log line before and after;
    returns the stats."""
    log.info(
        "class %d: training on %d images (%d validation) for %d epochs, scoring %d test images",
        label,
        len(train),
        len(val),
        settings.epochs,
        len(test),
    )
    result = fit_one_class(model, settings, label, train, val, test, **options)
    stats = write_class(result, label, out)
    log.info("class %d: trained in %.1f s, val_loss %.5f", label, result.seconds, stats["val_loss"])
    return stats


def class_scores(*args: Any, **options: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`fit_one_class`'s test and training scores alone (what pickles back from a worker)."""
    result = fit_one_class(*args, **options)
    return result.test, result.train


# --- the study: what `anomaly_models` wrote, measured ---------------------------------------


def read_class(label: int) -> tuple[dict, dict, dict]:
    """What `anomaly_models` wrote for class ``label``: (test scores, training scores, stats)."""
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


def class_rows(label: int, test: dict, train: dict, anomalous, k: float) -> list[dict]:
    """One row of ``plots/anomaly_by_class.csv`` per method, for one class."""
    rows = []
    for method in METHODS:
        threshold = threshold_of(train[method], k)
        decision = decision_metrics(test[method], anomalous, threshold)
        rows.append(
            {
                "class": label,
                "method": method,
                "auroc": round(auroc(test[method], anomalous), 6),
                "ap": round(average_precision(test[method], anomalous), 6),
                "threshold": float(f"{threshold:.6g}"),
                **{key: round(value, 6) for key, value in decision.items()},
            }
        )
    return rows


def summarise(rows: list[dict], score: str, classes: list[int]) -> dict:
    """``metrics/anomaly.json`` from the per-class rows: headline figures only (the
    per-class ones stay in ``plots/anomaly_by_class.csv``)."""
    pick = {(r["class"], r["method"]): r for r in rows}
    ours = [pick[(c, score)] for c in classes]
    pca = [pick[(c, PEER_SCORE)] for c in classes]
    auroc = [r["auroc"] for r in ours]
    return {
        "score": score,
        "auroc_mean": round(float(np.mean(auroc)), 6),
        "auroc_min": min(auroc),
        "ap_mean": round(float(np.mean([r["ap"] for r in ours])), 6),
        "f1_mean": round(float(np.mean([r["f1"] for r in ours])), 6),
        "pca_auroc_mean": round(float(np.mean([r["auroc"] for r in pca])), 6),
        "classes_above_pca": sum(a["auroc"] > p["auroc"] for a, p in zip(ours, pca, strict=True)),
    }
