"""benchmarks/anomaly_seeds.py on tiny made-up data: every score measured per seed and class."""

import json
import math
from pathlib import Path

import numpy as np
import yaml
from conftest import load_benchmark


def _bench():
    return load_benchmark("anomaly_seeds")


def _prepared(directory: Path) -> None:
    from cae.io import write_arrays

    rng = np.random.default_rng(0)
    x = np.zeros((60, 16, 16, 1), np.uint8)
    y = np.repeat(np.arange(2, dtype=np.uint8), 30)
    x[y == 0, 4:12, 4:12] = 200  # class 0: a square, class 1: a bar
    x[y == 1, 2:14, 7:9] = 200
    x = np.clip(x + rng.integers(0, 40, x.shape), 0, 255).astype(np.uint8)
    write_arrays(directory, {"x_train": x, "y_train": y, "x_val": x[::6], "y_val": y[::6], "x_test": x, "y_test": y})


def test_every_score_per_seed_and_class(tmp_path, capsys):
    _prepared(tmp_path / "prepared")
    # one worker process: a TensorFlow start-up per seed, not two
    params = {
        "workers": 1,
        "anomaly": {"classes": [0, 1], "epochs": 1, "batch_size": 16, "pca_dims": 4, "neighbours": 3},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "seeds.json"
    argv = ["--seeds", "0", "1", "--params", str(tmp_path / "params.yaml"), "--prepared", str(tmp_path / "prepared")]
    assert _bench().main([*argv, "--json", str(out)]) == 0
    found = json.loads(out.read_text())
    assert set(found) == {"0", "1"} and all(set(v) == {"0", "1"} for v in found.values())
    scores = {"mse", "ssim", "latent", "knn", "ensemble", "pca"}
    assert all(
        set(r) == scores and all(0 <= a <= 100 and math.isfinite(a) for a in r.values())
        for v in found.values()
        for r in v.values()
    )
    printed = capsys.readouterr().out
    assert printed.count("ensemble above PCA on") == 2 and "over seeds [0, 1]" in printed


def test_missing_prepared_data_is_one_line(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text("{}\n")
    code = _bench().main(["--params", str(tmp_path / "params.yaml"), "--prepared", str(tmp_path / "nowhere")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "dvc repro noisy_pairs" in err and err.count("\n") == 1
