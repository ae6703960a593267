"""End to end: the latent stages with the real `dvc repro`, on mnist_sample (one epoch).

The template project (``pipeline_done``) has run every stage, ours included; this test
checks their outputs, that a forced rerun gives the same bytes, and which params rerun what.
"""

import json

import numpy as np
import pytest
from conftest import copy_project, first_repro_log
from project_copy import set_params, sh

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

PROBES = ("knn_acc", "linear_acc", "retrieval_p10")


def test_latent_outputs_same_bytes_when_forced_and_what_reruns(pipeline_done, tmp_path):
    project = copy_project(pipeline_done, tmp_path / "project")
    for variant in ("plain", "variational"):
        assert (project / f"models/embedding-{variant}.keras").is_file()
        for split, n in (("train", 3600), ("test", 1000)):
            codes = np.load(project / f"data/latent/{variant}_{split}.npy")
            assert codes.ndim == 2 and len(codes) == n
    metrics = json.loads((project / "metrics/latent.json").read_text())
    prefixes = ("", "pca_", "pca2x_", "vae_")  # the code, PCA-16, PCA-32, the VAE's code
    assert set(metrics) == {f"{p}{k}" for p in prefixes for k in PROBES}  # headline figures only
    assert all(0.1 < metrics[f"{p}{k}"] <= 1 for p in prefixes for k in PROBES)
    assert metrics["pca_knn_acc"] > 0.8  # PCA on 3,600 images already separates the digits
    for figure in ("latent_2d", "samples", "interpolation"):
        assert (project / f"plots/{figure}.png").stat().st_size > 5000, figure
    # the default embeddings are denoising autoencoders (latent.noise), both variants
    log = first_repro_log(pipeline_done).read_text()
    assert log.count("images with Gaussian noise 0.3 on its inputs for 1 epochs") == 2

    # Forced: the same codes, metrics and figures, byte for byte.
    sh("dvc repro -f -s latent && dvc repro -f -s generate", project)
    assert sh("git status --porcelain", project).strip() == ""
    # The two embeddings trained one after another in one process, not side by side in
    # two: the same models, byte for byte (each process trains on one thread).
    models = {v: (project / f"models/embedding-{v}.keras").read_bytes() for v in ("plain", "variational")}
    set_params(project, workers=1)
    out = sh("dvc repro -f -s train_embedding", project)
    assert "2 embedding models, 1 at a time" in out
    assert {v: (project / f"models/embedding-{v}.keras").read_bytes() for v in models} == models

    # The sampling params rerun only `generate`; the probes' params only `latent` (the codes
    # it writes do not change, so `generate` is skipped); neither retrains the embeddings,
    # and the denoiser's params touch none of them.
    set_params(project, latent={"gmm_components": 3, "gmm_covariance": "diag"})
    out = sh("dvc repro generate", project)
    assert "Stage 'latent' didn't change, skipping" in out and "Running stage 'generate'" in out
    set_params(project, latent={"standardise": True, "projection": "pca"})
    set_params(project, noise={"factor": 0.5}, model={"preset": "wide"})
    out = sh("dvc repro generate", project)
    # new noisy arrays (run, or restored from DVC's run cache), the same clean ones
    assert "'noisy_pairs'" in out and "Stage 'noisy_pairs' didn't change" not in out
    assert "Stage 'train_embedding' didn't change, skipping" in out
    assert "Running stage 'latent'" in out and "Stage 'generate' didn't change, skipping" in out
    assert json.loads((project / "metrics/latent.json").read_text())["pca_knn_acc"] != metrics["pca_knn_acc"]
