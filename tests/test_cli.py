"""The `cae` command, in-process on tiny untrained models, plus the installed script once.

Every bad input the command can meet has a test: it must end in a clear message and
the documented exit status (1: some images failed, the others written; 2: nothing
done), never a traceback.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from image_files import gray, save
from PIL import Image

from cae.cli import main
from cae.config import ModelParams
from cae.model import build_autoencoder, save_model

CAE = Path(sys.executable).parent / "cae"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    paths = {}
    for name, shape in (("gray", (8, 8, 1)), ("rgb", (8, 8, 3))):
        paths[name] = root / f"{name}.keras"
        save_model(build_autoencoder(ModelParams(filters=[4]), shape), paths[name])
    return paths


def cae(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def error_lines(err):
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_denoise_keeps_size_format_and_depth_tiling_odd_sizes(tmp_path, capsys, models):
    save(tmp_path / "in/a.png", gray(8, 8))
    save(tmp_path / "in/b.png", gray(50, 37))
    save(tmp_path / "in/c.jpg", gray(37, 50))
    save(tmp_path / "in/d.bmp", gray(8, 8))
    save(tmp_path / "in/e.tiff", gray(9, 5))
    code, _, err = cae(capsys, "denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", models["gray"])
    assert code == 0, err
    assert err.strip().splitlines()[-1] == "5 written, 0 failed"
    for src in sorted((tmp_path / "in").iterdir()):
        with Image.open(src) as a, Image.open(tmp_path / "out" / src.name) as b:
            assert (b.format, b.mode, b.size) == (a.format, a.mode, a.size), src.name
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "c.jpg", "d.bmp", "e.tiff"]


def test_reconstruct_resize_recursive_and_rgb_model(tmp_path, capsys, models):
    save(tmp_path / "in/sub/a.png", np.zeros((30, 20, 3), np.uint8))
    save(tmp_path / "in/g.png", gray(8, 8))
    args = ["reconstruct", tmp_path / "in", "-r", "-o", tmp_path / "out", "--model", models["rgb"], "--resize"]
    code, _, err = cae(capsys, *args)
    assert code == 1
    assert error_lines(err) == [
        f"error: {tmp_path / 'in/g.png'}: grayscale image, but the model takes RGB (3 channels); "
        "add --convert to convert it to RGB"
    ]
    with Image.open(tmp_path / "out/sub/a.png") as im:
        assert (im.mode, im.size) == ("RGB", (20, 30))
    code, _, err = cae(capsys, *args, "--convert", "--overwrite")
    assert code == 0 and err.strip().endswith("2 written, 0 failed")
    with Image.open(tmp_path / "out/g.png") as im:
        assert im.mode == "RGB", "--convert converts to the model's mode"


def test_no_trained_model_says_how_to_make_one(tmp_path, capsys, monkeypatch):
    save(tmp_path / "a.png", gray(8, 8))
    monkeypatch.chdir(tmp_path)
    for args in (["denoise", "a.png", "-o", "out"], ["score", "a.png"], ["info"]):
        code, _, err = cae(capsys, *args)
        assert code == 2
        assert error_lines(err) == [
            "error: models/autoencoder.keras: no trained model here; "
            "run `dvc repro` (or `dvc pull`) to produce it, or pass --model"
        ]
    assert not (tmp_path / "out").exists()


def test_corrupt_and_truncated_images_are_skipped_counted_and_named(tmp_path, capsys, models):
    save(tmp_path / "in/good.png", gray(8, 8))
    save(tmp_path / "in/big.png", gray(40, 40))
    (tmp_path / "in/junk.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "in/cut.png").write_bytes((tmp_path / "in/big.png").read_bytes()[:100])
    code, _, err = cae(capsys, "denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", models["gray"])
    assert code == 1
    assert err.strip().splitlines()[-1] == "2 written, 2 failed"
    failures = error_lines(err)
    assert len(failures) == 2
    assert failures[0].startswith(f"error: {tmp_path / 'in/cut.png'}: unreadable or corrupt image")
    assert failures[1].startswith(f"error: {tmp_path / 'in/junk.png'}: unreadable")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["big.png", "good.png"]


def test_colour_image_to_grayscale_model_needs_convert_alpha_palette_16_bit_just_work(tmp_path, capsys, models):
    colour = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    save(tmp_path / "in/rgb.png", colour)
    save(tmp_path / "in/rgba.png", np.dstack([colour, gray(8, 8)]), mode="RGBA")
    save(tmp_path / "in/la.png", np.dstack([gray(8, 8), gray(8, 8, 1)]), mode="LA")
    Image.fromarray(gray(12, 12)).convert("P").save(tmp_path / "in/palette.png")
    save(tmp_path / "in/deep.tif", (gray(10, 10).astype(np.uint16) * 257))
    common = [tmp_path / "in", "-o", tmp_path / "out", "--model", models["gray"]]
    code, _, err = cae(capsys, "denoise", *common)
    assert code == 1
    failed = error_lines(err)
    assert [line.split(": ")[1] for line in failed] == [str(tmp_path / "in/rgb.png"), str(tmp_path / "in/rgba.png")]
    assert all("RGB image, but the model takes grayscale (1 channel); add --convert" in line for line in failed)
    modes = {}
    for name in ("la.png", "palette.png", "deep.tif"):
        with Image.open(tmp_path / "out" / name) as im:
            modes[name] = im.mode
    assert modes == {"la.png": "LA", "palette.png": "L", "deep.tif": "I;16"}

    code, _, err = cae(capsys, "denoise", *common, "--convert")
    assert code == 1, "the outputs written first are not overwritten"
    assert err.strip().splitlines()[-1] == "2 written, 3 failed"
    with Image.open(tmp_path / "out/rgba.png") as im:
        assert im.mode == "LA" and np.array_equal(np.asarray(im)[..., 1], gray(8, 8))


def test_pixel_limit_turns_decompression_bombs_into_per_file_errors(tmp_path, capsys, models):
    save(tmp_path / "in/ok.png", gray(8, 8))
    save(tmp_path / "in/large.png", gray(100, 100))
    common = ["denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", models["gray"]]
    for limit in (6_000, 1_000):  # Pillow warns under twice its limit and raises over it
        code, _, err = cae(capsys, *common, "--max-pixels", limit, "--overwrite")
        assert code == 1
        assert error_lines(err) == [
            f"error: {tmp_path / 'in/large.png'}: image has 10,000 pixels, over the limit of {limit:,} (--max-pixels)"
        ]
        assert not (tmp_path / "out/large.png").exists()


def test_existing_output_is_a_per_file_error_unless_overwrite(tmp_path, capsys, models):
    save(tmp_path / "in/a.png", gray(8, 8))
    save(tmp_path / "in/b.png", gray(8, 8, 1))
    save(tmp_path / "out/a.png", np.zeros((3, 3), np.uint8))
    common = ["denoise", tmp_path / "in", "-o", tmp_path / "out", "--model", models["gray"]]
    code, _, err = cae(capsys, *common)
    assert code == 1
    assert error_lines(err) == [
        f"error: {tmp_path / 'in/a.png'}: {tmp_path / 'out/a.png'} already exists; add --overwrite to replace it"
    ]
    with Image.open(tmp_path / "out/a.png") as im:
        assert im.size == (3, 3), "left untouched"
    code, _, err = cae(capsys, *common, "--overwrite")
    assert code == 0 and err.strip().endswith("2 written, 0 failed")
    with Image.open(tmp_path / "out/a.png") as im:
        assert im.size == (8, 8)


def test_unwritable_output_folder_stops_before_any_work(tmp_path, capsys, models):
    save(tmp_path / "a.png", gray(8, 8))
    (tmp_path / "somefile").write_text("a regular file")
    for out, why in (("somefile/out", "Not a directory"), ("somefile", "File exists")):
        code, _, err = cae(capsys, "denoise", tmp_path / "a.png", "-o", tmp_path / out, "--model", models["gray"])
        assert code == 2
        assert error_lines(err) == [f"error: {tmp_path / out}: cannot write output here ({why})"]
        assert "written" not in err
    code, _, err = cae(
        capsys, "score", tmp_path / "a.png", "--csv", tmp_path / "somefile/s.csv", "--model", models["gray"]
    )
    assert code == 2 and "cannot write output here" in err


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        (
            "empty",
            "empty: no images in this folder (looked for bmp, jpeg, jpg, png, tif, tiff); "
            "add --recursive to look in its sub-folders",
        ),
        ("empty/*.png", "empty/*.png: the pattern matches no images (bmp, jpeg, jpg, png, tif, tiff)"),
        ("nothere.png", "nothere.png: no such file or folder"),
    ],
)
def test_folder_without_images_or_glob_matching_nothing_stops_before_any_work(
    tmp_path, capsys, monkeypatch, models, arg, message
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    code, _, err = cae(capsys, "denoise", arg, "-o", "out", "--model", models["gray"])
    assert code == 2
    assert error_lines(err) == [f"error: {message}"]
    assert not (tmp_path / "out").exists()


def test_bad_option_values_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["denoise", "x.png", "-o", "out", "--batch-size", "0"])
    assert exc.value.code == 2
    assert "--batch-size: must be at least 1 (got 0)" in capsys.readouterr().err


def test_score_prints_a_table_writes_csv_and_adds_decisions_once_there_is_a_threshold(
    tmp_path, capsys, monkeypatch, models
):
    monkeypatch.chdir(tmp_path)
    save(tmp_path / "in/a.png", gray(8, 8))
    save(tmp_path / "in/b.png", np.zeros((16, 11), np.uint8))
    code, out, err = cae(capsys, "score", "in", "--csv", "s.csv", "--model", models["gray"])
    assert code == 0 and err.strip() == "2 scored, 0 failed"
    lines = out.splitlines()
    assert lines[0].split() == ["file", "score"] and [line.split()[0] for line in lines[1:]] == ["in/a.png", "in/b.png"]
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert [r["file"] for r in rows] == ["in/a.png", "in/b.png"]
    scores = [float(r["score"]) for r in rows]
    assert all(0 <= s <= 1 for s in scores)
    assert [f"{s:.6f}" for s in scores] == [line.split()[1] for line in lines[1:]]

    code, _, err = cae(capsys, "score", "in", "--csv", "s.csv", "--model", models["gray"])
    assert code == 2 and "s.csv: already exists; add --overwrite" in err

    # The pipeline's own model and the evaluate stage's threshold: a decision column.
    (tmp_path / "models").mkdir()
    (tmp_path / "models/autoencoder.keras").write_bytes(models["gray"].read_bytes())
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/eval.json").write_text(json.dumps({"score_threshold": (scores[0] + scores[1]) / 2}))
    code, out, _ = cae(capsys, "score", "in", "--csv", "s.csv", "--overwrite")
    assert code == 0
    decisions = [line.split()[2] for line in out.splitlines()[1:]]
    assert out.splitlines()[0].split() == ["file", "score", "decision"]
    assert sorted(decisions) == ["anomaly", "normal"]
    assert [r["decision"] for r in csv.DictReader((tmp_path / "s.csv").open())] == decisions
    # Another model: the pipeline's threshold does not apply to it.
    code, out, _ = cae(capsys, "score", "in", "--model", models["gray"])
    assert out.splitlines()[0].split() == ["file", "score"]

    # Metrics from before the evaluate stage computed a threshold: no decision.
    (tmp_path / "metrics/eval.json").write_text(json.dumps({"denoise_psnr": 19.3}))
    code, out, _ = cae(capsys, "score", "in")
    assert code == 0 and out.splitlines()[0].split() == ["file", "score"]

    (tmp_path / "metrics/eval.json").write_text('{"score_threshold": "high"}')
    code, _, err = cae(capsys, "score", "in")
    assert code == 2 and error_lines(err) == [
        "error: metrics/eval.json: 'score_threshold' must be a finite number (got 'high'); rerun `dvc repro`"
    ]


def test_info_shows_architecture_training_params_checksums_and_metrics(tmp_path, capsys, monkeypatch, models):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models/autoencoder.keras").write_bytes(models["gray"].read_bytes())
    code, out, _ = cae(capsys, "info")
    assert code == 0
    assert "input 8×8×1 (grayscale)" in out and "enc0_conv" in out and "reconstruction" in out
    assert "trained with: unknown (dvc.lock: not found" in out
    assert "params.yaml: not found" in out
    assert "metrics: none in metrics/" in out

    import hashlib

    md5 = hashlib.md5(models["gray"].read_bytes()).hexdigest()
    lock = {
        "schema": "2.0",
        "stages": {
            "train": {
                "cmd": "python -m cae.stages.train",
                "deps": [{"path": "data/prepared", "hash": "md5", "md5": "f549240f.dir"}],
                "params": {"params.yaml": {"epochs": 3, "model": {"filters": [4]}, "seed": 0}},
                "outs": [{"path": "models/autoencoder.keras", "hash": "md5", "md5": md5}],
            }
        },
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"epochs": 5, "model": {"filters": [4]}, "seed": 0}))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics/eval.json").write_text(json.dumps({"denoise_psnr": 19.29}))
    code, out, _ = cae(capsys, "info")
    assert code == 0
    assert "epochs                   3   (params.yaml now: 5)" in out
    assert "model.filters            [4]\n" in out
    assert "data/prepared                f549240f.dir" in out
    assert f"model md5 {md5}: matches models/autoencoder.keras" in out
    assert "denoise_psnr           19.29" in out


def test_help_reads_well_in_process(capsys):
    for args in ([], ["denoise"], ["reconstruct"], ["score"], ["info"]):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "example" in text
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    assert "appears for the pipeline's own model once its evaluate stage has run" in " ".join(
        capsys.readouterr().out.split()
    )


def test_installed_script_help_and_a_real_run(tmp_path, models):
    env = {**os.environ, "PATH": f"{CAE.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([CAE, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and "cae denoise noisy/ -o clean/" in proc.stdout
    save(tmp_path / "in/a.png", gray(8, 8))
    save(tmp_path / "in/b.png", gray(20, 31))
    proc = subprocess.run(
        [CAE, "denoise", "in", "-o", "out", "--model", models["gray"]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "2 written, 0 failed"
    assert "Traceback" not in proc.stderr
    with Image.open(tmp_path / "out/b.png") as im:
        assert im.size == (31, 20)
