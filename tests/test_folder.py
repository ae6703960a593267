"""`dataset: folder`: your own images as the raw data set, and every bad input's outcome."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from image_files import gray, save
from PIL import Image

from cae.config import FolderParams
from cae.data import read_raw
from cae.errors import DataError
from cae.folder import fit_image, split_by_class, write_folder_dataset

REPO = Path(__file__).resolve().parents[1]


def rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def classes(root: Path, counts: dict[str, int], h=16, w=16, colour=True) -> Path:
    for c, n in counts.items():
        for i in range(n):
            save(root / c / f"{i:03d}.png", rgb(h, w, hash((c, i)) % 1000) if colour else gray(h, w, i))
    return root


def build(tmp_path, root, **kw):
    kw.setdefault("channels", 3)
    cfg = FolderParams(path=str(root), **kw)
    return write_folder_dataset(cfg, tmp_path / "raw"), read_raw(tmp_path / "raw")


def test_class_folders_give_labels_a_seeded_split_and_the_same_bytes_twice(tmp_path):
    root = classes(tmp_path / "imgs", {"b_dogs": 10, "a_cats": 10}, 20, 24)
    summary, raw = build(tmp_path, root, size=[16, 16], test_fraction=0.2)
    assert summary["classes"] == ["a_cats", "b_dogs"]  # numbered in sorted order
    assert raw["x_train"].shape == (16, 16, 16, 3) and raw["x_test"].shape == (4, 16, 16, 3)
    assert sorted(raw["y_test"].tolist()) == [0, 0, 1, 1]  # 20 % of each class
    first = {p.name: p.read_bytes() for p in (tmp_path / "raw").iterdir()}
    build(tmp_path, root, size=[16, 16], test_fraction=0.2)
    assert {p.name: p.read_bytes() for p in (tmp_path / "raw").iterdir()} == first
    other = build(tmp_path, root, size=[16, 16], test_fraction=0.2, seed=1)[1]
    assert not np.array_equal(other["x_test"], raw["x_test"])


def test_no_sub_folders_means_one_unlabelled_class_at_the_images_own_size(tmp_path):
    root = tmp_path / "imgs"
    for i in range(5):
        save(root / f"{i}.png", gray(12, 8, i))
    summary, raw = build(tmp_path, root, channels=1)
    assert summary["classes"] == [] and summary["size"] == [12, 8]
    assert raw["x_train"].shape == (4, 12, 8, 1) and set(raw["y_train"].tolist()) == {0}
    stored = np.concatenate([raw["x_train"], raw["x_test"]])[..., 0]
    originals = [gray(12, 8, i) for i in range(5)]
    assert sorted(a.tobytes() for a in stored) == sorted(a.tobytes() for a in originals)  # exact pixels


def test_resize_and_centre_crop():
    wide = np.zeros((10, 30, 1), np.float32)
    wide[:, 10:20] = 1.0  # a white centre third
    cropped = fit_image(wide, (10, 10), "crop")
    assert cropped.shape == (10, 10, 1) and cropped.min() == 1.0  # only the centre is kept
    resized = fit_image(wide, (10, 10), "resize")
    assert resized.shape == (10, 10, 1) and resized.min() == 0.0  # the whole image, squeezed


def test_split_keeps_a_single_image_class_in_training():
    train, test, single = split_by_class(np.array([0, 0, 0, 0, 1, 2, 2]), 0.5, seed=0)
    assert single == [1] and 4 in train and 4 not in test
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(7))
    assert sum(i in test for i in (5, 6)) == 1  # a class of two: one each side


def test_bad_files_are_skipped_counted_and_named(tmp_path, caplog):
    root = classes(tmp_path / "imgs", {"a": 4, "b": 4})
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / "empty.png").write_bytes(b"")
    good = (root / "b" / "000.png").read_bytes()
    (root / "b" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "b" / "garbage.jpg").write_bytes(os.urandom(300))
    save(root / "b" / "bomb.png", np.zeros((300, 300), np.uint8))  # over the limit set below
    os.symlink("..", root / "a" / "loop")  # a loop back to the top folder
    os.symlink("nowhere.png", root / "a" / "broken.png")
    save(root / "a" / "gray.png", gray(16, 16))  # converted to RGB, counted
    with caplog.at_level(logging.WARNING, logger="cae.folder"):
        summary, raw = build(tmp_path, root, max_pixels=10_000)
    assert summary["skipped"] == 7 and summary["converted"] == 1
    assert len(raw["x_train"]) + len(raw["x_test"]) == 9 and raw["x_train"].shape[1:] == (16, 16, 3)
    text = caplog.text
    for name in ("notes.txt", "empty.png", "truncated.png", "garbage.jpg", "bomb.png", "loop", "broken.png"):
        assert name in text, name
    assert "over the limit of 10,000 (folder.max_pixels)" in text
    assert "symbolic link loop" in text and "skipped 7 of 16 entries" in text and "converted 1 image(s) to RGB" in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_and_folder_are_skipped(tmp_path, caplog):
    root = classes(tmp_path / "imgs", {"a": 3, "b": 3})
    (root / "a" / "000.png").chmod(0)
    save(root / "b" / "sub" / "x.png", rgb(16, 16)).parent.chmod(0)
    try:
        with caplog.at_level(logging.WARNING, logger="cae.folder"):
            summary, _ = build(tmp_path, root)
    finally:
        (root / "a" / "000.png").chmod(0o644)
        (root / "b" / "sub").chmod(0o755)
    assert summary["skipped"] == 2 and "000.png" in caplog.text and "folder unreadable" in caplog.text


def test_unreadable_file_as_root_cannot_be_simulated_so_a_read_error_is_injected(tmp_path, monkeypatch, caplog):
    """Where the tests run as root, permissions do not stop reads: inject the error instead."""
    root = classes(tmp_path / "imgs", {"a": 3, "b": 3})
    real_open = Image.open

    def deny(fp, *a, **k):
        if str(fp).endswith("a/000.png"):
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *a, **k)

    monkeypatch.setattr(Image, "open", deny)
    with caplog.at_level(logging.WARNING, logger="cae.folder"):
        summary, raw = build(tmp_path, root)
    assert summary["skipped"] == 1 and "Permission denied" in caplog.text
    assert len(raw["x_train"]) + len(raw["x_test"]) == 5


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda root: root.mkdir(), r"folder\.path: .*imgs has no images"),
        (lambda root: None, r"folder\.path: .*imgs does not exist"),
        (lambda root: root.write_text("x"), r"folder\.path: .*imgs is not a directory"),
        (lambda root: save(root / "only.png", gray(8, 8)), r"1 usable image\(s\), at least 2"),
        (
            lambda root: (save(root / "a.png", gray(8, 8)), save(root / "b.png", gray(8, 6))),
            r"b\.png: 8×6 pixels, but .*a\.png has 8×8.*folder\.size",
        ),
        (
            lambda root: (classes(root, {"c": 2}), save(root / "stray.png", gray(8, 8))),
            r"class sub-folders and also images directly inside it \(e\.g\. stray\.png\)",
        ),
        (lambda root: (root.mkdir(), (root / "x.txt").write_text("x")), r"has no images .*x\.txt: not an image"),
        (lambda root: classes(root, {"a": 1, "b": 1}, colour=False), r"no test images \(every class has a single"),
    ],
    ids=["empty", "missing", "a-file", "one-image", "mixed-sizes", "stray-files", "no-images-only-text", "singletons"],
)
def test_unusable_folders_are_one_clear_error_and_nothing_is_written(tmp_path, make, match):
    root = tmp_path / "imgs"
    make(root)
    with pytest.raises(DataError, match=match):
        build(tmp_path, root, channels=1)
    assert not (tmp_path / "raw").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_mixed_sizes_with_folder_size_are_all_brought_to_it(tmp_path):
    root = tmp_path / "imgs"
    for i, (h, w) in enumerate([(8, 8), (20, 12), (5, 40)]):
        save(root / f"{i}.png", rgb(h, w, i))
    _, raw = build(tmp_path, root, size=[8, 8], fit="crop")
    assert raw["x_train"].shape[1:] == (8, 8, 3) and len(raw["x_train"]) + len(raw["x_test"]) == 3


def test_download_stage_one_line_error_names_folder_path_and_writes_nothing(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.update(dataset="folder", folder={"path": str(tmp_path / "nope")})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "cae.stages.download"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: folder.path: {tmp_path / 'nope'} does not exist; set folder.path in params.yaml to a folder of images"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
