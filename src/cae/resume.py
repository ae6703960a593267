"""Resumable training: a shuffling order that survives a restart, and a per-epoch backup.

A killed ``train`` stage rerun by ``dvc repro`` continues from the last completed
epoch and ends with exactly the weights and metrics of an uninterrupted run:

* :class:`EpochBatches` draws epoch ``e``'s order from ``(seed, e)`` alone (the
  ``EPOCH_SHUFFLE`` stream of :mod:`cae.seeds`, keyed by the epoch), not from RNG
  state that a restart loses. Every run uses it, interrupted or not.
* :class:`TrainingBackup` (Keras' ``BackupAndRestore``) writes, after each epoch,
  the weights with the optimizer state and the per-epoch history, so the loss
  curves come out complete after a resume. A backup is written as two files, each
  renamed into place when complete, the JSON record last: a kill at any moment
  leaves the previous epoch's backup usable (older pairs are deleted only after).
* :func:`fingerprint` keys the backup directory by everything that decides the
  result (training params, data, code, library versions), so a backup made with
  other params or data is never resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from cae import seeds
from cae.config import ModelParams, TrainSettings
from cae.io import atomic_path
from cae.prepare import as_float, tf_as_float
from cae.seeds import Stream

log = logging.getLogger("cae.resume")

# The modules whose code decides the trained weights (a change invalidates a backup).
_CODE = ("train.py", "model.py", "resume.py", "distribute.py", "prepare.py", "seeds.py")


def fingerprint(model: ModelParams, settings: TrainSettings, task: str, *arrays: np.ndarray) -> str:
    """A short hex digest of the training params (the model, ``settings`` but its steps per
    execution, which give the same weights, and the ``task``), the data, the code and the
    versions."""
    import tensorflow as tf

    h = hashlib.sha256()
    train = {
        "seed": settings.seed,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "task": task,
        "distribute": settings.distribute,
        "model": model.model_dump(mode="json"),
    }
    key = {"train": train, "versions": [keras.__version__, tf.__version__, np.__version__]}
    h.update(json.dumps(key, sort_keys=True).encode())
    here = Path(__file__).parent
    for name in _CODE:
        path = here / name
        h.update(path.read_bytes() if path.is_file() else b"")
    for array in arrays:
        h.update(f"{array.dtype.str}{tuple(array.shape)}".encode())
        step = max(1, (1 << 26) // max(1, array[:1].nbytes))  # 64 MiB at a time: arrays may be streamed
        for start in range(0, len(array), step):
            h.update(np.ascontiguousarray(array[start : start + step]).data.cast("B"))
    return h.hexdigest()[:16]


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the ``n`` training images in ``epoch``; depends on nothing else."""
    return seeds.rng(seed, Stream.EPOCH_SHUFFLE, epoch).permutation(n)


class EpochBatches(keras.utils.PyDataset):
    """``(inputs[i], targets[i])`` in batches, shuffled per epoch from ``(seed, epoch)``.

    Pass :meth:`callback` to ``fit`` (it sets the epoch Keras is about to run) and
    ``shuffle=False`` (the order is this class's alone). The last batch may be short,
    as with Keras' own batching of arrays.
    """

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, batch_size: int, seed: int | None):
        super().__init__(workers=1, use_multiprocessing=False)
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.seed = batch_size, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        # seed None: in order, every epoch (validation batches, as Keras batches arrays)
        n = len(self.inputs)
        self.order = np.arange(n) if self.seed is None else epoch_order(self.seed, epoch, n)

    def __len__(self) -> int:
        return math.ceil(len(self.inputs) / self.batch_size)

    def __getitem__(self, index: int):
        idx = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return as_float(self.inputs[idx]), as_float(self.targets[idx])

    def callback(self) -> keras.callbacks.Callback:
        return _SetEpoch(self)


class _SetEpoch(keras.callbacks.Callback):
    """Sets the epoch Keras is about to run on a batch source (before it reads a batch)."""

    def __init__(self, source):
        super().__init__()
        self.source = source

    def on_epoch_begin(self, epoch, logs=None):
        self.source.set_epoch(epoch)


class TensorBatches:
    """The batches of :class:`EpochBatches`, gathered by TensorFlow from arrays held in memory.

    The fast path for arrays that fit in memory: both arrays become tensors once, and
    a ``tf.data`` pipeline gathers batch ``i`` of the current epoch's order (a
    variable set by :meth:`callback` from ``epoch_order(seed, epoch)`` before Keras
    opens the epoch's iterator) and converts uint8 images to float32 in the graph, so
    the next batch is prepared while the current one trains, without Python per batch.
    Same batches, same order, same float values as :class:`EpochBatches` (the tests
    compare whole training runs bit for bit).
    """

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, batch_size: int, seed: int):
        import tensorflow as tf

        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.n, self.batch_size, self.seed = len(inputs), batch_size, seed
        self._order = tf.Variable(epoch_order(seed, 0, self.n), trainable=False, name="epoch_order")
        x = tf.constant(inputs)
        y = x if targets is inputs else tf.constant(targets)

        def batch(i):
            idx = self._order[i * batch_size : (i + 1) * batch_size]
            return tf_as_float(tf.gather(x, idx)), tf_as_float(tf.gather(y, idx))

        self.dataset = tf.data.Dataset.range(len(self)).map(batch).prefetch(2)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._order.assign(epoch_order(self.seed, epoch, self.n))

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def callback(self) -> keras.callbacks.Callback:
        return _SetEpoch(self)


