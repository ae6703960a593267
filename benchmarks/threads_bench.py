"""Two small models one after another on every thread, or side by side on one thread each.

    .venv/bin/python benchmarks/threads_bench.py [--prepared data/prepared] [--section latent]
        [--images 20000] [--epochs 1]

Why `anomaly_models` and `train_embedding` train their models in ``workers`` processes
of one thread each (:func:`cae.runtime.run_jobs`). Trains the model of a params section
(``latent``: the plain embedding; ``anomaly``: a one-class model's architecture; ``top``:
the `train` stage's denoiser) on the first ``--images`` clean training images of the
prepared split, with that section's batch and the top level's steps per execution, in
fresh processes:

1. one model on TensorFlow's default threads;
2. one model on one thread, set up as :func:`cae.runtime.run_jobs` sets up its workers
   (:func:`cae.runtime.one_thread_worker`: TensorFlow's and NumPy's pools of one thread);
3. two models one after another on the default threads (twice 1, run in sequence);
4. two models side by side, one thread each (two of 2 at once).

It prints each one's training seconds (``fit`` alone, from :func:`cae.train.train_autoencoder`)
and the wall time of 3 and 4. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def train_once(args: argparse.Namespace) -> dict:
    """In a child: train the section's model once, return its training seconds."""
    from cae.config import TrainSettings, load_params
    from cae.io import read_arrays
    from cae.prepare import to_float
    from cae.runtime import make_deterministic
    from cae.train import train_autoencoder

    if args.one_thread:
        from cae.runtime import one_thread_worker

        one_thread_worker()
    params = load_params(args.params)
    section = {"top": params, "latent": params.latent, "anomaly": params.anomaly}[args.section]
    data = read_arrays(args.prepared, ["x_train", "x_val"], hint="run `dvc repro noisy_pairs`")
    x = to_float(data["x_train"][: args.images])
    val = to_float(data["x_val"][: max(1, args.images // 10)])
    settings = TrainSettings(
        seed=params.seed,
        epochs=args.epochs,
        batch_size=section.batch_size,
        steps_per_execution=params.steps_per_execution,
    )
    make_deterministic(params.seed)
    result = train_autoencoder(section.model, settings, x, x, val, val)
    return {"seconds": round(result.seconds, 2)}


def launch(argv: list[str], one_thread: bool) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--child", *(["--one-thread"] if one_thread else []), *argv]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def result(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"a training run failed (exit {proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])["seconds"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--section", choices=["latent", "anomaly", "top"], default="latent")
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--one-thread", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(train_once(args)))
        return 0

    forward = [
        *("--prepared", str(args.prepared), "--params", str(args.params), "--section", args.section),
        *("--images", str(args.images), "--epochs", str(args.epochs)),
    ]
    print(f"{args.section} model, {args.images} images, {args.epochs} epoch(s); training seconds")
    print(f"1. default threads: {result(launch(forward, False)):.1f} s")
    print(f"2. one thread:      {result(launch(forward, True)):.1f} s")
    start = time.perf_counter()
    seq = [result(launch(forward, False)) for _ in range(2)]
    print(
        f"3. two in sequence, default threads: {seq[0]:.1f} s + {seq[1]:.1f} s, wall {time.perf_counter() - start:.1f} s"
    )
    start = time.perf_counter()
    both = [launch(forward, True) for _ in range(2)]
    side = [result(p) for p in both]
    print(
        f"4. two side by side, one thread each: {side[0]:.1f} s and {side[1]:.1f} s, wall {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
