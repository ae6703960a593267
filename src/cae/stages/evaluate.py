"""Stage `evaluate`: PSNR, SSIM and BCE of the model on the test split → metrics/eval.json."""

from __future__ import annotations

from cae.config import Params
from cae.stages import HINT_PREPARED, METRICS_DIR, MODEL_PATH, PREPARED_DIR, log, run_stage

EVAL_METRICS = METRICS_DIR / "eval.json"


def main(params: Params) -> None:
    from cae import runtime
    from cae.evaluate import evaluate_denoiser
    from cae.io import read_arrays, write_json
    from cae.model import load_model
    from cae.prepare import to_float

    data = read_arrays(PREPARED_DIR, ["x_test", "x_test_noisy"], hint=HINT_PREPARED)
    runtime.make_deterministic(params.seed)
    model = load_model(MODEL_PATH)

    def predict(x):
        return model.predict(x, batch_size=params.batch_size, verbose=0)

    metrics = evaluate_denoiser(predict, to_float(data["x_test"]), data["x_test_noisy"])
    write_json(EVAL_METRICS, metrics)
    log.info(
        "denoise PSNR %.2f dB (noisy input %.2f dB), SSIM %.3f; reconstruction BCE %.4f on %d test images",
        metrics["denoise_psnr"], metrics["noisy_psnr"], metrics["denoise_ssim"], metrics["recon_bce"],
        metrics["test_images"],
    )  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
