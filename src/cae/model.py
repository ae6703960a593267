"""The convolutional autoencoder, built from ``params.yaml``'s ``model`` block.

With the defaults (``preset: reference``) this is exactly the reference Keras script::

    Conv2D(16, 3, relu, same) → MaxPool(2) → Conv2D(8) → MaxPool(2)             # encoder
    Conv2D(8) → UpSampling(2) → Conv2D(16) → UpSampling(2) → Conv2D(C, sigmoid)  # decoder

Each entry of ``filters`` adds one encoder level (``convs_per_level`` convolutions,
then a halving) and the decoder mirrors them in reverse order; ``middle`` adds
convolutions at the lowest resolution, between the two (a U-Net's bottom). Options: batch
normalisation, strided / transposed convolutions, U-Net skip connections (the
decoder upsamples first, then concatenates the encoder's features of the same
size, or with ``skip_merge: add`` adds them after a 1×1 convolution to their width),
a fold of each s×s pixel block into channels before the encoder and back after the
output (``space_to_depth``), a residual output (the network predicts the noise, which is subtracted
from the input) and a dense bottleneck (``latent_dim``: the encoder's last
feature map flattened to a vector of that many numbers, and back).

With ``variational: true`` the dense code is a variational autoencoder's: the encoder
gives a mean (``enc_latent``) and a log-variance (``vae_log_var``), and
:class:`Reparameterise` draws ``mean + exp(log_var / 2) · ε`` in training (the mean
otherwise) and adds the KL divergence to N(0, I) to the loss, weighted by ``kl_weight``
per pixel (the reconstruction losses are means per pixel, so ``kl_weight: 1`` is the
evidence lower bound up to a constant factor).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import keras
from keras import layers, ops

from cae.config import LossName, ModelParams, check_input_shape
from cae.errors import CaeError
from cae.io import TMP_PREFIX, atomic_path, check_model_file
from cae.paths import HINT_MODEL

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

# The least batch for prediction only (scores, codes): on a 2-core CPU a third faster than
# batches of 64 (the one-class models' 16,000 images per class, 3.0 s against 4.3 s).
PREDICT_BATCH = 512


def predict_batch(batch_size: int) -> int:
    """The batch to predict in, for a model trained in batches of ``batch_size``: that or
    :data:`PREDICT_BATCH`, whichever is larger."""
    return max(batch_size, PREDICT_BATCH)


def _conv(x, filters: int, cfg: ModelParams, name: str, strides: int = 1, transpose: bool = False):
    """One convolution (+ batch norm) + activation."""
    conv = layers.Conv2DTranspose if transpose else layers.Conv2D
    if not cfg.batch_norm:
        return conv(filters, cfg.kernel_size, strides=strides, padding="same", activation=cfg.activation, name=name)(x)
    x = conv(filters, cfg.kernel_size, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation(cfg.activation, name=f"{name}_act")(x)


def _convs(x, filters: int, cfg: ModelParams, name: str, n: int):
    for j in range(n):
        x = _conv(x, filters, cfg, f"{name}_conv{j}" if n > 1 else f"{name}_conv")
    return x


@keras.saving.register_keras_serializable(package="cae")
class Reparameterise(layers.Layer):
    """``[mean, log_var]`` → a code: ``mean + exp(log_var / 2) · ε``, ε ~ N(0, I), in
    training (seeded by a ``SeedGenerator``, saved with the model); ``mean`` otherwise.

    It adds ``weight`` × the KL divergence of N(mean, exp(log_var)) from N(0, I),
    summed over the code and averaged over the batch, to the model's losses.
    """

    def __init__(self, weight: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        mean, log_var = inputs
        kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)
        self.add_loss(self.weight * ops.mean(kl))
        if not training:
            return mean
        eps = keras.random.normal(ops.shape(mean), seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * eps

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "seed": self.seed}


def build_autoencoder(cfg: ModelParams, input_shape: tuple[int, int, int], seed: int = 0) -> keras.Model:
    """Build (uncompiled) the autoencoder for images of ``input_shape`` (H, W, C);
    ``seed`` seeds the variational code's noise."""
    check_input_shape(input_shape, cfg)
    n = cfg.convs_per_level
    inputs = keras.Input(shape=input_shape, name="image")
    x, skips = _fold(inputs, cfg.space_to_depth), []
    for i, f in enumerate(cfg.filters):  # encoder: convolve, remember, halve
        if cfg.downsample == "strided":
            x = _convs(x, f, cfg, f"enc{i}", n - 1)
            skips.append(x)
            x = _conv(x, f, cfg, f"enc{i}_down", strides=2)
        else:
            x = _convs(x, f, cfg, f"enc{i}", n)
            skips.append(x)
            pool = layers.MaxPooling2D if cfg.downsample == "maxpool" else layers.AveragePooling2D
            x = pool(2, padding="same", name=f"enc{i}_pool")(x)
    for j, f in enumerate(cfg.middle):  # at the lowest resolution, before any dense code
        x = _conv(x, f, cfg, f"enc_mid{j}")
    if cfg.latent_dim:  # a dense bottleneck: the code is a vector of latent_dim numbers
        grid = tuple(x.shape[1:])
        x = layers.Flatten(name="enc_flatten")(x)
        flat = x
        x = layers.Dense(cfg.latent_dim, name="enc_latent")(flat)
        if cfg.variational:  # names outside "enc…": the encoder's code is the mean
            log_var = layers.Dense(cfg.latent_dim, name="vae_log_var")(flat)
            x = Reparameterise(cfg.kl_weight / math.prod(input_shape), seed, name="vae_sample")([x, log_var])
        x = layers.Dense(math.prod(grid), activation=cfg.activation, name="dec_dense")(x)
        x = layers.Reshape(grid, name="dec_reshape")(x)
    for i, f in enumerate(reversed(cfg.filters)):  # decoder: mirror
        if cfg.skip:  # upsample, merge the encoder's features, convolve
            if cfg.upsample == "transpose":  # its f filters are the encoder's width
                x = _conv(x, f, cfg, f"dec{i}_up", strides=2, transpose=True)
            else:
                if cfg.skip_merge == "add":  # to the encoder's width first, at the lower resolution
                    x = layers.Conv2D(f, 1, name=f"dec{i}_match")(x)
                x = layers.UpSampling2D(2, name=f"dec{i}_up")(x)
            merge = layers.Add if cfg.skip_merge == "add" else layers.Concatenate
            x = merge(name=f"dec{i}_skip")([x, skips[-1 - i]])
            x = _convs(x, f, cfg, f"dec{i}", n)
        elif cfg.upsample == "transpose" and cfg.head == "transpose" and i == len(cfg.filters) - 1:
            x = _convs(x, f, cfg, f"dec{i}", n - 1)  # the last level's other convolutions at half size
        elif cfg.upsample == "transpose":  # doubling convolution, then the rest
            x = _conv(x, f, cfg, f"dec{i}_up", strides=2, transpose=True)
            x = _convs(x, f, cfg, f"dec{i}", n - 1)
        else:  # the reference: convolve, then upsample
            x = _convs(x, f, cfg, f"dec{i}", n)
            x = layers.UpSampling2D(2, name=f"dec{i}_up")(x)
    s = cfg.space_to_depth
    channels = input_shape[-1] * s * s  # at the folded size
    folded = "" if s == 1 else "_folded"  # the name of the layer before the unfold
    if cfg.residual:  # predict the noise; the output is the input minus it, clipped to [0, 1]
        noise = layers.Conv2D(channels, cfg.kernel_size, padding="same", name=f"noise{folded}")(x)
        x = layers.Subtract(name="input_minus_noise")([inputs, _unfold(noise, s, "noise")])
        return keras.Model(inputs, layers.ReLU(max_value=1.0, name="reconstruction")(x), name="autoencoder")
    if cfg.head == "transpose":  # the last doubling convolution is the output
        x = layers.Conv2DTranspose(
            channels, cfg.kernel_size, strides=2, padding="same", activation="sigmoid", name=f"reconstruction{folded}"
        )(x)
    else:
        x = layers.Conv2D(
            channels, cfg.kernel_size, padding="same", activation="sigmoid", name=f"reconstruction{folded}"
        )(x)
    return keras.Model(inputs, _unfold(x, s, "reconstruction"), name="autoencoder")


