"""Stage entry points as DVC runs them: bad params and missing inputs fail cleanly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = [
    "download",
    "noisy_pairs",
    "baselines",
    "train",
    "evaluate",
    "plots",
    "anomaly_models",
    "anomaly",
    "train_embedding",
    "latent",
    "generate",
]


def run_stage(name, cwd, timeout=300, args=(), first_on_path=None, **kwargs):
    """Run stage ``name`` in ``cwd`` as DVC does; ``first_on_path``: a folder searched for
    modules before everything else (:func:`no_tensorflow`)."""
    path = [str(first_on_path)] if first_on_path else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, str(REPO / "src")])}
    return subprocess.run(
        [sys.executable, "-m", f"cae.stages.{name}", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


@pytest.fixture(scope="session")
def no_tensorflow(tmp_path_factory):
    """A folder whose ``tensorflow`` (and so Keras) fails to import. A stage that refuses
    its inputs with it first on the path checked them before starting TensorFlow: the
    user waits for no start-up of several seconds to learn that a file is missing."""
    root = tmp_path_factory.mktemp("no-tensorflow")
    (root / "tensorflow").mkdir()
    (root / "tensorflow/__init__.py").write_text(
        'raise ImportError("TensorFlow imported before the inputs were checked")\n'
    )
    return root


def write_params(directory, **overrides):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split("__")
        node = params
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    (directory / "params.yaml").write_text(yaml.safe_dump(params))


def write_tiny_prepared(root):
    """data/prepared/ for `train`: 64 training and 16 validation images of 28×28, noisy pairs."""
    import numpy as np

    from cae.io import write_arrays

    rng = np.random.default_rng(0)
    x = (rng.random((80, 28, 28, 1)) * 255).astype(np.uint8)
    noisy = rng.random((80, 28, 28, 1)).astype(np.float32)
    write_arrays(
        root / "data/prepared",
        {"x_train": x[:64], "x_val": x[64:], "x_train_noisy": noisy[:64], "x_val_noisy": noisy[64:]},
    )


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def usage_error(name, cwd, args):
    """Run stage ``name`` with command-line ``args`` that it must refuse: exit 2, one
    `error:` line and no traceback. Returns that line."""
    proc = run_stage(name, cwd, args=args)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return error_lines(proc)[0]


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"epochs": -1}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"model__filters": []}, "model.filters"),
        ({"noise__factor": -0.5}, "noise.factor"),
        ({"model__colour": 3}, "model.colour"),
    ],
)
def test_bad_params_exit_non_zero_with_one_line_and_no_output(tmp_path, stage, overrides, key):
    write_params(tmp_path, **overrides)
    proc = run_stage(stage, tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == error_lines(proc)
    assert len(error_lines(proc)) == 1
    assert error_lines(proc)[0].startswith(f"error: params.yaml: {key}: ")
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"], "nothing may be written"


def test_bad_steps_per_execution_stops_train_with_one_line(tmp_path):
    write_params(tmp_path, steps_per_execution=0)
    proc = run_stage("train", tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: params.yaml: steps_per_execution: Input should be greater than 0 (got 0)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"], "nothing may be written"


@pytest.mark.parametrize(
    ("stage", "missing", "hint"),
    [
        ("noisy_pairs", "data/raw", "dvc repro download"),
        ("train", "data/prepared", "dvc repro noisy_pairs"),
        ("evaluate", "data/prepared", "dvc repro noisy_pairs"),
        ("baselines", "data/prepared", "dvc repro noisy_pairs"),
        ("anomaly", "data/prepared", "dvc repro noisy_pairs"),
        ("latent", "data/prepared", "dvc repro noisy_pairs"),
        ("generate", "data/prepared", "dvc repro noisy_pairs"),
    ],
)
def test_missing_input_names_the_path_and_the_fix(tmp_path, stage, missing, hint, no_tensorflow):
    write_params(tmp_path)
    proc = run_stage(stage, tmp_path, first_on_path=no_tensorflow)
    assert proc.returncode == 2
    assert f"error: {missing}" in proc.stderr and hint in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


def write_prepared_test_split(root):
    """The arrays `evaluate` reads, as `noisy_pairs` writes them (2 blank images each)."""
    import numpy as np

    from cae.io import write_arrays

    x = np.zeros((2, 28, 28, 1), np.uint8)
    write_arrays(
        root / "data/prepared",
        {
            "x_test": x,
            "x_test_noisy": x.astype(np.float32),
            "x_val": x,
            "test_levels": np.array([0.4], np.float32),
            "x_test_levels": x[None].astype(np.float32),
        },
    )


@pytest.mark.parametrize("stage", ["evaluate", "plots"])
def test_missing_model_says_to_train_first(tmp_path, stage, no_tensorflow):
    write_params(tmp_path)
    write_prepared_test_split(tmp_path)
    (tmp_path / "data/baselines").mkdir()
    (tmp_path / "data/baselines/by_noise.csv").write_text("level,method,psnr,ssim\n0.4,median,15.0,0.5\n")
    proc = run_stage(stage, tmp_path, first_on_path=no_tensorflow)
    assert proc.returncode == 2
    assert error_lines(proc) == [
        "error: models/autoencoder.keras: no trained model here; run `dvc repro train` (or `dvc pull`) first"
    ]
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()


def test_evaluate_without_baselines_says_which_stage_to_run(tmp_path, no_tensorflow):
    write_params(tmp_path)
    write_prepared_test_split(tmp_path)
    proc = run_stage("evaluate", tmp_path, first_on_path=no_tensorflow)
    assert proc.returncode == 2
    assert "data/baselines/by_noise.csv: not found; run `dvc repro baselines`" in proc.stderr


def test_image_size_the_model_cannot_take(tmp_path, no_tensorflow):
    import numpy as np

    from cae.io import write_arrays

    write_params(tmp_path, model__filters=[8, 8, 8])  # 3 levels: 28 is not a multiple of 8
    x = np.zeros((4, 28, 28, 1), np.uint8)
    write_arrays(
        tmp_path / "data/prepared",
        {n: x for n in ("x_train", "x_val")} | {n: x.astype(np.float32) for n in ("x_train_noisy", "x_val_noisy")},
    )
    proc = run_stage("train", tmp_path, first_on_path=no_tensorflow)
    assert proc.returncode == 2
    assert "multiples of 8" in proc.stderr and "model.filters" in proc.stderr
    assert not (tmp_path / "models").exists()


def test_anomaly_models_with_too_few_images_names_the_class_and_train_none(tmp_path):
    import numpy as np

    from cae.io import write_arrays

    write_params(tmp_path, anomaly__classes=[0, 1], anomaly__min_images=5)
    x = np.zeros((12, 28, 28, 1), np.uint8)
    y = np.array([0] * 10 + [1] * 2, np.uint8)
    write_arrays(tmp_path / "data/prepared", {"x_train": x, "y_train": y, "x_val": x, "y_val": y, "x_test": x})
    proc = run_stage("anomaly_models", tmp_path)
    assert proc.returncode == 2
    assert error_lines(proc)[0].startswith("error: anomaly class 1: 2 training images, at least 5 needed")
    assert not (tmp_path / "data/anomaly").exists()


def test_anomaly_without_the_class_stages_says_which_to_run(tmp_path):
    import numpy as np

    from cae.io import write_arrays

    write_params(tmp_path, anomaly__classes=[0, 1], anomaly__example_class=0)
    write_arrays(
        tmp_path / "data/prepared", {"x_test": np.zeros((2, 28, 28, 1), np.uint8), "y_test": np.array([0, 1], np.uint8)}
    )
    proc = run_stage("anomaly", tmp_path)
    assert proc.returncode == 2
    assert "data/anomaly/0: not found; run `dvc repro anomaly_models`" in proc.stderr
    assert not (tmp_path / "metrics").exists()


@pytest.mark.parametrize(
    ("stage", "params", "written"),
    [
        ("train_embedding", {"latent__model__filters": [8, 8, 8]}, "models"),
        (
            "anomaly_models",
            {"anomaly__classes": [0, 1], "anomaly__min_images": 2, "anomaly__model__filters": [8] * 3},
            "data/anomaly",
        ),
    ],
)
def test_models_trained_in_worker_processes_refuse_an_image_size_before_any_starts(
    tmp_path, stage, params, written, no_tensorflow
):
    """Refused in the stage's own process, before a worker starts TensorFlow: one `error:`
    line naming the key, exit 2, nothing written."""
    import numpy as np

    from cae.io import write_arrays

    write_params(tmp_path, **params)  # 3 levels: 28 is not a multiple of 8
    x = np.zeros((4, 28, 28, 1), np.uint8)
    y = np.array([0, 0, 1, 1], np.uint8)
    write_arrays(tmp_path / "data/prepared", {"x_train": x, "y_train": y, "x_val": x, "y_val": y, "x_test": x})
    proc = run_stage(stage, tmp_path, first_on_path=no_tensorflow)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(error_lines(proc)) == 1
    assert "images of 28×28 do not fit model.filters with 3 levels" in error_lines(proc)[0]
    assert not (tmp_path / written).exists()


def test_latent_and_generate_say_which_stage_to_run_first(tmp_path, no_tensorflow):
    import numpy as np

    from cae.io import write_arrays

    write_params(tmp_path)
    x, y = np.zeros((2, 28, 28, 1), np.uint8), np.array([0, 1], np.uint8)
    write_arrays(tmp_path / "data/prepared", {"x_train": x, "y_train": y, "x_test": x, "y_test": y})
    proc = run_stage("generate", tmp_path, first_on_path=no_tensorflow)
    assert proc.returncode == 2 and "data/latent: not found; run `dvc repro latent`" in proc.stderr
    proc = run_stage("latent", tmp_path, first_on_path=no_tensorflow)
    assert proc.returncode == 2
    assert error_lines(proc) == [
        "error: models/embedding-plain.keras: no trained model here; run `dvc repro train_embedding`"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "params.yaml"]
    assert not (tmp_path / "data/latent").exists()
