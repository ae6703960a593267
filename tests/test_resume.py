"""Resumable training in-process: the per-epoch order, the backup, and an interrupted fit
that continues to exactly the weights and history of an uninterrupted one."""

import json

import keras
import numpy as np
import pytest

from cae import runtime
from cae.config import TrainSettings, parse_params
from cae.prepare import to_float
from cae.resume import EpochBatches, TensorBatches, epoch_order, fingerprint
from cae.train import train_autoencoder


def _tiny_data(n=64, size=8):
    rng = np.random.default_rng(0)
    clean = (rng.random((n, size, size, 1)) > 0.7).astype(np.float32)
    noisy = np.clip(clean + 0.3 * rng.standard_normal(clean.shape).astype(np.float32), 0, 1)
    return noisy, clean


PARAMS = {"epochs": 4, "batch_size": 16, "model": {"learning_rate": 0.01}}


class Interrupt(keras.callbacks.Callback):
    """Stands in for a kill: stops the process's fit after ``after`` epochs, abruptly."""

    def __init__(self, after):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.after:
            raise KeyboardInterrupt


def _fit(backup_dir, callbacks=(), in_memory=None, clean=None, log_dir=None, **overrides):
    params = parse_params({**PARAMS, **overrides})
    noisy, float_clean = _tiny_data()
    clean = float_clean if clean is None else clean
    runtime.make_deterministic(params.seed)
    return train_autoencoder(
        params.model,
        TrainSettings.of(params),
        noisy[:48],
        clean[:48],
        noisy[48:],
        clean[48:],
        callbacks=list(callbacks),
        backup_dir=backup_dir,
        in_memory=in_memory,
        log_dir=log_dir,
    )


def test_each_epoch_order_depends_on_seed_and_epoch_only():
    x = np.arange(10, dtype=np.float32)
    batches = EpochBatches(x, -x, batch_size=4, seed=3)
    assert len(batches) == 3
    for epoch in (2, 0, 2):
        batches.set_epoch(epoch)
        seen = np.concatenate([batches[i][0] for i in range(len(batches))])
        np.testing.assert_array_equal(seen, epoch_order(3, epoch, 10))
        np.testing.assert_array_equal(np.concatenate([batches[i][1] for i in range(3)]), -seen)
    assert not np.array_equal(epoch_order(3, 0, 10), epoch_order(3, 1, 10))
    assert not np.array_equal(epoch_order(3, 0, 10), epoch_order(4, 0, 10))


def test_tensor_batches_gather_each_epochs_order_as_float():
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * 25
    batches = TensorBatches(x, x, batch_size=4, seed=3)
    assert len(batches) == 3
    for epoch in (2, 0, 2):
        batches.set_epoch(epoch)
        pairs = [(a.numpy(), b.numpy()) for a, b in batches.dataset]
        assert [len(a) for a, _ in pairs] == [4, 4, 2]
        seen = np.concatenate([a for a, _ in pairs])
        assert seen.dtype == np.float32
        np.testing.assert_array_equal(seen, to_float(x[epoch_order(3, epoch, 10)]))
        np.testing.assert_array_equal(np.concatenate([b for _, b in pairs]), seen)


