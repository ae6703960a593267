"""The convolutional autoencoder, built from ``params.yaml``'s ``model`` block.

With the defaults this is exactly the reference Keras script::

    Conv2D(16, 3, relu, same) → MaxPool(2) → Conv2D(8) → MaxPool(2)        # encoder
    Conv2D(8) → UpSampling(2) → Conv2D(16) → UpSampling(2) → Conv2D(C, sigmoid)  # decoder

Each entry of ``filters`` adds one encoder level (a convolution then a halving) and
the decoder mirrors them in reverse order.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import keras
from keras import layers

from cae.config import ModelParams
from cae.errors import CaeError
from cae.io import TMP_PREFIX, atomic_path

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

LOSSES = {
    "bce": "binary_crossentropy",
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
}


def check_input_shape(shape: tuple[int, int, int], levels: int) -> None:
    """Raise :class:`CaeError` unless height and width survive ``levels`` halvings."""
    factor = 2**levels
    height, width, _ = shape
    if height % factor or width % factor:
        raise CaeError(
            f"images of {height}×{width} do not fit model.filters with {levels} levels: "
            f"height and width must be multiples of {factor} (e.g. "
            f"{', '.join(str(factor * k) for k in range(1, 5))}); "
            "use fewer levels in model.filters or resize the images"
        )


def build_autoencoder(cfg: ModelParams, input_shape: tuple[int, int, int]) -> keras.Model:
    """Build (uncompiled) the autoencoder for images of ``input_shape`` (H, W, C)."""
    check_input_shape(input_shape, len(cfg.filters))
    k, act = cfg.kernel_size, cfg.activation
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for i, f in enumerate(cfg.filters):
        if cfg.downsample == "strided":
            x = layers.Conv2D(f, k, strides=2, padding="same", activation=act, name=f"enc{i}_conv")(x)
        else:
            x = layers.Conv2D(f, k, padding="same", activation=act, name=f"enc{i}_conv")(x)
            pool = layers.MaxPooling2D if cfg.downsample == "maxpool" else layers.AveragePooling2D
            x = pool(2, padding="same", name=f"enc{i}_pool")(x)
    for i, f in enumerate(reversed(cfg.filters)):
        if cfg.upsample == "transpose":
            x = layers.Conv2DTranspose(
                f, k, strides=2, padding="same", activation=act, name=f"dec{i}_convt"
            )(x)
        else:
            x = layers.Conv2D(f, k, padding="same", activation=act, name=f"dec{i}_conv")(x)
            x = layers.UpSampling2D(2, name=f"dec{i}_up")(x)
    outputs = layers.Conv2D(
        input_shape[-1], k, padding="same", activation="sigmoid", name="reconstruction"
    )(x)
    return keras.Model(inputs, outputs, name="autoencoder")


def compile_autoencoder(model: keras.Model, cfg: ModelParams) -> keras.Model:
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate), loss=LOSSES[cfg.loss])
    return model


def encoder_of(model: keras.Model) -> keras.Model:
    """The encoder half: input image → latent code (the last encoder layer's output)."""
    last = [layer for layer in model.layers if layer.name.startswith("enc")][-1]
    return keras.Model(model.input, last.output, name="encoder")


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
        with zipfile.ZipFile(raw) as src, atomic_path(path) as tmp:
            with zipfile.ZipFile(tmp, "w") as dst:
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


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a saved autoencoder in Keras safe mode (no arbitrary code from the file)."""
    path = Path(path)
    if not path.is_file():
        raise CaeError(f"{path}: no trained model here; run `dvc repro train` (or `dvc pull`) first")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a bad file
        raise CaeError(f"{path}: not a loadable Keras model ({type(exc).__name__}: {exc})") from None
