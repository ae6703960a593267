"""Architecture from params, deterministic saving, and a real (tiny) training run."""

import hashlib
import json
import re
import zipfile

import keras
import numpy as np
import pytest

from cae import runtime
from cae.config import PRESETS, ModelParams, TrainSettings, check_input_shape, parse_params
from cae.errors import CaeError
from cae.model import build_autoencoder, encoder_of, load_model, save_model
from cae.train import train_autoencoder


def test_default_is_exactly_the_reference_architecture():
    model = build_autoencoder(ModelParams(), (28, 28, 1))
    summary = [
        (type(layer).__name__, getattr(layer, "filters", None), layer.output.shape[1:]) for layer in model.layers[1:]
    ]
    assert summary == [
        ("Conv2D", 16, (28, 28, 16)),
        ("MaxPooling2D", None, (14, 14, 16)),
        ("Conv2D", 8, (14, 14, 8)),
        ("MaxPooling2D", None, (7, 7, 8)),
        ("Conv2D", 8, (7, 7, 8)),
        ("UpSampling2D", None, (14, 14, 8)),
        ("Conv2D", 16, (14, 14, 16)),
        ("UpSampling2D", None, (28, 28, 16)),
        ("Conv2D", 1, (28, 28, 1)),
    ]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(c.kernel_size == (3, 3) and c.padding == "same" for c in convs)
    assert [c.activation.__name__ for c in convs] == ["relu"] * 4 + ["sigmoid"]
    assert encoder_of(model).output.shape[1:] == (7, 7, 8)


def test_filters_strided_transpose_and_colour():
    cfg = ModelParams(filters=[32, 64], downsample="strided", upsample="transpose")
    model = build_autoencoder(cfg, (32, 32, 3))
    assert model.output.shape[1:] == (32, 32, 3)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Conv2D", "Conv2D", "Conv2DTranspose", "Conv2DTranspose", "Conv2D"]
    assert [layer.filters for layer in model.layers[1:]] == [32, 64, 64, 32, 3]


def test_transpose_head_outputs_the_image_from_the_last_up_convolution():
    cfg = ModelParams(filters=[16, 8], downsample="strided", upsample="transpose", head="transpose")
    model = build_autoencoder(cfg, (28, 28, 3))
    assert [(type(layer).__name__, layer.filters, tuple(layer.output.shape[1:])) for layer in model.layers[1:]] == [
        ("Conv2D", 16, (14, 14, 16)),
        ("Conv2D", 8, (7, 7, 8)),
        ("Conv2DTranspose", 8, (14, 14, 8)),
        ("Conv2DTranspose", 3, (28, 28, 3)),  # no convolution at full resolution
    ]
    assert model.layers[-1].name == "reconstruction" and model.layers[-1].activation.__name__ == "sigmoid"
    assert encoder_of(model).output.shape[1:] == (7, 7, 8)
    # more convolutions per level: the last level's extra one runs at half resolution
    deeper = build_autoencoder(cfg.model_copy(update={"convs_per_level": 2}), (28, 28, 1))
    assert tuple(deeper.get_layer("dec1_conv").output.shape[1:]) == (14, 14, 16)
    assert deeper.output.shape[1:] == (28, 28, 1)


def test_middle_convolutions_run_at_the_lowest_resolution_before_the_code():
    cfg = ModelParams(preset="unet", filters=[8, 16], middle=[32, 24])
    model = build_autoencoder(cfg, (28, 28, 1))
    assert [tuple(model.get_layer(f"enc_mid{j}").output.shape[1:]) for j in (0, 1)] == [(7, 7, 32), (7, 7, 24)]
    assert encoder_of(model).output.shape[1:] == (7, 7, 24)
    assert model.output.shape[1:] == (28, 28, 1)
    dense = build_autoencoder(ModelParams(middle=[4], latent_dim=3), (8, 8, 1))
    assert encoder_of(dense).output.shape[1:] == (3,)


