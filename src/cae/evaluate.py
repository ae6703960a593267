"""Image-quality metrics: PSNR, SSIM (scikit-image's definition, computed for many images at once) and binary cross-entropy."""

from __future__ import annotations

import numpy as np

# PSNR of two identical images is infinite; capping at 100 dB (MSE 1e-10) keeps
# means finite and JSON-serialisable without affecting any realistic image.
PSNR_CAP = 100.0
_BCE_EPS = 1e-7  # the epsilon Keras clips with in binary_crossentropy
CHUNK = 1024  # images per vectorised step of PSNR and SSIM: bounded memory for any number of images


def psnr_ssim(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Mean PSNR and SSIM over images of shape (N, H, W, C) in [0, 1] (data range 1)."""
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: {pred.shape} vs {target.shape}")
    psnrs = np.empty(len(pred))
    for start in range(0, len(pred), CHUNK):
        t = np.asarray(target[start : start + CHUNK], np.float64)
        p = np.asarray(pred[start : start + CHUNK], np.float64)
        mse = np.mean(((t - p) ** 2).reshape(len(t), -1), axis=1)
        with np.errstate(divide="ignore"):  # identical images: capped below
            psnr = 10 * np.log10(1.0 / mse)  # scikit-image's peak_signal_noise_ratio, data range 1
        psnrs[start : start + CHUNK] = np.where(mse <= 10 ** (-PSNR_CAP / 10), PSNR_CAP, psnr)
    return float(psnrs.mean()), float(ssim_per_image(pred, target).mean())


def ssim_per_image(images: np.ndarray, recon: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """SSIM per image (N, H, W, C) in [0, 1], float64, with a 7×7 window (odd, no larger than the image).

    scikit-image's ``structural_similarity`` (uniform window, sample covariance, data
    range 1, the mean over channels), computed for ``chunk`` images at once: the same
    filters along the same axes, so the same values as calling it image by image (to
    the last bits of the mean), many times faster on small images.
    """
    from scipy.ndimage import uniform_filter

    if images.shape != recon.shape:
        raise ValueError(f"shape mismatch: {images.shape} vs {recon.shape}")
    win = min(7, *images.shape[1:3])
    win -= 1 - win % 2  # odd, no larger than the image
    pad = (win - 1) // 2
    cov_norm = win * win / (win * win - 1.0)
    c1, c2 = 0.01**2, 0.03**2  # (K1·R)², (K2·R)² with scikit-image's K1, K2 and R = 1
    out = np.empty(len(images))
    for start in range(0, len(images), chunk):
        x = np.asarray(images[start : start + chunk], np.float64)
        y = np.asarray(recon[start : start + chunk], np.float64)

        def local_mean(v):
            return uniform_filter(v, size=(1, win, win, 1))

        ux, uy = local_mean(x), local_mean(y)
        vx = cov_norm * (local_mean(x * x) - ux * ux)
        vy = cov_norm * (local_mean(y * y) - uy * uy)
        vxy = cov_norm * (local_mean(x * y) - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        inner = s[:, pad : s.shape[1] - pad, pad : s.shape[2] - pad, :]
        out[start : start + chunk] = inner.mean(axis=(1, 2)).mean(axis=1)
    return out


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
    denoise_psnr, denoise_ssim = psnr_ssim(denoised, clean)
    noisy_psnr, _ = psnr_ssim(noisy, clean)
    recon_psnr, _ = psnr_ssim(recon, clean)
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
            psnr, ssim = psnr_ssim(images, clean)
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
