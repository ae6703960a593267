"""The training loop: Keras ``fit`` on (input, target) pairs, logged with DVCLive."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from cae import seeds
from cae.config import ModelParams, TrainSettings
from cae.errors import CaeError
from cae.model import build_autoencoder, compile_autoencoder
from cae.seeds import Stream

log = logging.getLogger("cae")


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


def _live(log_dir: Path):
    """A DVCLive logger writing to ``log_dir`` only (no dvc.yaml, no experiment, no report,
    no timestamps); it starts afresh, removing what an earlier run logged there."""
    from dvclive import Live

    return Live(dir=str(log_dir), dvcyaml=False, save_dvc_exp=False, report=None)


def _log_epochs(live, history: dict[str, list[float]], start: int) -> int:
    """Log epochs ``start``… of ``history`` to ``live``, one DVCLive step each, named as
    ``DVCLiveCallback`` names them (``train/loss``, ``eval/loss``); return the epochs logged."""
    from dvclive.utils import standardize_metric_name

    epochs = len(history.get("loss", []))
    for epoch in range(start, epochs):
        for metric, values in history.items():
            live.log_metric(standardize_metric_name(metric, "dvclive.keras"), values[epoch])
        live.next_step()
    return max(start, epochs)


class EpochLog(keras.callbacks.Callback):
    """One ``cae`` log line per epoch, beginning with ``label``: epoch, losses and seconds.
    For training in worker processes side by side, whose Keras progress lines would
    interleave on the terminal with nothing to say which model they are of."""

    def __init__(self, label: str):
        super().__init__()
        self.label = label
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        losses = ", ".join(f"{k} {float(v):.5f}" for k, v in (logs or {}).items() if k.endswith("loss"))
        log.info(
            "%s: epoch %d/%d: %s (%.1f s)",
            self.label,
            epoch + 1,
            self.params.get("epochs", 0),
            losses,
            time.perf_counter() - self.started,
        )


class LiveLog(keras.callbacks.Callback):
    """DVCLive's Keras callback (``DVCLiveCallback``), resumable: each epoch's metrics go to
    DVCLive in ``log_dir`` as the epoch ends, so ``dvc exp show`` and the VS Code extension
    follow a run. The values are read from ``recorder`` (a :class:`cae.resume.HistoryRecorder`
    or :class:`cae.resume.TrainingBackup`, placed before this callback), and a fit resumed
    from a backup first logs the epochs restored from it: the files end byte-identical to
    an uninterrupted run's."""

    def __init__(self, log_dir: Path, recorder):
        super().__init__()
        self.log_dir, self.recorder = Path(log_dir), recorder
        self.live = None
        self.logged = 0

    def on_train_begin(self, logs=None):
        self.live = _live(self.log_dir)
        self.logged = _log_epochs(self.live, self.recorder.history, 0)  # restored from a backup

    def on_epoch_end(self, epoch, logs=None):
        self.logged = _log_epochs(self.live, self.recorder.history, self.logged)

    def on_train_end(self, logs=None):
        if self.live is not None:  # None only if training never began
            self.live.end()