def test_dense_bottleneck_gives_a_vector_code_and_round_trips(tmp_path):
    model = build_autoencoder(ModelParams(latent_dim=5), (8, 8, 1))
    assert model.output.shape[1:] == (8, 8, 1)
    assert encoder_of(model).output.shape[1:] == (5,)
    save_model(model, tmp_path / "m.keras")
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(
        load_model(tmp_path / "m.keras").predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )


def test_size_the_architecture_cannot_take_says_which_sizes_work():
    with pytest.raises(CaeError, match=r"30×30 .* multiples of 4 \(the nearest that work: height 28 or 32, width 28"):
        check_input_shape((30, 30, 1), ModelParams())
    with pytest.raises(CaeError, match=r"height 4 or 8, width 64 .*folder\.size"):
        check_input_shape((6, 64, 3), ModelParams())
    check_input_shape((28, 28, 1), ModelParams())
    folded = ModelParams(filters=[16], space_to_depth=2)  # a fold by 2, then one halving
    check_input_shape((28, 28, 1), folded)
    with pytest.raises(CaeError, match=r"1 levels after model\.space_to_depth 2: .*multiples of 4 .*height 28 or 32"):
        check_input_shape((30, 28, 1), folded)
    with pytest.raises(CaeError, match="multiples of 8"):
        build_autoencoder(ModelParams(filters=[8, 8, 8]), (28, 28, 1))


def _zip_digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_save_is_byte_deterministic_and_loads_in_safe_mode(tmp_path):
    runtime.make_deterministic(0)
    model = build_autoencoder(ModelParams(), (8, 8, 1))
    save_model(model, tmp_path / "a.keras")
    clone = build_autoencoder(ModelParams(), (8, 8, 1))  # new Python objects, new id()s
    clone.set_weights(model.get_weights())
    save_model(clone, tmp_path / "b.keras")
    assert _zip_digest(tmp_path / "a.keras") == _zip_digest(tmp_path / "b.keras")
    with zipfile.ZipFile(tmp_path / "a.keras") as zf:
        assert "date_saved" not in json.loads(zf.read("metadata.json"))
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    loaded = load_model(tmp_path / "a.keras")
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_load_model_errors_name_the_file(tmp_path):
    with pytest.raises(CaeError, match=r"missing\.keras: no trained model here; run `dvc repro train`"):
        load_model(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CaeError, match=r"bad\.keras: not a Keras model file \(\.keras: a zip archive\)"):
        load_model(bad)


def _tiny_data(n=64, size=8):
    rng = np.random.default_rng(0)
    clean = (rng.random((n, size, size, 1)) > 0.7).astype(np.float32)
    noisy = np.clip(clean + 0.3 * rng.standard_normal(clean.shape).astype(np.float32), 0, 1)
    return noisy, clean


def _fit(tmp_path, name, **overrides):
    params = parse_params({"epochs": 3, "batch_size": 16, **overrides})
    noisy, clean = _tiny_data()
    runtime.make_deterministic(params.seed)
    log_dir = tmp_path / name
    return train_autoencoder(
        params.model, TrainSettings.of(params), noisy[:48], clean[:48], noisy[48:], clean[48:], log_dir=log_dir
    ), log_dir


