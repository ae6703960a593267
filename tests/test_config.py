"""params.yaml schema: defaults, and one clear line naming the key for every bad value."""

import sys
from pathlib import Path

import pytest
import yaml

from cae.config import Params, load_params, parse_params
from cae.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]


def test_committed_params_are_the_reference_defaults():
    params = load_params(REPO / "params.yaml")
    assert params == Params(), "params.yaml and the schema's defaults drifted apart"
    assert params.epochs == 10 and params.batch_size == 256 and params.dataset == "mnist"
    assert params.model.filters == [16, 8]
    assert params.model.kernel_size == 3
    assert params.model.downsample == "maxpool" and params.model.upsample == "upsampling"
    assert params.model.learning_rate == 1e-3 and params.model.loss == "bce"
    assert params.noise.kind == "gaussian" and params.noise.factor == 0.4
    assert params.steps_per_execution == 32  # the fastest measured for the small models (docs/speed.md)


def test_overrides_as_dvc_exp_run_writes_them():
    params = parse_params({"epochs": 20, "model": {"filters": [32, 64]}, "noise": {"factor": 0.5}})
    assert params.epochs == 20
    assert params.model.filters == [32, 64]
    assert params.model.kernel_size == 3  # untouched keys keep their defaults
    assert params.noise.factor == 0.5


@pytest.mark.parametrize(
    ("raw", "key", "words"),
    [
        ({"epochs": -1}, "epochs", "greater than 0"),
        ({"epochs": 0}, "epochs", "greater than 0"),
        ({"epochs": "ten"}, "epochs", "integer"),
        ({"epochs": 2.5}, "epochs", "integer"),
        ({"epochs": True}, "epochs", "integer"),
        ({"batch_size": 0}, "batch_size", "greater than 0"),
        ({"steps_per_execution": 0}, "steps_per_execution", "greater than 0"),
        ({"steps_per_execution": 1.5}, "steps_per_execution", "integer"),
        ({"model": {"filters": []}}, "model.filters", "at least one"),
        ({"model": {"filters": [16, 0]}}, "model.filters.1", "greater than 0"),
        ({"model": {"middle": [32, -1]}}, "model.middle.1", "greater than 0"),
        ({"model": {"middle": 64}}, "model.middle", "valid list"),
        ({"model": {"space_to_depth": 0}}, "model.space_to_depth", "greater than 0"),
        ({"model": {"space_to_depth": 2.5}}, "model.space_to_depth", "valid integer"),
        ({"model": {"skip_merge": "sum"}}, "model.skip_merge", "'concat' or 'add'"),
        ({"model": {"kernel_size": 4}}, "model.kernel_size", "odd"),
        ({"model": {"learning_rate": 0}}, "model.learning_rate", "greater than 0"),
        ({"model": {"loss": "hinge"}}, "model.loss", "bce"),
        ({"noise": {"factor": -0.1}}, "noise.factor", "greater than or equal to 0"),
        ({"noise": {"factor": float("nan")}}, "noise.factor", "finite"),
        ({"noise": {"kind": "pink"}}, "noise.kind", "gaussian"),
        ({"split": {"val_fraction": 1.0}}, "split.val_fraction", "less than 1"),
        ({"dataset": "cifar"}, "dataset", "mnist"),
        ({"task": "classify"}, "task", "denoise"),
        ({"epoch": 10}, "epoch", "unknown key"),
        ({"model": {"filter": [8]}}, "model.filter", "unknown key"),
        ({"download": {"timeout": -5}}, "download.timeout", "greater than 0"),
    ],
)
def test_bad_value_names_the_key(raw, key, words):
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    message = str(info.value)
    assert message.startswith(f"params.yaml: {key}: "), message
    assert words in message
    assert len(message.splitlines()) == 1


def test_top_level_not_a_mapping():
    with pytest.raises(ParamsError, match="params.yaml: expected a mapping"):
        parse_params([1, 2])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ParamsError, match="nope.yaml: not found"):
        load_params(tmp_path / "nope.yaml")


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("epochs: 10\nmodel:\n  filters: [16, 8\n")
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(path) in str(info.value) and "line" in str(info.value)


def test_empty_file_means_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("")
    assert load_params(path) == Params()


def test_yaml_round_trip_of_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(Params().model_dump()))
    assert load_params(path) == Params()