def test_in_memory_path_trains_exactly_as_streaming_batches_from_numpy():
    """TensorBatches (uint8 targets converted in the graph, several steps per execution)
    ends with the bytes of EpochBatches on float32 arrays, one step per execution."""
    _, clean = _tiny_data()
    streamed = _fit(None, in_memory=False, steps_per_execution=1)
    fast = _fit(None, in_memory=True, clean=(clean * 255).astype(np.uint8), steps_per_execution=2)
    assert fast.history == streamed.history
    for a, b in zip(streamed.model.get_weights(), fast.model.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()


def test_memory_mapped_arrays_stream_and_are_never_turned_into_tensors(tmp_path, monkeypatch):
    noisy, clean = _tiny_data()
    np.save(tmp_path / "x.npy", noisy[:48])
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    read = []
    original = EpochBatches.__getitem__
    monkeypatch.setattr(EpochBatches, "__getitem__", lambda self, i: read.append(i) or original(self, i))
    monkeypatch.setattr(TensorBatches, "__init__", lambda *a, **k: pytest.fail("a memmap became a tensor"))
    params = parse_params({**PARAMS, "epochs": 1})
    runtime.make_deterministic(params.seed)
    result = train_autoencoder(params.model, TrainSettings.of(params), mapped, clean[:48], noisy[48:], clean[48:])
    assert len(result.history["loss"]) == 1 and read


def test_fit_visits_each_epoch_in_its_own_order(monkeypatch):
    """Every batch Keras trains on in epoch e is fetched while EpochBatches is set to e
    (no prefetching across the epoch boundary). The in-memory path is checked against
    this one by the test above."""
    keras_epoch = {"now": None}
    fetched = []  # (epoch Keras is in, epoch the dataset is set to, batch index)
    original = EpochBatches.__getitem__

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            keras_epoch["now"] = epoch

    def spy(self, index):
        if self.seed is not None:  # the training batches (validation ones come in order, seed None)
            fetched.append((keras_epoch["now"], self.epoch, index))
        return original(self, index)

    monkeypatch.setattr(EpochBatches, "__getitem__", spy)
    result = _fit(None, callbacks=[Watch()], in_memory=False, epochs=3, steps_per_execution=1)
    assert len(result.history["loss"]) == 3
    during = [f for f in fetched if f[0] is not None]  # before: Keras' probe of the batch shape
    assert during == [(e, e, i) for e in range(3) for i in range(3)]  # 48 images, batch 16


def _files(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_interrupted_fit_resumes_to_identical_weights_and_history(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # DVCLive inspects the git/DVC repo around the working directory
    straight = _fit(tmp_path / "a", log_dir=tmp_path / "log-a")
    assert list((tmp_path / "a").glob("*.json")), "the backup stays until the caller removes it"

    backup, live = tmp_path / "b", tmp_path / "log-b"
    with pytest.raises(KeyboardInterrupt):
        _fit(backup, callbacks=[Interrupt(after=2)], log_dir=live)
    # logged live: the two epochs run so far are in DVCLive's files already
    assert json.loads((live / "metrics.json").read_text())["step"] == 1
    assert len((live / "plots/metrics/train/loss.tsv").read_text().splitlines()) == 1 + 2
    record = json.loads((backup / "epoch-0002.json").read_text())
    assert record["epoch"] == 2 and len(record["history"]["loss"]) == 2
    assert sorted(p.name for p in backup.iterdir()) == ["epoch-0002.json", "epoch-0002.npz"]

    resumed = _fit(backup, log_dir=live)
    assert resumed.resumed_from == 2
    assert resumed.images == 2 * 48 and resumed.train_images == 48
    assert resumed.history == straight.history  # all four epochs, bit for bit
    assert resumed.summary() == straight.summary()
    for a, b in zip(straight.model.get_weights(), resumed.model.get_weights(), strict=True):
        assert a.tobytes() == b.tobytes()
    optim = [v.numpy().tobytes() for v in straight.model.optimizer.variables]
    assert optim == [v.numpy().tobytes() for v in resumed.model.optimizer.variables]
    logged = _files(live)  # the resumed run's DVCLive files: byte for byte the uninterrupted run's
    assert logged == _files(tmp_path / "log-a")
    assert sorted(logged) == ["metrics.json", "plots/metrics/eval/loss.tsv", "plots/metrics/train/loss.tsv"]
    assert b"timestamp" not in b"".join(logged.values())


def test_damaged_backup_is_ignored_and_training_starts_afresh(tmp_path):
    straight = _fit(None, epochs=2)
    backup = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        _fit(backup, epochs=2, callbacks=[Interrupt(after=1)])
    (backup / "epoch-0001.npz").write_bytes(b"garbage")  # e.g. a disk error
    resumed = _fit(backup, epochs=2)
    assert resumed.resumed_from == 0  # nothing usable: trained from the start
    assert resumed.history == straight.history


def _key(overrides, *arrays):
    params = parse_params({**PARAMS, **overrides})
    return fingerprint(params.model, TrainSettings.of(params), params.task, *arrays)


def test_fingerprint_changes_with_params_and_data():
    noisy, clean = _tiny_data()
    base = _key({}, noisy, clean)
    assert base == _key({}, noisy.copy(), clean.copy())
    assert base != _key({"epochs": 5}, noisy, clean)
    assert base != _key({"model": {"learning_rate": 0.02}}, noisy, clean)
    assert base != _key({"distribute": "mirrored"}, noisy, clean)
    assert base != _key({"seed": 1}, noisy, clean)
    assert base != _key({"batch_size": 8}, noisy, clean)
    assert base != _key({"task": "reconstruct"}, noisy, clean)
    changed = clean.copy()
    changed[0, 0, 0, 0] = 1 - changed[0, 0, 0, 0]
    assert base != _key({}, noisy, changed)
    # params that do not reach training (noise, baselines) are in the data, not the key;
    # nor are the steps per execution, which give the same weights
    assert base == _key({"baselines": {"subset": 10}}, noisy, clean)
    assert base == _key({"steps_per_execution": 1}, noisy, clean)


def test_unwritable_backup_is_a_warning_and_training_goes_on(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _fit(blocker / "backup", epochs=2)
    assert len(result.history["loss"]) == 2
    assert sum("cannot back up the training state" in r.message for r in caplog.records) == 1
    assert result.resumed_from == 0
    assert result.history == _fit(None, epochs=2).history  # the failed backups changed nothing


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_dvc_repro_after_sigkill_mid_training_matches_an_uninterrupted_run(tmp_path):
    """Kill `dvc repro` (the whole process group, as a preemption would) after the
    2nd of 6 epochs; `dvc repro` again resumes and ends with the same bytes."""
    import os
    import shutil
    import signal
    import time

    from project_copy import sh, start, tiny_project

    killed = tiny_project(tmp_path / "killed", epochs=6, batch_size=128)
    sh("dvc repro noisy_pairs", killed, timeout=240)
    straight = tmp_path / "straight"
    shutil.copytree(killed, straight, symlinks=True)  # same data, no recomputation

    # `exec`: dvc is the shell's process itself, so it is reaped here once killed (DVC
    # frees a dead process's locks, but a zombie not yet reaped by init still counts).
    proc = start("exec dvc repro train", killed)
    backups = killed / ".cae/train-backup"
    deadline = time.monotonic() + 240
    while not list(backups.glob("*/epoch-0002.json")):
        assert proc.poll() is None, f"train ended before it could be killed:\n{proc.communicate()[0]}"
        assert time.monotonic() < deadline, "no backup of epoch 2 within 240 s"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    out_killed = proc.communicate()[0]
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "models/autoencoder.keras").exists(), out_killed
    kept = [int(p.name[6:10]) for p in backups.glob("*/epoch-*.json")]
    assert len(kept) == 1 and 2 <= kept[0] < 6, kept

    out = sh("dvc repro train", killed, timeout=300)
    assert f"resuming from the backup of epoch {kept[0]}" in out, out
    assert f"Epoch {kept[0] + 1}/6" in out and "Epoch 1/6" not in out, "epochs before the backup are not rerun"
    assert not backups.exists() or not any(backups.iterdir()), "the backup is removed after success"
    assert "up to date" in sh("dvc status train", killed)

    sh("dvc repro train", straight, timeout=300)
    for path in (
        "metrics/train.json",
        "models/autoencoder.keras",
        "dvclive/metrics.json",
        "dvclive/plots/metrics/train/loss.tsv",
        "dvclive/plots/metrics/eval/loss.tsv",
    ):
        assert (killed / path).read_bytes() == (straight / path).read_bytes(), path
    assert len((killed / "dvclive/plots/metrics/train/loss.tsv").read_text().splitlines()) == 7  # header + 6 epochs
    assert (killed / "dvc.lock").read_text() == (straight / "dvc.lock").read_text()
