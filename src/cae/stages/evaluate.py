"""Stage `evaluate`: the model on the test split → metrics/eval.json, plots/psnr_by_noise.csv.

``metrics/eval.json`` scores all test images at the headline noise level, and holds
``score_threshold``: the reconstruction error (``cae score``'s score) that 1 % of the
clean validation images exceed, above which ``cae score`` calls an image an anomaly.
``plots/psnr_by_noise.csv`` has one row (level, method, psnr, ssim) per noise level
and method — the noisy input, the autoencoder and every classical baseline — all on
the same seeded subset of test images.
"""

from __future__ import annotations

from cae.config import Params
from cae.paths import (
    BASELINES_BY_NOISE,
    EVAL_METRICS,
    HINT_BASELINES,
    HINT_PREPARED,
    MODEL_PATH,
    PREPARED_DIR,
    PSNR_BY_NOISE,
)
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
PARAMS = ("seed", "batch_size", "baselines.subset")
SCORE_QUANTILE = 0.99  # `cae score` flags images less well reconstructed than 99 % of validation images


def main(params: Params) -> None:
    import numpy as np

    from cae import runtime
    from cae.anomaly import mse_scores
    from cae.errors import CaeError
    from cae.evaluate import evaluate_denoiser, read_rows_csv, scores_by_level, write_rows_csv
    from cae.io import check_model_file, read_arrays, write_json
    from cae.prepare import eval_subset, to_float

    names = ["x_test", "x_test_noisy", "test_levels", "x_test_levels", "x_val"]
    data = read_arrays(PREPARED_DIR, names, hint=HINT_PREPARED, mmap=True)
    if not BASELINES_BY_NOISE.is_file():
        raise CaeError(f"{BASELINES_BY_NOISE}: not found; {HINT_BASELINES}")
    baseline_rows = [r for r in read_rows_csv(BASELINES_BY_NOISE) if r["method"] != "noisy"]
    check_model_file(MODEL_PATH)
    from cae.model import load_model  # TensorFlow only once every input is there

    runtime.make_deterministic(params.seed)
    model = load_model(MODEL_PATH, image_shape=data["x_test"].shape[1:])

    def predict(x):
        return model.predict(x, batch_size=params.batch_size, verbose=0)

    metrics = evaluate_denoiser(predict, to_float(data["x_test"]), data["x_test_noisy"])
    x_val = to_float(data["x_val"])
    val_errors = mse_scores(x_val, predict(x_val))  # `cae score`'s score of each clean validation image
    metrics["score_threshold"] = round(float(np.quantile(val_errors, SCORE_QUANTILE)), 8)
    write_json(EVAL_METRICS, metrics)
    log.info(
        "denoise PSNR %.2f dB (noisy input %.2f dB), SSIM %.3f; reconstruction BCE %.4f on %d test images",
        metrics["denoise_psnr"],
        metrics["noisy_psnr"],
        metrics["denoise_ssim"],
        metrics["recon_bce"],
        metrics["test_images"],
    )
    log.info(
        "cae score threshold %.6g (%g quantile of %d clean validation images)",
        metrics["score_threshold"],
        SCORE_QUANTILE,
        len(val_errors),
    )

    subset = eval_subset(len(data["x_test"]), params.baselines.subset, params.seed)
    rows = scores_by_level(
        predict, to_float(data["x_test"][subset]), data["x_test_levels"][:, subset], data["test_levels"]
    )
    write_rows_csv(PSNR_BY_NOISE, rows + baseline_rows)
    for r in rows:
        if r["method"] == "autoencoder":
            log.info("  level %g: autoencoder PSNR %.2f dB, SSIM %.3f", r["level"], r["psnr"], r["ssim"])


if __name__ == "__main__":
    run_stage(main)
