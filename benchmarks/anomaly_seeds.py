"""The one-class study's spread across seeds: per-class AUROC of every score, per seed.

    .venv/bin/python benchmarks/anomaly_seeds.py --seeds 0 1 2 [--params params.yaml] [--json out.json]

Trains the one-class models exactly as the `anomaly_models` stage does (the params'
``anomaly:`` section, the same library call, each class seeded alone, ``workers`` at a time) on the prepared
split in ``data/prepared`` (``dvc repro noisy_pairs`` first), once per ``--seeds``
entry. Only the models' seed changes (weight initialisation, shuffling, the PCA peer's
stream): the data split is the one the params' ``seed`` made. For each seed it prints the
AUROC % of every score and of the ensemble (``anomaly.ensemble``) per class, the mean,
and on how many classes the ensemble is above PCA; then the ensemble's mean and worst
class over the seeds. One seed of the ten MNIST classes takes about three minutes on 2
CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args(argv)

    from cae.anomaly import METHODS, auroc, class_images, class_scores, ensemble_scores
    from cae.config import ENSEMBLE_SCORE, TrainSettings, load_params
    from cae.errors import CaeError
    from cae.io import read_arrays
    from cae.runtime import run_jobs

    try:
        params = load_params(args.params)
        data = read_arrays(
            args.prepared,
            ["x_train", "y_train", "x_val", "y_val", "x_test", "y_test"],
            hint="run `dvc repro noisy_pairs`",
        )
    except CaeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = params.anomaly
    y_test = np.ravel(data["y_test"])

    job = partial(class_scores, noise=cfg.noise, pca_dims=cfg.pca_dims, neighbours=cfg.neighbours)
    results: dict[int, dict[int, dict[str, float]]] = {}
    for seed in args.seeds:
        results[seed] = {}
        started = time.perf_counter()
        settings = TrainSettings(
            seed=seed, epochs=cfg.epochs, batch_size=cfg.batch_size, steps_per_execution=params.steps_per_execution
        )
        jobs = [
            (
                cfg.model,
                settings,
                label,
                class_images(data["x_train"], data["y_train"], label, cfg.min_images),
                class_images(data["x_val"], data["y_val"], label, 1, split="validation"),
                data["x_test"],
            )
            for label in cfg.classes
        ]
        for label, (test_scores, train_scores) in zip(cfg.classes, run_jobs(job, jobs, params.workers), strict=True):
            test_scores[ENSEMBLE_SCORE], _ = ensemble_scores(test_scores, train_scores, cfg.ensemble)
            results[seed][label] = {m: 100 * auroc(test_scores[m], y_test != label) for m in METHODS}
        print(f"\nseed {seed} ({time.perf_counter() - started:.0f} s), AUROC %")
        print(f"{'score':9}" + "".join(f"{c:>7}" for c in cfg.classes) + "    mean")
        for m in METHODS:
            row = [results[seed][c][m] for c in cfg.classes]
            print(f"{m:9}" + "".join(f"{v:7.2f}" for v in row) + f"  {np.mean(row):6.2f}")
        above = sum(results[seed][c][ENSEMBLE_SCORE] > results[seed][c]["pca"] for c in cfg.classes)
        print(f"ensemble above PCA on {above} of {len(cfg.classes)} classes")

    means = [np.mean([results[s][c][ENSEMBLE_SCORE] for c in cfg.classes]) for s in args.seeds]
    print(f"\nensemble mean AUROC over seeds {args.seeds}: " + ", ".join(f"{m:.2f}" for m in means))
    print(f"lowest {min(means):.2f}, mean {np.mean(means):.2f}")
    if args.json:
        args.json.write_text(
            json.dumps({str(s): {str(c): r for c, r in v.items()} for s, v in results.items()}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
