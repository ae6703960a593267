"""End to end: the one-class anomaly stages with the real `dvc repro`, on mnist_sample.

Two classes, one epoch: the point is the wiring — the one-class models' stage, the
aggregate, its metrics and plots — and which params rerun what.
"""

import csv
import json
import math

import pytest
from conftest import copy_project, first_repro_log
from project_copy import set_params, sh

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_one_class_stages_metrics_plots_and_what_reruns(pipeline_done, tmp_path):
    # the template's first `dvc repro` ran the one-class models and the aggregate ...
    first = first_repro_log(pipeline_done).read_text()
    for stage in ("anomaly_models", "anomaly"):
        assert f"Running stage '{stage}'" in first
    project = copy_project(pipeline_done, tmp_path / "project")
    # ... and the anomaly study needs the data, not the denoiser
    dry = sh("dvc repro -f --dry anomaly", project)
    for stage in ("download", "noisy_pairs", "anomaly_models", "anomaly"):
        assert f"Running stage '{stage}'" in dry
    assert "Running stage 'train'" not in dry
    # another example class reruns only the aggregate
    set_params(project, anomaly={"example_class": 1})
    out = sh("dvc repro anomaly", project)
    assert "Stage 'anomaly_models' didn't change, skipping" in out and "Running stage 'anomaly':" in out

    for c in (0, 1):
        d = project / f"data/anomaly/{c}"
        assert (d / "model.keras").is_file()
        stats = json.loads((d / "stats.json").read_text())
        assert stats["class"] == c and stats["epochs"] == 1 and stats["train_images"] > 100
        assert set(stats["train_scores"]) == {"mse", "ssim", "latent", "knn", "pca"}
    # headline figures only; no top-level `threshold`: every class has its own model
    metrics = json.loads((project / "metrics/anomaly.json").read_text())
    expected = {"score", "auroc_mean", "auroc_min", "ap_mean", "f1_mean", "pca_auroc_mean", "classes_above_pca"}
    assert set(metrics) == expected
    assert metrics["score"] == "ensemble" and metrics["classes_above_pca"] in (0, 1, 2)
    assert all(0 <= v <= 1 for k, v in metrics.items() if k not in ("score", "classes_above_pca"))

    with open(project / "plots/anomaly_roc.csv") as f:
        roc = list(csv.DictReader(f))
    assert list(roc[0]) == ["class", "fpr", "tpr"] and {r["class"] for r in roc} == {"0", "1"}
    assert all(sum(r["class"] == c for r in roc) <= 22 for c in "01")
    with open(project / "plots/anomaly_by_class.csv") as f:
        by_class = list(csv.DictReader(f))
    assert {(r["class"], r["method"]) for r in by_class} == {
        (c, m) for c in "01" for m in ("mse", "ssim", "latent", "knn", "ensemble", "pca")
    }
    assert all(math.isfinite(float(r["threshold"])) for r in by_class)
    auroc = {(r["class"], r["method"]): float(r["auroc"]) for r in by_class}
    assert metrics["auroc_mean"] == pytest.approx((auroc["0", "ensemble"] + auroc["1", "ensemble"]) / 2, abs=1e-6)
    assert metrics["auroc_min"] == min(auroc["0", "ensemble"], auroc["1", "ensemble"])
    assert metrics["classes_above_pca"] == sum(auroc[c, "ensemble"] > auroc[c, "pca"] for c in "01")
    assert auroc["1", "pca"] > 0.9  # PCA on the "1"s separates them well even here
    assert (project / "plots/anomaly_examples.png").stat().st_size > 1000

    # The denoiser's params do not touch the anomaly stages ...
    sh("git add -A && git commit -q -m results", project)
    set_params(project, epochs=3, batch_size=64, noise={"factor": 0.5}, model={"preset": "wide"})
    out = sh("dvc repro anomaly", project)
    assert "Running stage 'noisy_pairs'" in out  # new noisy arrays, the same clean ones
    assert "Running stage 'anomaly" not in out
    # ... a threshold or a choice of score reruns only the aggregate ...
    set_params(project, anomaly={"threshold_k": 1.0, "score": "ssim"})
    out = sh("dvc repro anomaly", project)
    assert "Stage 'anomaly_models' didn't change, skipping" in out and "Running stage 'anomaly':" in out
    # ... a new class retrains the models, each seeded alone: classes 0 and 1 come out the
    # same, also when the models train one at a time rather than two side by side
    files = [f"{c}/{name}" for c in (0, 1) for name in ("model.keras", "test_mse.npy", "train_knn.npy")]
    before = {f: (project / "data/anomaly" / f).read_bytes() for f in files}
    set_params(project, anomaly={"classes": [0, 1, 7]}, workers=1)
    out = sh("dvc repro anomaly", project)
    assert "Running stage 'anomaly_models'" in out and "Running stage 'anomaly':" in out
    assert "3 one-class models, 1 at a time" in out
    assert {f: (project / "data/anomaly" / f).read_bytes() for f in files} == before
    metrics = json.loads((project / "metrics/anomaly.json").read_text())
    with open(project / "plots/anomaly_by_class.csv") as f:
        ssim = [float(r["auroc"]) for r in csv.DictReader(f) if r["method"] == "ssim"]
    assert metrics["score"] == "ssim" and len(ssim) == 3  # classes 0, 1 and 7
    assert metrics["auroc_mean"] == pytest.approx(sum(ssim) / 3, abs=1e-6) and metrics["auroc_min"] == min(ssim)