def test_training_learns_logs_curves_and_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DVCLive inspects the git/DVC repo around the working directory
    first, log_dir = _fit(tmp_path, "run1", model={"learning_rate": 0.01})
    second, _ = _fit(tmp_path, "run2", model={"learning_rate": 0.01})
    losses = first.history["loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert first.summary() == second.summary()
    assert first.summary()["train_images"] == 48 and first.summary()["epochs"] == 3
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()
    train_tsv = (log_dir / "plots/metrics/train/loss.tsv").read_text().splitlines()
    eval_tsv = (log_dir / "plots/metrics/eval/loss.tsv").read_text().splitlines()
    assert train_tsv[0] == "step\tloss" and len(train_tsv) == 4 and len(eval_tsv) == 4
    assert first.images_per_second > 0


def test_a_labelled_run_logs_one_line_per_epoch_and_keras_prints_nothing(capfd, caplog):
    """Models trained side by side in worker processes: each epoch's line says which model."""
    params = parse_params({"epochs": 2, "batch_size": 16})
    noisy, clean = _tiny_data()
    runtime.make_deterministic(params.seed)
    with caplog.at_level("INFO", logger="cae"):
        train_autoencoder(
            params.model, TrainSettings.of(params), noisy[:48], clean[:48], noisy[48:], clean[48:], label="class 3"
        )
    lines = [r.getMessage() for r in caplog.records if r.name == "cae"]
    assert len(lines) == 2, lines
    for epoch, line in enumerate(lines, 1):
        pattern = rf"class 3: epoch {epoch}/2: loss \d\.\d{{5}}, val_loss \d\.\d{{5}} \(\d+\.\d s\)"
        assert re.fullmatch(pattern, line), line
    out, err = capfd.readouterr()
    assert "Epoch" not in out + err and "/step" not in out + err


def test_divergence_is_a_clear_error_not_a_model(tmp_path):
    noisy, clean = _tiny_data()
    clean[0, 0, 0, 0] = np.nan  # a NaN target makes the loss NaN
    params = parse_params({"epochs": 2, "batch_size": 16})
    with pytest.raises(CaeError, match="training diverged.*No model was written"):
        train_autoencoder(params.model, TrainSettings.of(params), noisy[:48], clean[:48], noisy[48:], clean[48:])


def _layer_kinds(model):
    return [type(layer).__name__ for layer in model.layers[1:]]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_builds_trains_a_step_and_round_trips(preset, tmp_path):
    cfg = parse_params({"model": {"preset": preset}}).model
    model = build_autoencoder(cfg, (16, 16, 1))
    assert model.output.shape[1:] == (16, 16, 1)
    from cae.model import compile_autoencoder

    compile_autoencoder(model, cfg)
    x = np.random.default_rng(0).random((4, 16, 16, 1), dtype=np.float32)
    assert np.isfinite(model.train_on_batch(x, x))
    save_model(model, tmp_path / "m.keras")
    np.testing.assert_allclose(
        load_model(tmp_path / "m.keras").predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_unet_has_skip_connections_and_batch_norm():
    model = build_autoencoder(parse_params({"model": {"preset": "unet_deep"}}).model, (28, 28, 1))
    kinds = _layer_kinds(model)
    assert kinds.count("Concatenate") == 2 and "BatchNormalization" in kinds
    concat = [layer for layer in model.layers if type(layer).__name__ == "Concatenate"]
    assert [tuple(c.output.shape[1:]) for c in concat] == [
        (14, 14, 128),
        (28, 28, 96),
    ]  # 64 up + 64 skip; 64 up + 32 skip


def test_add_skips_match_widths_at_the_lower_resolution_and_add():
    cfg = ModelParams(preset="unet_deep", skip_merge="add")
    model = build_autoencoder(cfg, (28, 28, 1))
    kinds = _layer_kinds(model)
    assert kinds.count("Add") == 2 and "Concatenate" not in kinds
    # the 1×1 convolutions run before upsampling; each convolution after a merge reads the encoder's width
    assert [tuple(model.get_layer(f"dec{i}_match").output.shape[1:]) for i in (0, 1)] == [(7, 7, 64), (14, 14, 32)]
    assert [tuple(model.get_layer(f"dec{i}_skip").output.shape[1:]) for i in (0, 1)] == [(14, 14, 64), (28, 28, 32)]
    transposed = build_autoencoder(cfg.model_copy(update={"upsample": "transpose"}), (28, 28, 1))
    assert _layer_kinds(transposed).count("Add") == 2
    assert "dec0_match" not in [layer.name for layer in transposed.layers]  # the transposed convolution matches


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("residual", [False, True])
def test_space_to_depth_folds_each_block_into_channels_and_unfolds_the_output(channels, residual):
    import tensorflow as tf

    from cae.model import _fold, _unfold

    cfg = ModelParams(preset="unet", filters=[8, 16], space_to_depth=2, residual=residual)
    model = build_autoencoder(cfg, (16, 16, channels))
    assert tuple(model.get_layer("fold").output.shape[1:]) == (8, 8, 4 * channels)
    assert tuple(model.get_layer("enc0_conv").output.shape[1:]) == (8, 8, 8)  # every convolution on a quarter
    assert tuple(encoder_of(model).output.shape[1:]) == (2, 2, 16)
    assert model.output.shape[1:] == (16, 16, channels)
    x = np.random.default_rng(0).random((2, 16, 16, channels), dtype=np.float32)
    image = keras.Input((16, 16, channels))
    folded = keras.Model(image, _fold(image, 2)).predict(x, verbose=0)
    np.testing.assert_array_equal(folded, tf.nn.space_to_depth(x, 2).numpy())  # TensorFlow's own fold
    back = keras.Model(image, _unfold(_fold(image, 2), 2, "back")).predict(x, verbose=0)
    np.testing.assert_array_equal(back, x)
    assert np.isfinite(model.predict(x, verbose=0)).all()


def test_residual_output_subtracts_predicted_noise_and_stays_in_range():
    cfg = parse_params({"model": {"preset": "resunet"}}).model
    model = build_autoencoder(cfg, (8, 8, 1))
    noise_layer = model.get_layer("noise")
    noise_layer.set_weights([np.zeros_like(w) for w in noise_layer.get_weights()])  # predicts no noise
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), x, atol=1e-6)  # → output is the input
    kernel = noise_layer.get_weights()[0]
    noise_layer.set_weights([np.zeros_like(kernel), np.full(1, 0.25, np.float32)])  # predicts 0.25 everywhere
    np.testing.assert_allclose(model.predict(x, verbose=0), np.clip(x - 0.25, 0, 1), atol=1e-6)  # input − noise
    noise_layer.set_weights([np.zeros_like(noise_layer.get_weights()[0]), np.full(1, -5.0, np.float32)])
    assert model.predict(x, verbose=0).max() <= 1.0  # clipped


