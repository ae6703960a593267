"""Stage `baselines`: classical denoisers at every noise level → metrics/baselines.json.

``metrics/baselines.json`` holds each method's PSNR at the headline level and the best
method; every level's PSNR and SSIM go to ``data/baselines/by_noise.csv``, which
`evaluate` merges into ``plots/psnr_by_noise.csv``.

Depends only on the prepared data (and its own params), so DVC reuses its result
across model experiments. Each method's parameter is tuned on validation images
corrupted at the level in question; every method is scored on the same seeded
subset of test images that `evaluate` scores the model on.
"""

from __future__ import annotations

from cae.config import Params
from cae.paths import BASELINES_BY_NOISE, BASELINES_DIR, BASELINES_METRICS, BASELINES_TUNED, HINT_PREPARED, PREPARED_DIR
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
PARAMS = ("seed", "noise", "baselines")


def headline_metrics(headline: dict[str, dict], level: float) -> dict:
    """``metrics/baselines.json``: each method's PSNR at the headline ``level`` and the best
    method (SSIM and the other levels are in ``plots/psnr_by_noise.csv``)."""
    best = max(headline, key=lambda m: headline[m]["psnr"])
    metrics: dict = {f"{method}_psnr": round(r["psnr"], 4) for method, r in headline.items()}
    metrics.update(best_method=best, best_psnr=round(headline[best]["psnr"], 4), level=level)
    return metrics


def main(params: Params) -> None:
    import numpy as np

    from cae import seeds
    from cae.baselines import run_baselines
    from cae.evaluate import psnr_ssim, score_row, write_rows_csv
    from cae.io import atomic_path, read_arrays, write_json
    from cae.noise import corrupt
    from cae.prepare import eval_subset, to_float
    from cae.seeds import Stream

    names = ["x_val", "x_test", "test_levels", "x_test_levels"]
    data = read_arrays(PREPARED_DIR, names, hint=HINT_PREPARED, mmap=True)
    cfg, noise = params.baselines, params.noise
    clean_val = to_float(data["x_val"][: cfg.val_images])
    subset = eval_subset(len(data["x_test"]), cfg.subset, params.seed)
    clean_test = to_float(data["x_test"][subset])
    log.info(
        "baselines %s on %d test images per level (tuned on %d validation images), levels %s",
        ", ".join(cfg.methods),
        len(subset),
        len(clean_val),
        ", ".join(f"{float(v):g}" for v in data["test_levels"]),
    )

    rows, headline = [], {}
    tuned: dict[str, dict[str, object]] = {}  # method → level → its tuned hyperparameters
    for j, level in enumerate(float(v) for v in data["test_levels"]):
        rng = seeds.rng(params.seed, Stream.BASELINE_TUNING_NOISE, j)
        noisy_val = corrupt(clean_val, noise.kind, level, rng, noise.block)
        noisy_test = np.asarray(data["x_test_levels"][j][subset])
        rows.append(score_row(level, "noisy", *psnr_ssim(noisy_test, clean_test)))
        results = run_baselines(
            noisy_val, clean_val, noisy_test, clean_test, level, methods=cfg.methods, workers=cfg.workers
        )
        for method, r in results.items():
            rows.append(score_row(level, method, r["psnr"], r["ssim"]))
            tuned.setdefault(method, {})[f"{level:g}"] = r["hyper"]
            log.info(
                "  %-8s @ %g: PSNR %.2f dB, SSIM %.3f (%s) in %.1f s",
                method,
                level,
                r["psnr"],
                r["ssim"],
                r["hyper"] or "no parameter",
                r["seconds"],
            )
        if np.isclose(level, noise.test_level):
            headline = results

    metrics = headline_metrics(headline, noise.test_level)
    best = metrics["best_method"]
    with atomic_path(BASELINES_DIR, directory=True) as tmp:
        write_rows_csv(tmp / BASELINES_BY_NOISE.name, rows)
        write_json(tmp / BASELINES_TUNED.name, tuned)
        write_json(BASELINES_METRICS, metrics)
    log.info("best classical method at %g: %s, PSNR %.2f dB", noise.test_level, best, headline[best]["psnr"])


if __name__ == "__main__":
    run_stage(main)