def _fold(x, s: int):
    """Images (H, W, C) → (H/s, W/s, s·s·C): each s×s block of pixels becomes one pixel of
    s·s·C channels (TensorFlow's ``space_to_depth``, FFDNet's sub-images); ``s`` = 1: ``x``."""
    if s == 1:
        return x
    h, w, c = x.shape[1:]
    x = layers.Reshape((h // s, s, w // s, s, c), name="fold_blocks")(x)
    x = layers.Permute((1, 3, 2, 4, 5), name="fold_order")(x)
    return layers.Reshape((h // s, w // s, s * s * c), name="fold")(x)


def _unfold(x, s: int, name: str):
    """The inverse of :func:`_fold`; its last layer is called ``name``."""
    if s == 1:
        return x
    h, w, c = x.shape[1:]
    x = layers.Reshape((h, w, s, s, c // (s * s)), name=f"{name}_blocks")(x)
    x = layers.Permute((1, 3, 2, 4, 5), name=f"{name}_order")(x)
    return layers.Reshape((h * s, w * s, c // (s * s)), name=name)(x)


_PER_IMAGE_AXES = (1, 2, 3)
# The `psnr` loss caps each image's PSNR here (an MSE floor of 1e-6): zero for a perfect
# image, and a bounded gradient near one.
PSNR_LOSS_CAP = 60.0


def _per_image(name: str, y_true, y_pred):
    """Loss ``name`` per image (a vector over the batch)."""
    if name == "bce":
        p = ops.clip(y_pred, 1e-7, 1 - 1e-7)
        return ops.mean(-(y_true * ops.log(p) + (1 - y_true) * ops.log(1 - p)), axis=_PER_IMAGE_AXES)
    if name == "mse":
        return ops.mean(ops.square(y_true - y_pred), axis=_PER_IMAGE_AXES)
    if name == "mae":
        return ops.mean(ops.abs(y_true - y_pred), axis=_PER_IMAGE_AXES)
    if name == "psnr":  # PSNR's shortfall from 60 dB: the mean PSNR the evaluation reports, as a loss
        mse = _per_image("mse", y_true, y_pred)
        return PSNR_LOSS_CAP + 10.0 * ops.log(mse + 10.0 ** (-PSNR_LOSS_CAP / 10)) / math.log(10.0)
    if name == "ssim":
        import tensorflow as tf

        size = min(11, y_true.shape[1], y_true.shape[2])
        return 1.0 - tf.image.ssim(y_true, y_pred, max_val=1.0, filter_size=size)
    raise ValueError(f"unknown loss {name!r}")


@keras.saving.register_keras_serializable(package="cae")
class WeightedLoss(keras.losses.Loss):
    """A weighted sum of per-image losses, e.g. ``{"mse": 0.8, "ssim": 0.2}``."""

    def __init__(self, weights: Mapping[LossName, float], name: str = "weighted_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.weights = dict(weights)

    def call(self, y_true, y_pred):
        return sum(w * _per_image(term, y_true, y_pred) for term, w in self.weights.items())

    def get_config(self):
        return {**super().get_config(), "weights": self.weights}


# Single named losses use Keras' own implementation (the reference script's numbers).
KERAS_LOSSES = {"bce": "binary_crossentropy", "mse": "mean_squared_error", "mae": "mean_absolute_error"}


def make_loss(loss: LossName | Mapping[LossName, float]):
    if isinstance(loss, str) and loss in KERAS_LOSSES:
        return KERAS_LOSSES[loss]
    return WeightedLoss({loss: 1.0} if isinstance(loss, str) else loss)


def learning_rate(cfg: ModelParams, total_steps: int):
    """Adam's learning rate: ``cfg.learning_rate``, or with ``schedule: cosine`` a schedule
    from it down to 0 over ``total_steps`` optimizer steps (the step count is part of the
    optimizer's state, so a resumed run continues the same curve)."""
    if cfg.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=max(1, total_steps))
    return cfg.learning_rate


def compile_autoencoder(
    model: keras.Model, cfg: ModelParams, steps_per_execution: int = 1, total_steps: int = 1
) -> keras.Model:
    """Adam and the loss of ``cfg``; ``steps_per_execution`` training steps per call into
    TensorFlow (fewer Python round trips; the same weights); ``total_steps``: the steps
    of the whole run, which a learning-rate schedule spans."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(cfg, total_steps)),
        loss=make_loss(cfg.loss),
        steps_per_execution=steps_per_execution,
    )
    return model


def encoder_of(model: keras.Model) -> keras.Model:
    """The encoder half: input image → latent code (the output of the last encoder layer)."""
    last = [layer for layer in model.layers if layer.name.startswith("enc")][-1]
    return keras.Model(model.input, last.output, name="encoder")


def decoder_of(model: keras.Model) -> keras.Model:
    """The decoder half of a model with a dense code: code (``latent_dim`` numbers) → image.

    It reuses the model's own layers from ``dec_dense`` on, so the model must have a
    dense code and a decoder that reads nothing else (no skip connections, no residual).
    """
    names = [layer.name for layer in model.layers]
    if "dec_dense" not in names or "input_minus_noise" in names or any("_skip" in n for n in names):
        raise CaeError(
            f"model {model.name!r} has no decoder of its code alone: it needs model.latent_dim "
            "and neither model.skip nor model.residual"
        )
    start = names.index("dec_dense")
    code = keras.Input(shape=(model.layers[start].input.shape[-1],), name="code")
    x = code
    for layer in model.layers[start:]:
        x = layer(x)
    return keras.Model(code, x, name="decoder")


def save_model(model: keras.Model, path: str | os.PathLike) -> None:
    """Save ``model`` as a ``.keras`` file whose bytes depend only on the model.

    Keras stamps the save time into ``metadata.json`` and into the zip entries'
    dates; both are normalised here so that ``dvc repro -f`` leaves ``dvc.lock``
    unchanged. The file appears at ``path`` complete or not at all.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=TMP_PREFIX, dir=path.parent) as tmpdir:
        raw = Path(tmpdir) / "model.keras"
        model.save(raw)
        with zipfile.ZipFile(raw) as src, atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename == "metadata.json":
                    meta = json.loads(data)
                    meta.pop("date_saved", None)
                    data = json.dumps(meta, sort_keys=True).encode()
                elif info.filename == "config.json":
                    data = json.dumps(_renumber_shared_ids(json.loads(data), {})).encode()
                fixed = zipfile.ZipInfo(info.filename, date_time=_ZIP_EPOCH)
                fixed.compress_type = info.compress_type
                fixed.external_attr = 0o644 << 16
                dst.writestr(fixed, data)


def _renumber_shared_ids(node, seen: dict[int, int]):
    """Replace Keras' ``shared_object_id`` values (Python ``id()``s, different in every
    process) by 1, 2, … in order of first appearance; sharing is preserved."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "shared_object_id" and isinstance(value, int):
                out[key] = seen.setdefault(value, len(seen) + 1)
            else:
                out[key] = _renumber_shared_ids(value, seen)
        return out
    if isinstance(node, list):
        return [_renumber_shared_ids(v, seen) for v in node]
    return node


def load_model(
    path: str | os.PathLike, image_shape: tuple[int, ...] | None = None, hint: str = HINT_MODEL
) -> keras.Model:
    """Load a saved autoencoder in Keras safe mode (no arbitrary code from the file).

    The archive is checked first (:func:`cae.io.check_keras_archive`), and the model
    must be an autoencoder: one input, one output of the input's shape; with
    ``image_shape`` (H, W, C), it must also take images of that shape. Anything else
    is a one-line :class:`CaeError`; a missing file names ``hint``, the way to make it."""
    path = Path(path)
    check_model_file(path, hint)
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad file
        detail = " ".join(str(exc).split())  # one line
        detail = detail if len(detail) <= 600 else detail[:600] + " …"
        raise CaeError(f"{path}: not a loadable Keras model ({type(exc).__name__}: {detail})") from None
    check_autoencoder(model, path, image_shape)
    return model


def check_autoencoder(model: keras.Model, path: str | os.PathLike, image_shape: tuple[int, ...] | None = None) -> None:
    """:class:`CaeError` unless ``model`` maps images to images of the same shape (and
    channels), and takes images of ``image_shape`` (H, W, C) when given."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise CaeError(
            f"{path}: the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "an autoencoder has one of each"
        )
    given, made = tuple(model.inputs[0].shape[1:]), tuple(model.outputs[0].shape[1:])
    if given != made:
        raise CaeError(
            f"{path}: the model's output shape {made} differs from its input shape {given}: "
            "not an autoencoder (its output must be an image like its input, channels included)"
        )
    if image_shape is not None:
        want = tuple(int(d) for d in image_shape)
        if len(want) != len(given) or any(g is not None and g != w for g, w in zip(given, want, strict=False)):
            raise CaeError(f"{path}: the model takes images of shape {given}, but the data's are {want}")
