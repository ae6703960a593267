"""End to end with the real `dvc repro`: `dataset: folder` on images the test makes.

One scratch project, two data sets: colour 32×48 images without classes (every
denoising stage; the anomaly stages refuse unlabelled data with one clear line), then
grayscale images in class sub-folders (the whole pipeline, anomaly study included).
"""

import json

import numpy as np
import pytest
from image_files import save
from PIL import Image
from project_copy import run, set_params, sh, tiny_project

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def blobs(n, h, w, channels, seed):
    """``n`` smooth random images (uint8), so that a denoiser has something to learn."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for _ in range(n):
        img = np.zeros((h, w, channels))
        for _ in range(2):
            cy, cx, r = rng.random(3) * [1, 1, 0.3] + [0, 0, 0.1]
            img += rng.random(channels) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        out.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return out


def test_folder_colour_then_grayscale_classes_end_to_end(tmp_path):
    colour = tmp_path / "colour"
    for i, img in enumerate(blobs(40, 32, 48, 3, seed=0)):
        save(colour / f"{i:02d}.{'png' if i % 2 else 'jpg'}", img)
    (colour / "README.txt").write_text("not an image")  # skipped, counted
    project = tiny_project(tmp_path / "project", epochs=1, batch_size=8)
    set_params(
        project,
        dataset="folder",
        folder={"path": str(colour), "channels": 3, "test_fraction": 0.25},
        baselines={"subset": 10, "val_images": 4},
    )

    out = sh("dvc repro evaluate plots", project)
    for stage in ("download", "noisy_pairs", "baselines", "train", "evaluate", "plots"):
        assert f"Running stage '{stage}'" in out
    assert "skipped 1 of 41 entries" in out
    raw = json.loads((project / "data/raw/classes.json").read_text())
    assert raw == {
        "channels": 3,
        "classes": [],
        "converted": 0,
        "size": [32, 48],
        "skipped": 1,
        "test_images": 10,
        "train_images": 30,
    }
    x_test = np.load(project / "data/prepared/x_test.npy")
    assert x_test.shape == (10, 32, 48, 3)
    metrics = json.loads((project / "metrics/eval.json").read_text())
    assert metrics["test_images"] == 10 and metrics["denoise_psnr"] > 0
    assert json.loads((project / "metrics/train.json").read_text())["train_images"] == 27  # 10 % to validation
    figure = np.asarray(Image.open(project / "plots/reconstructions.png").convert("RGB")).astype(int)
    assert np.abs(figure[..., 0] - figure[..., 1]).max() > 50, "the figure shows colour"
    # without classes, the anomaly study says so in one line and writes nothing
    code, out = run("dvc repro anomaly_models", project)
    assert code != 0 and "need at least two labelled classes" in out and "Traceback" not in out
    assert not (project / "data/anomaly").exists()

    gray = tmp_path / "gray"
    for c, name in enumerate(["circle", "square"]):
        for i, img in enumerate(blobs(24, 16, 16, 1, seed=c + 1)):
            save(gray / name / f"{i:02d}.png", img[..., 0])
    set_params(project, folder={"path": str(gray), "channels": 1, "size": [16, 16]})
    out = sh("dvc repro", project)
    for stage in (
        "download",
        "noisy_pairs",
        "train",
        "evaluate",
        "plots",
        "anomaly_models",
        "anomaly",
    ):
        assert f"Running stage '{stage}'" in out
    raw = json.loads((project / "data/raw/classes.json").read_text())
    assert raw["classes"] == ["circle", "square"] and raw["size"] == [16, 16] and raw["channels"] == 1
    assert np.load(project / "data/prepared/x_train.npy").shape[1:] == (16, 16, 1)
    assert sorted(set(np.load(project / "data/prepared/y_test.npy").tolist())) == [0, 1]
    anomaly = json.loads((project / "metrics/anomaly.json").read_text())
    assert {"auroc_mean", "auroc_min", "classes_above_pca"} <= set(anomaly)
    assert "up to date" in sh("dvc status", project)
