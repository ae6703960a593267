"""The training loop: Keras ``fit`` on (input, target) pairs, logged with DVCLive."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from cae.config import Params
from cae.errors import CaeError
from cae.model import build_autoencoder, compile_autoencoder


@dataclass
class TrainResult:
    model: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    images: int = 0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, float | int]:
        """The deterministic part of the result: final losses and epochs run."""
        return {
            "loss": round(self.history["loss"][-1], 6),
            "val_loss": round(self.history["val_loss"][-1], 6),
            "epochs": len(self.history["loss"]),
            "train_images": self.images // max(len(self.history["loss"]), 1),
        }


def _check_finite(history: dict[str, list[float]]) -> None:
    for key in ("loss", "val_loss"):
        values = history.get(key, [])
        if not values or not all(math.isfinite(v) for v in values):
            raise CaeError(
                f"training diverged: {key} became {values[-1] if values else 'undefined'}; "
                "lower model.learning_rate or check the data. No model was written."
            )


def train_autoencoder(
    params: Params,
    inputs: np.ndarray,
    targets: np.ndarray,
    val_inputs: np.ndarray,
    val_targets: np.ndarray,
    callbacks: list[keras.callbacks.Callback] | None = None,
    log_dir: Path | None = None,
) -> TrainResult:
    """Build the model from ``params`` and fit it; the caller seeds TensorFlow first.

    Arrays are float32 in [0, 1] of shape (N, H, W, C). With ``log_dir``, per-epoch
    ``loss`` and ``val_loss`` go to DVCLive there (``plots/metrics/{train,eval}/loss.tsv``).
    """
    model = compile_autoencoder(build_autoencoder(params.model, inputs.shape[1:]), params.model)
    callbacks = [keras.callbacks.TerminateOnNaN(), *(callbacks or [])]
    live = None
    if log_dir is not None:
        from dvclive import Live
        from dvclive.keras import DVCLiveCallback

        live = Live(dir=str(log_dir), dvcyaml=False, save_dvc_exp=False, report=None)
        callbacks.append(DVCLiveCallback(live=live))
    start = time.perf_counter()
    history = model.fit(
        inputs,
        targets,
        batch_size=params.batch_size,
        epochs=params.epochs,
        shuffle=True,
        validation_data=(val_inputs, val_targets),
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    ).history
    seconds = time.perf_counter() - start
    _check_finite(history)
    return TrainResult(model, history, seconds, images=len(inputs) * len(history["loss"]))