def test_cosine_schedule_spans_the_run_and_constant_is_the_reference(tmp_path, monkeypatch):
    from cae.model import learning_rate

    assert parse_params({}).model.schedule == "constant"
    assert parse_params({"model": {"preset": "fast"}}).model.schedule == "constant"
    cfg = parse_params({"model": {"learning_rate": 0.01, "schedule": "cosine"}}).model
    assert learning_rate(parse_params({}).model, 100) == 0.001
    schedule = learning_rate(cfg, 100)
    assert [float(schedule(step)) for step in (0, 50, 100)] == pytest.approx([0.01, 0.005, 0.0], abs=1e-9)
    # a real run: 3 epochs of 3 batches; the rate ends at 0 after exactly the run's steps
    monkeypatch.chdir(tmp_path)
    result, _ = _fit(tmp_path, "cosine", model={"learning_rate": 0.01, "schedule": "cosine"})
    optimizer = result.model.optimizer
    assert int(optimizer.iterations) == 9 and float(optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    assert result.history["loss"][-1] < result.history["loss"][0]


def test_unknown_schedule_is_one_line_naming_the_key():
    from cae.errors import ParamsError

    for raw in ({"model": {"schedule": "linear"}}, {"anomaly": {"model": {"schedule": 1}}}):
        with pytest.raises(ParamsError) as info:
            parse_params(raw)
        key = "anomaly.model.schedule" if "anomaly" in raw else "model.schedule"
        assert str(info.value).startswith(f"params.yaml: {key}: Input should be 'constant' or 'cosine'")
        assert len(str(info.value).splitlines()) == 1


def test_explicit_keys_override_the_preset():
    cfg = parse_params({"model": {"preset": "unet", "filters": [8], "batch_norm": False}}).model
    assert cfg.filters == [8] and cfg.batch_norm is False and cfg.skip is True
    kinds = _layer_kinds(build_autoencoder(cfg, (8, 8, 1)))
    assert "BatchNormalization" not in kinds and "Concatenate" in kinds


@pytest.mark.parametrize(
    "loss", ["bce", "mse", "mae", "ssim", "psnr", {"mse": 0.8, "ssim": 0.2}, {"bce": 1.0, "mae": 0.5}]
)
def test_losses_are_zero_for_perfect_output_and_positive_otherwise(loss):
    from cae.model import make_loss

    fn = keras.losses.get(make_loss(loss)) if isinstance(make_loss(loss), str) else make_loss(loss)
    rng = np.random.default_rng(0)
    y = (rng.random((3, 16, 16, 1)) > 0.5).astype(np.float32)
    perfect = float(keras.ops.mean(fn(y, y)))
    worse = float(keras.ops.mean(fn(y, np.clip(y + 0.3 * rng.standard_normal(y.shape), 0, 1).astype(np.float32))))
    assert perfect < 1e-3 and worse > perfect + 0.01


def test_psnr_loss_is_the_evaluations_psnr_short_of_60_db_per_image():
    from cae.evaluate import psnr_ssim
    from cae.model import PSNR_LOSS_CAP, make_loss

    rng = np.random.default_rng(2)
    y = rng.random((3, 16, 16, 1)).astype(np.float32)
    p = np.clip(y + rng.uniform(0.01, 0.3, (3, 1, 1, 1)) * rng.standard_normal(y.shape), 0, 1).astype(np.float32)
    per_image = np.asarray(make_loss("psnr").call(y, p))
    assert per_image.shape == (3,)  # one value per image: their mean is the batch's loss
    psnrs = [psnr_ssim(p[i : i + 1], y[i : i + 1])[0] for i in range(3)]
    np.testing.assert_allclose(per_image, PSNR_LOSS_CAP - np.array(psnrs), atol=0.005)  # the MSE floor


def test_weighted_loss_is_the_weighted_sum_of_its_terms():
    from cae.model import WeightedLoss

    rng = np.random.default_rng(1)
    y = rng.random((2, 16, 16, 1)).astype(np.float32)
    p = rng.random((2, 16, 16, 1)).astype(np.float32)
    mse, mae = float(np.mean((y - p) ** 2)), float(np.mean(np.abs(y - p)))
    assert float(WeightedLoss({"mse": 2.0, "mae": 0.5})(y, p)) == pytest.approx(2 * mse + 0.5 * mae, rel=1e-5)
    assert WeightedLoss.from_config(WeightedLoss({"mse": 1.0}).get_config()).weights == {"mse": 1.0}


def test_training_streamed_from_disk_equals_training_in_memory(tmp_path):
    """data/prepared read a batch at a time (NpyRows, uint8 targets converted per batch,
    validation batched in order) trains to exactly the in-memory (tf.data) result."""
    from cae.io import NpyRows
    from cae.prepare import to_float

    rng = np.random.default_rng(1)
    clean_u8 = rng.integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)
    noisy = np.clip(to_float(clean_u8) + 0.3 * rng.standard_normal(clean_u8.shape, dtype=np.float32), 0, 1)
    arrays = {"noisy": noisy[:48], "clean": clean_u8[:48], "noisy_val": noisy[48:], "clean_val": clean_u8[48:]}
    for name, a in arrays.items():
        np.save(tmp_path / f"{name}.npy", a)
    params = parse_params({"epochs": 2, "batch_size": 16})
    results = []
    for streamed in (False, True):
        if streamed:
            args = [NpyRows(tmp_path / f"{name}.npy") for name in arrays]
        else:
            args = list(arrays.values())
        runtime.make_deterministic(params.seed)
        results.append(train_autoencoder(params.model, TrainSettings.of(params), *args))
    assert results[0].history == results[1].history
    for a, b in zip(results[0].model.get_weights(), results[1].model.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()
