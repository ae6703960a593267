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
    history: dict[str, list[float]] = field(default_factory=dict)  # every epoch, resumed ones included
    seconds: float = 0.0  # this process's training time
    images: int = 0  # images trained on by this process (epochs run here × train_images)
    train_images: int = 0
    resumed_from: int = 0  # epochs restored from a backup

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, float | int]:
        """The deterministic part of the result: final losses and epochs run."""
        return {
            "loss": round(self.history["loss"][-1], 6),
            "val_loss": round(self.history["val_loss"][-1], 6),
            "epochs": len(self.history["loss"]),
            "train_images": self.train_images,
        }


class TerminateOnNaN(keras.callbacks.TerminateOnNaN):
    """Keras' ``TerminateOnNaN``, dispatched asynchronously: training is not held up after
    every step to read its loss; a NaN stops training a step or so later."""

    async_safe = True


def _check_finite(history: dict[str, list[float]]) -> None:
    for key in ("loss", "val_loss"):
        values = history.get(key, [])
        if not values or not all(math.isfinite(v) for v in values):
            raise CaeError(
                f"training diverged: {key} became {values[-1] if values else 'undefined'}; "
                "lower model.learning_rate or check the data. No model was written."
            )


def write_loss_curves(history: dict[str, list[float]], log_dir: Path) -> None:
    """Write ``history`` as DVCLive files in ``log_dir``, as ``DVCLiveCallback`` would per epoch."""
    from dvclive.utils import standardize_metric_name

    from dvclive import Live

    live = Live(dir=str(log_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    for epoch in range(len(history.get("loss", []))):
        for metric, values in history.items():
            live.log_metric(standardize_metric_name(metric, "dvclive.keras"), values[epoch])
        live.next_step()
    live.end()


def _build_from_local_batch(model: keras.Model, batch) -> None:
    """Work around Keras 3.15 under ``MultiWorkerMirroredStrategy``: ``fit`` builds the
    model's training state from its first batch, averaged across workers with
    ``strategy.reduce``, which the collective strategy rejects (``ValueError: Attempt to
    convert a value (PerReplica…) to a Tensor``). The build only needs the batch's shapes,
    so build from a local batch instead."""

    def build(iterator=None, data_batch=None):
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=batch)

    model._maybe_symbolic_build = build
    _patch_multi_worker_metric_reduction()


def _patch_multi_worker_metric_reduction() -> None:
    """Work around Keras 3.15 under ``MultiWorkerMirroredStrategy``: the logged metrics
    (scalars) are averaged across workers with ``strategy.reduce("MEAN", v, axis=0)``,
    which fails on a scalar (``Invalid reduction dimension 0``). Average them whole."""
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "_cae_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica._cae_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica


def _on_default_strategy(strategy) -> bool:
    import tensorflow as tf

    return strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy()


def train_autoencoder(
    params: Params,
    inputs: np.ndarray,
    targets: np.ndarray,
    val_inputs: np.ndarray,
    val_targets: np.ndarray,
    callbacks: list[keras.callbacks.Callback] | None = None,
    log_dir: Path | None = None,
    backup_dir: Path | None = None,
    strategy=None,
    in_memory: bool | None = None,
) -> TrainResult:
    """Build the model from ``params`` and fit it; the caller seeds TensorFlow first.

    Arrays are images of shape (N, H, W, C): uint8 (converted to float32 in [0, 1]
    batch by batch, as :func:`cae.prepare.to_float` does) or float32 in [0, 1]. Epoch
    ``e`` visits the images in an order drawn from ``(params.seed, e)`` only. With
    ``in_memory`` (the default for plain NumPy arrays under the default strategy;
    memory-mapped arrays and :class:`cae.io.NpyRows` are not loaded) TensorFlow gathers the batches from tensors (:class:`cae.resume.TensorBatches`);
    otherwise they are read from the arrays batch by batch (:class:`cae.resume.EpochBatches`),
    which never loads a whole array from disk. Both give the same batches. With
    ``backup_dir``, each epoch is backed up there and a run finding a backup continues
    after it (the caller removes it once the outputs are written). With ``log_dir``, the
    per-epoch ``loss`` and ``val_loss`` of every epoch go to DVCLive there
    (``plots/metrics/{train,eval}/loss.tsv``). ``strategy`` is a ``tf.distribute``
    strategy (default: :func:`cae.distribute.make_strategy` of ``params.distribute``).
    """
    from cae.distribute import make_strategy
    from cae.prepare import as_float
    from cae.resume import EpochBatches, HistoryRecorder, TensorBatches, TrainingBackup

    strategy = strategy or make_strategy(params.distribute)
    alone = _on_default_strategy(strategy)
    # Keras 3.15 fails under MirroredStrategy with several steps per execution ("You must
    # feed a value for placeholder tensor … while/cond/Placeholder_1"): one step there.
    if in_memory is None:  # arrays read from disk (memory-mapped, cae.io.NpyRows) stay there
        in_memory = alone and all(type(a) is np.ndarray for a in (inputs, targets, val_inputs, val_targets))
    batches = (TensorBatches if in_memory else EpochBatches)(inputs, targets, params.batch_size, params.seed)
    with strategy.scope():
        model = build_autoencoder(params.model, inputs.shape[1:], params.seed)
        compile_autoencoder(
            model,
            params.model,
            steps_per_execution=params.steps_per_execution if alone else 1,
            total_steps=params.epochs * len(batches),
        )
    if params.distribute == "multi_worker":
        _build_from_local_batch(model, batches[0])
    recorder = TrainingBackup(backup_dir) if backup_dir is not None else HistoryRecorder()
    callbacks = [TerminateOnNaN(), batches.callback(), recorder, *(callbacks or [])]
    start = time.perf_counter()
    model.fit(
        batches.dataset if in_memory else batches,
        epochs=params.epochs,
        shuffle=False,  # the order is the batch source's
        # validation in order, batch by batch: from arrays in memory, or read from disk
        validation_data=(as_float(val_inputs), as_float(val_targets))
        if in_memory
        else EpochBatches(val_inputs, val_targets, params.batch_size, None),
        validation_batch_size=params.batch_size if in_memory else None,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    seconds = time.perf_counter() - start
    history = recorder.history
    _check_finite(history)
    if log_dir is not None:
        write_loss_curves(history, Path(log_dir))
    run_here = len(history["loss"]) - recorder.resumed_from
    return TrainResult(
        model,
        history,
        seconds,
        images=len(inputs) * run_here,
        train_images=len(inputs),
        resumed_from=recorder.resumed_from,
    )