@contextlib.contextmanager
def restored_on_failure(directory: Path) -> Iterator[Path]:
    """Yield ``directory`` to be written in place (a live log); if the block fails, what it
    held before comes back. It is moved aside first, and removed once the block succeeds."""
    from cae.io import TMP_PREFIX

    directory = Path(directory)
    previous = directory.with_name(f"{TMP_PREFIX}{directory.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)  # left by a killed run
    if directory.is_dir():
        os.replace(directory, previous)
    try:
        yield directory
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        if previous.is_dir():
            os.replace(previous, directory)
        raise
    shutil.rmtree(previous, ignore_errors=True)


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

    reduce_per_replica._cae_patched = True  # type: ignore[attr-defined]  # a marker: patch once per process
    tf_trainer.reduce_per_replica = reduce_per_replica


def _on_default_strategy(strategy) -> bool:
    import tensorflow as tf

    return strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy()


def train_autoencoder(
    model_params: ModelParams,
    settings: TrainSettings,
    inputs: np.ndarray,
    targets: np.ndarray,
    val_inputs: np.ndarray,
    val_targets: np.ndarray,
    callbacks: list[keras.callbacks.Callback] | None = None,
    log_dir: Path | None = None,
    backup_dir: Path | None = None,
    strategy=None,
    in_memory: bool | None = None,
    label: str | None = None,
) -> TrainResult:
    """Build the model of ``model_params`` and fit it with ``settings``; the caller seeds
    TensorFlow first.

    Arrays are images of shape (N, H, W, C): uint8 (converted to float32 in [0, 1]
    batch by batch, as :func:`cae.prepare.to_float` does) or float32 in [0, 1]. Epoch
    ``e`` visits the images in an order drawn from ``(settings.seed, e)`` only. With
    ``in_memory`` (the default for plain NumPy arrays under the default strategy;
    memory-mapped arrays and :class:`cae.io.NpyRows` are not loaded) TensorFlow gathers the batches from tensors (:class:`cae.resume.TensorBatches`);
    otherwise they are read from the arrays batch by batch (:class:`cae.resume.EpochBatches`),
    which never loads a whole array from disk. Both give the same batches. With
    ``backup_dir``, each epoch is backed up there and a run finding a backup continues
    after it (the caller removes it once the outputs are written). With ``log_dir``, the
    ``loss`` and ``val_loss`` of every epoch go to DVCLive there as the epoch ends
    (:class:`LiveLog`: ``metrics.json``, ``plots/metrics/{train,eval}/loss.tsv``). ``strategy`` is a ``tf.distribute``
    strategy (default: :func:`cae.distribute.make_strategy` of ``settings.distribute``).
    With ``label``, Keras prints nothing and each epoch is one log line beginning with
    ``label`` (:class:`EpochLog`), for models trained side by side in worker processes.
    """
    from cae.distribute import make_strategy
    from cae.prepare import as_float
    from cae.resume import EpochBatches, HistoryRecorder, TensorBatches, TrainingBackup

    strategy = strategy or make_strategy(settings.distribute)
    alone = _on_default_strategy(strategy)
    # Keras 3.15 fails under MirroredStrategy with several steps per execution ("You must
    # feed a value for placeholder tensor … while/cond/Placeholder_1"): one step there.
    if in_memory is None:  # arrays read from disk (memory-mapped, cae.io.NpyRows) stay there
        in_memory = alone and all(type(a) is np.ndarray for a in (inputs, targets, val_inputs, val_targets))
    batches = (TensorBatches if in_memory else EpochBatches)(inputs, targets, settings.batch_size, settings.seed)
    with strategy.scope():
        model = build_autoencoder(model_params, inputs.shape[1:], seeds.seed_int(settings.seed, Stream.VAE_SAMPLING))
        compile_autoencoder(
            model,
            model_params,
            steps_per_execution=settings.steps_per_execution if alone else 1,
            total_steps=settings.epochs * len(batches),
        )
    if settings.distribute == "multi_worker":
        assert isinstance(batches, EpochBatches), "not in memory: multi_worker is not the default strategy"
        _build_from_local_batch(model, batches[0])
    recorder = TrainingBackup(backup_dir) if backup_dir is not None else HistoryRecorder()
    live = [LiveLog(Path(log_dir), recorder)] if log_dir is not None else []
    progress = [EpochLog(label)] if label is not None else []
    callbacks = [TerminateOnNaN(), batches.callback(), recorder, *live, *progress, *(callbacks or [])]
    start = time.perf_counter()
    model.fit(
        batches.dataset if in_memory else batches,
        epochs=settings.epochs,
        shuffle=False,  # the order is the batch source's
        # validation in order, batch by batch: from arrays in memory, or read from disk
        validation_data=(as_float(val_inputs), as_float(val_targets))
        if in_memory
        else EpochBatches(val_inputs, val_targets, settings.batch_size, None),
        validation_batch_size=settings.batch_size if in_memory else None,
        callbacks=callbacks,
        verbose=0 if label is not None else 1 if sys.stdout.isatty() else 2,
    )
    seconds = time.perf_counter() - start
    history = recorder.history
    _check_finite(history)
    run_here = len(history["loss"]) - recorder.resumed_from
    return TrainResult(
        model,
        history,
        seconds,
        images=len(inputs) * run_here,
        train_images=len(inputs),
        resumed_from=recorder.resumed_from,
    )