def _record(history: dict[str, list[float]], logs: dict | None) -> None:
    for key, value in (logs or {}).items():
        history.setdefault(key, []).append(float(value))


class HistoryRecorder(keras.callbacks.Callback):
    """Every epoch's logs as plain floats, for a run without a backup."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.resumed_from = 0

    def on_epoch_end(self, epoch, logs=None):
        _record(self.history, logs)


class TrainingBackup(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose backup also holds the history, written crash-safely.

    ``backup_dir`` holds ``epoch-NNNN.npz`` (the model's and the optimizer's
    variables) and ``epoch-NNNN.json`` (the epoch count and the history so far),
    each renamed into place when complete, the JSON last. On ``fit``'s start the
    newest complete pair is loaded and training continues at the epoch after it. An
    epoch whose loss is not finite is not backed up. The backup is kept after ``fit``
    (the caller removes it with :meth:`remove` once its outputs are safely written).
    A backup that cannot be written is a warning, not an error.

    The variables are stored with NumPy rather than Keras' ``.weights.h5``: an HDF5
    file that fails to write (a full disk) leaves the HDF5 library in a state where
    the later ``.keras`` save crashed the process (SIGSEGV, h5py 3.14).
    """

    def __init__(self, backup_dir: str | os.PathLike):
        super().__init__(str(backup_dir), delete_checkpoint=False)
        self.dir = Path(backup_dir)
        self.history: dict[str, list[float]] = {}  # every epoch's logs, the resumed ones included
        self.resumed_from = 0
        self._warned = False

    def _records(self) -> list[Path]:
        return sorted(self.dir.glob("epoch-*.json"), reverse=True) if self.dir.is_dir() else []

    def _variables(self) -> list:
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)  # its variables must exist to be restored
        return [*self.model.weights, *(optimizer.variables if optimizer is not None else [])]

    def _load_model(self):  # called by BackupAndRestore.on_train_begin
        for record in self._records():
            try:
                state = json.loads(record.read_text())
                variables = self._variables()
                with np.load(self.dir / state["variables"], allow_pickle=False) as npz:
                    values = [npz[f"v{i}"] for i in range(len(npz.files))]
                if [tuple(v.shape) for v in variables] != [a.shape for a in values]:
                    raise ValueError("the variables do not match this model")
                for variable, value in zip(variables, values, strict=True):
                    variable.assign(value)
            except Exception as exc:  # a damaged backup: try the one before, else start afresh
                log.warning("ignoring unreadable backup %s (%s: %s)", record, type(exc).__name__, exc)
                continue
            self.history = {k: [float(v) for v in vs] for k, vs in state["history"].items()}
            self.resumed_from = self.model._initial_epoch = int(state["epoch"])
            log.info("resuming from the backup of epoch %d in %s", self.resumed_from, self.dir)
            return

    def on_epoch_end(self, epoch, logs=None):
        _record(self.history, logs)
        if all(math.isfinite(values[-1]) for values in self.history.values()):
            self._save(epoch + 1)

    # Epoch backups only. The no-op batch hook is safe to run off the training thread;
    # saying so lets Keras keep dispatching batch hooks asynchronously (a callback that
    # is not async-safe makes every step wait for its logs; see benchmarks/README.md).
    async_safe = True

    def on_train_batch_end(self, batch, logs=None):
        pass

    def _save(self, epoch: int) -> None:
        stem = f"epoch-{epoch:04d}"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            values = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(self._variables())}
            with atomic_path(self.dir / f"{stem}.npz") as tmp, open(tmp, "wb") as f:
                np.savez(f, **values)
            record = {"epoch": epoch, "variables": f"{stem}.npz", "history": self.history}
            with atomic_path(self.dir / f"{stem}.json") as tmp:
                tmp.write_text(json.dumps(record))
        except Exception as exc:
            if not self._warned:
                log.warning(
                    "cannot back up the training state in %s (%s); a killed run would restart from its last backup",
                    self.dir,
                    exc,
                )
                self._warned = True
            return
        for old in self.dir.iterdir():  # keep only the newest complete pair
            if not old.name.startswith(f"{stem}."):
                old.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
