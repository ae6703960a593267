"""Image-quality metrics: PSNR and SSIM from scikit-image, and binary cross-entropy."""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm import tqdm

# PSNR of two identical images is infinite; capping at 100 dB (MSE 1e-10) keeps
# means finite and JSON-serialisable without affecting any realistic image.
PSNR_CAP = 100.0
_BCE_EPS = 1e-7  # the epsilon Keras clips with in binary_crossentropy


def psnr_ssim(pred: np.ndarray, target: np.ndarray, desc: str = "metrics") -> tuple[float, float]:
    """Mean PSNR and SSIM over images of shape (N, H, W, C) in [0, 1] (data range 1)."""
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: {pred.shape} vs {target.shape}")
    psnrs = np.empty(len(pred))
    ssims = np.empty(len(pred))
    win = min(7, *target.shape[1:3])
    win -= 1 - win % 2  # SSIM needs an odd window no larger than the image
    for i in tqdm(range(len(pred)), desc=desc, unit="img", leave=False, disable=None):
        t = target[i].astype(np.float64)
        p = pred[i].astype(np.float64)
        mse = np.mean((t - p) ** 2)
        psnrs[i] = PSNR_CAP if mse <= 10 ** (-PSNR_CAP / 10) else peak_signal_noise_ratio(t, p, data_range=1.0)
        ssims[i] = structural_similarity(t, p, data_range=1.0, channel_axis=-1, win_size=win)
    return float(psnrs.mean()), float(ssims.mean())


def binary_crossentropy(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean binary cross-entropy over all pixels, clipped as Keras clips it."""
    p = np.clip(pred.astype(np.float64), _BCE_EPS, 1 - _BCE_EPS)
    t = target.astype(np.float64)
    return float(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))


def evaluate_denoiser(predict, clean: np.ndarray, noisy: np.ndarray) -> dict[str, float | int]:
    """The flat metrics of ``metrics/eval.json`` for a model on the test split: headline
    figures only (the per-level ones are in ``plots/psnr_by_noise.csv``).

    ``predict`` maps a float32 batch of images to reconstructions.
    """
    denoised = predict(noisy)
    recon = predict(clean)
    denoise_psnr, denoise_ssim = psnr_ssim(denoised, clean, "denoised")
    noisy_psnr, _ = psnr_ssim(noisy, clean, "noisy input")
    recon_psnr, _ = psnr_ssim(recon, clean, "reconstructed")
    return {
        "denoise_psnr": round(denoise_psnr, 4),
        "denoise_ssim": round(denoise_ssim, 5),
        "noisy_psnr": round(noisy_psnr, 4),
        "recon_psnr": round(recon_psnr, 4),
        "recon_bce": round(binary_crossentropy(recon, clean), 6),
        "test_images": int(len(clean)),
    }


BY_NOISE_COLUMNS = ("level", "method", "psnr", "ssim")


def scores_by_level(
    predict, clean: np.ndarray, noisy_levels: np.ndarray, levels: np.ndarray, method: str = "autoencoder"
) -> list[dict]:
    """Rows (level, method, psnr, ssim) for the noisy input and for ``predict`` at each level.

    ``noisy_levels`` has shape (levels, N, H, W, C); ``clean`` (N, H, W, C).
    """
    rows = []
    for level, noisy in zip(levels, noisy_levels, strict=True):
        for name, images in (("noisy", noisy), (method, predict(noisy))):
            psnr, ssim = psnr_ssim(images, clean, f"{name} @ {float(level):g}")
            rows.append(score_row(float(level), name, psnr, ssim))
    return rows


def score_row(level: float, method: str, psnr: float, ssim: float) -> dict:
    return {"level": round(level, 6), "method": method, "psnr": round(psnr, 4), "ssim": round(ssim, 5)}


def write_rows_csv(path, rows: list[dict]) -> None:
    """Write rows as CSV (sorted by level, then method), atomically."""
    import csv
    import io

    from cae.io import write_bytes

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=BY_NOISE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: (r["level"], r["method"])))
    write_bytes(path, buf.getvalue().encode())


def read_rows_csv(path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return [
            {"level": float(r["level"]), "method": r["method"], "psnr": float(r["psnr"]), "ssim": float(r["ssim"])}
            for r in csv.DictReader(f)
        ]
