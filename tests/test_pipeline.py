"""End to end: the real `dvc repro` and `dvc exp run` on mnist_sample, in a scratch git repo.

This is the test a user's first five minutes depend on: the pipeline runs from a
fresh checkout, reruns nothing when nothing changed, reruns only what a param
touches, reproduces byte for byte, and lists experiments with their metrics.
"""

import json
import math

import pytest
from conftest import EVAL_KEYS, copy_project, first_repro_log
from project_copy import sh

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def project(pipeline_done, tmp_path):
    """The tiny project (1 epoch, batch 256) right after its first `dvc repro` from a fresh
    checkout, committed (the shared :func:`conftest.pipeline_done`, copied)."""
    return copy_project(pipeline_done, tmp_path / "project")


def read_metrics(root):
    return {p.name: json.loads(p.read_text()) for p in sorted((root / "metrics").glob("*.json"))}


def test_repro_then_noop_then_force_is_byte_identical_then_experiment(pipeline_done, project):
    out = first_repro_log(pipeline_done).read_text()
    for stage in ("download", "noisy_pairs", "baselines", "train", "evaluate", "plots"):
        assert f"Running stage '{stage}'" in out
    for path in (
        "data/raw/x_train.npy",
        "data/prepared/x_test_noisy.npy",
        "models/autoencoder.keras",
        "plots/reconstructions.png",
        "plots/denoising.png",
        "dvclive/plots/metrics/train/loss.tsv",
        "dvclive/plots/metrics/eval/loss.tsv",
        "dvc.lock",
    ):
        assert (project / path).is_file(), path
    metrics = read_metrics(project)
    assert set(metrics["eval.json"]) == EVAL_KEYS
    assert set(metrics["train.json"]) == {"loss", "val_loss", "epochs", "train_images"}
    assert set(metrics["train_timing.json"]) == {"seconds", "images_per_second"}
    # a table a person can read: headline figures only (dvc exp show has a column per value)
    assert sum(len(values) for values in metrics.values()) <= 40
    for values in metrics.values():
        assert all(math.isfinite(v) for v in values.values() if not isinstance(v, str))
    assert metrics["eval.json"]["test_images"] == 1000
    assert 0 < metrics["eval.json"]["score_threshold"] < 1  # MSE of clean images, [0, 1] scale
    assert metrics["train.json"] == {**metrics["train.json"], "epochs": 1, "train_images": 3600}
    assert len((project / "dvclive/plots/metrics/train/loss.tsv").read_text().splitlines()) == 2
    baselines = metrics["baselines.json"]
    assert set(baselines) == {"median_psnr", "gaussian_psnr", "best_method", "best_psnr", "level"}
    assert baselines["best_method"] in ("median", "gaussian") and baselines["level"] == 0.4
    assert baselines["best_psnr"] == max(baselines["median_psnr"], baselines["gaussian_psnr"])
    by_noise = (project / "plots/psnr_by_noise.csv").read_text().splitlines()
    assert by_noise[0] == "level,method,psnr,ssim"
    assert sorted(line.split(",")[:2][1] for line in by_noise[1:]) == sorted(
        ["autoencoder", "noisy", "median", "gaussian"] * 2
    )  # levels 0.2 and the headline 0.4

    # Nothing changed: nothing reruns.
    assert "Data and pipelines are up to date" in sh("dvc repro", project)
    assert "up to date" in sh("dvc status", project)

    # Forced rerun: the same bytes (timing is not a stage output, so dvc.lock is unchanged too).
    # The denoising chain from the download, and the anomaly aggregate; the forced reruns of
    # the one-class models and the latent stages are in their own tests.
    lock = (project / "dvc.lock").read_bytes()
    before = read_metrics(project)
    out = sh("dvc repro -f evaluate plots && dvc repro -f -s anomaly", project)
    for stage in ("download", "noisy_pairs", "baselines", "train", "evaluate", "plots", "anomaly"):
        assert f"Running stage '{stage}'" in out
    assert (project / "dvc.lock").read_bytes() == lock
    after = read_metrics(project)
    for name in ("train.json", "eval.json", "baselines.json", "anomaly.json"):
        assert after[name] == before[name], name
    assert "up to date" in sh("dvc status", project)
    sh("git checkout -- metrics/train_timing.json", project)

    # A tracked experiment: only train and what follows rerun.
    out = sh("dvc exp run -S epochs=2 -n two-epochs", project)
    assert "Stage 'download' didn't change, skipping" in out
    assert "Stage 'noisy_pairs' didn't change, skipping" in out
    assert "Stage 'baselines' didn't change, skipping" in out
    for stage in ("train", "evaluate", "plots"):
        assert f"Running stage '{stage}'" in out
    shown = json.loads(sh("dvc exp show --json", project))
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    runs = [r for e in exps for r in e.get("revs", [])]
    two = [r for r in runs if r.get("name") == "two-epochs"]
    assert two, f"experiment not listed: {json.dumps(shown)[:2000]}"
    data = two[0]["data"]
    assert data["params"]["params.yaml"]["data"]["epochs"] == 2
    exp_metrics = data["metrics"]
    assert exp_metrics["metrics/train.json"]["data"]["epochs"] == 2
    assert set(exp_metrics["metrics/eval.json"]["data"]) == EVAL_KEYS

    # Comparing runs: metrics diff against the last commit, plots rendered.
    diff = json.loads(sh("dvc metrics diff --json", project))
    assert "metrics/train.json" in diff
    sh("dvc plots show -o rendered", project)
    html = (project / "rendered/index.html").read_text()
    assert "PSNR by noise level" in html and '"method"' in html  # the per-method template was used
    # each plot drawn once: the two loss curves, PSNR and SSIM by noise, AUROC by class, ROC
    assert html.count("vegaEmbed(") == 6
    assert "toNumber(datum.step) + 1" in html and '"format": "d"' in html  # integer epochs from 1
    assert '"field": "class", "type": "ordinal"' in html  # classes as categories