def test_presets_fill_unset_keys_and_explicit_keys_win():
    unet = parse_params({"model": {"preset": "unet_deep"}}).model
    assert unet.skip and unet.batch_norm and unet.convs_per_level == 2 and unet.filters == [32, 64]
    assert unet.loss == "bce" and unet.kernel_size == 3  # the rest from the reference
    mixed = parse_params({"model": {"preset": "unet", "filters": [8, 8], "loss": {"mse": 0.8, "ssim": 0.2}}}).model
    assert mixed.filters == [8, 8] and mixed.skip and mixed.loss == {"mse": 0.8, "ssim": 0.2}
    # null in params.yaml means "from the preset"
    assert parse_params({"model": {"preset": "wide", "filters": None}}).model.filters == [32, 64]


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"model": {"preset": "huge"}}, "params.yaml: model.preset: Input should be 'reference'"),
        ({"model": {"loss": {"mse": -1}}}, "params.yaml: model.loss.mse: Input should be greater than 0"),
        ({"model": {"loss": {"lpips": 1}}}, "params.yaml: model.loss.lpips: Input should be 'bce'"),
        ({"model": {"loss": {}}}, "params.yaml: model.loss: a loss mix needs at least one"),
        ({"model": {"head": "dense"}}, "params.yaml: model.head: Input should be 'conv' or 'transpose'"),
        ({"model": {"head": "transpose"}}, "params.yaml: model.head: transpose needs upsample: transpose"),
        (
            {"model": {"preset": "unet", "upsample": "transpose", "head": "transpose"}},
            "params.yaml: model.head: transpose cannot combine with skip or residual",
        ),
        ({"noise": {"factor": []}}, "params.yaml: noise.factor: must be a number or a non-empty list"),
        ({"noise": {"factor": [0.1, -1]}}, "params.yaml: noise.factor.1: Input should be greater than or equal to 0"),
        ({"noise": {"kind": "masking", "factor": 1.5}}, "params.yaml: noise.factor: for noise.kind masking"),
        ({"noise": {"kind": "salt_pepper", "eval_levels": [2]}}, "params.yaml: noise.eval_levels: for noise.kind"),
        ({"baselines": {"methods": ["magic"]}}, "params.yaml: baselines.methods.0: Input should be 'median'"),
        ({"baselines": {"subset": 0}}, "params.yaml: baselines.subset: Input should be greater than 0"),
    ],
)
def test_union_and_cross_field_errors_are_one_precise_line(raw, line):
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    assert str(info.value).startswith(line) and len(str(info.value).splitlines()) == 1, str(info.value)


def test_noise_levels_headline_and_training_levels():
    noise = parse_params({"noise": {"factor": [0.5, 0.1], "eval_levels": [0.2, 0.5]}}).noise
    assert noise.train_levels == [0.5, 0.1] and noise.test_level == 0.5 and noise.levels == [0.2, 0.5]
    assert parse_params({}).noise.levels == [0.2, 0.4, 0.6]


def test_anomaly_defaults_and_its_own_model():
    params = load_params(REPO / "params.yaml")
    anomaly = params.anomaly
    assert anomaly.classes == list(range(10)) and anomaly.score in ("mse", "ssim", "latent", "ensemble")
    assert anomaly.pca_dims == 32 and anomaly.example_class in anomaly.classes
    # the one-class models have their own architecture, independent of the denoiser's
    assert anomaly.model.latent_dim is not None and params.model.latent_dim is None
    tuned = parse_params({"model": {"preset": "wide"}, "anomaly": {"model": {"preset": "unet", "latent_dim": None}}})
    assert tuned.model.filters == [32, 64] and tuned.anomaly.model.filters == [8, 16]
    assert tuned.anomaly.model.skip and tuned.anomaly.model.latent_dim is None


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"anomaly": {"classes": []}}, "params.yaml: anomaly.classes: must list at least one entry"),
        ({"anomaly": {"classes": [1, 1]}}, "params.yaml: anomaly.classes: lists an entry twice"),
        ({"anomaly": {"classes": [-1]}}, "params.yaml: anomaly.classes.0: Input should be greater than or equal to 0"),
        (
            {"anomaly": {"classes": [0, 1], "example_class": 5}},
            "params.yaml: anomaly.example_class: must be one of anomaly.classes [0, 1] (got 5)",
        ),
        ({"anomaly": {"epochs": 0}}, "params.yaml: anomaly.epochs: Input should be greater than 0"),
        ({"anomaly": {"batch_size": 1.5}}, "params.yaml: anomaly.batch_size: Input should be a valid integer"),
        ({"anomaly": {"score": "l1"}}, "params.yaml: anomaly.score: Input should be 'mse'"),
        ({"anomaly": {"ensemble": ["mse", "pca"]}}, "params.yaml: anomaly.ensemble.1: Input should be 'mse'"),
        ({"anomaly": {"ensemble": []}}, "params.yaml: anomaly.ensemble: must list at least one entry"),
        ({"anomaly": {"threshold_k": float("inf")}}, "params.yaml: anomaly.threshold_k: Input should be a finite"),
        ({"anomaly": {"pca_dims": 0}}, "params.yaml: anomaly.pca_dims: Input should be greater than 0"),
        ({"anomaly": {"noise": -0.1}}, "params.yaml: anomaly.noise: Input should be greater than or equal to 0"),
        ({"anomaly": {"roc_points": 1}}, "params.yaml: anomaly.roc_points: Input should be greater than or equal to 2"),
        ({"anomaly": {"model": {"kernel_size": 2}}}, "params.yaml: anomaly.model.kernel_size: must be odd"),
        ({"anomaly": {"model": {"latent_dim": 0}}}, "params.yaml: anomaly.model.latent_dim: Input should be greater"),
        ({"anomaly": {"modle": {}}}, "params.yaml: anomaly.modle: unknown key"),
    ],
)
def test_anomaly_bad_value_is_one_line_naming_the_key(raw, line):
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    assert str(info.value).startswith(line) and len(str(info.value).splitlines()) == 1, str(info.value)


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (
            {"dataset": "folder"},
            "params.yaml: folder: folder.path must name a folder of images when dataset is folder (got null)",
        ),
        (
            {"dataset": "folder", "folder": {"path": "x", "size": [64]}},
            "params.yaml: folder.size: must be [height, width] (got [64])",
        ),
        ({"folder": {"channels": 4}}, "params.yaml: folder.channels: Input should be 1 or 3 (got 4)"),
        ({"folder": {"fit": "stretch"}}, "params.yaml: folder.fit: Input should be 'resize' or 'crop' (got 'stretch')"),
        (
            {"folder": {"test_fraction": 1.0}},
            "params.yaml: folder.test_fraction: Input should be less than 1 (got 1.0)",
        ),
        (
            {"dataset": "cifar10"},
            "params.yaml: dataset: Input should be 'mnist', 'mnist_sample', 'fashion_mnist' or 'folder' (got 'cifar10')",
        ),
    ],
)
def test_dataset_and_folder_bad_values_are_one_line(raw, line):
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert str(err.value) == line


def test_folder_params_parse():
    params = parse_params({"dataset": "folder", "folder": {"path": "~/imgs", "size": [64, 48], "channels": 3}})
    assert params.folder.size == [64, 48] and params.folder.fit == "resize" and params.folder.test_fraction == 0.2


def test_bm3d_is_not_a_default_method():
    assert "bm3d" not in parse_params({}).baselines.methods


def test_bm3d_without_its_package_is_one_line_naming_the_key_and_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # as if the optional package were not installed
    with pytest.raises(ParamsError) as info:
        parse_params({"baselines": {"methods": ["median", "bm3d"]}})
    message = str(info.value)
    assert message.startswith("params.yaml: baselines.methods: bm3d needs the optional bm3d package")
    assert "pip install -e '.[bm3d]'" in message and len(message.splitlines()) == 1
    assert parse_params({"baselines": {"methods": ["median"]}}).baselines.methods == ["median"]


def test_baselines_stage_refuses_bm3d_without_its_package_before_any_work(monkeypatch, tmp_path, capsys):
    from cae.stages import run_stage
    from cae.stages.baselines import main

    (tmp_path / "params.yaml").write_text("baselines:\n  methods: [median, bm3d]\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "bm3d", None)
    with pytest.raises(SystemExit) as info:
        run_stage(main)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: params.yaml: baselines.methods: bm3d needs"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing was read or written
