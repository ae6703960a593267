"""Classical denoisers that need no training: the baselines the autoencoder must beat.

Six methods, each applied image by image (``METHODS``); the tuned hyperparameters in
brackets:

* ``median`` — 3×3 median filter (``scipy.ndimage``), per channel [none];
* ``gaussian`` — Gaussian blur (``scipy.ndimage``), per channel [``sigma``, pixels];
* ``tv`` — total variation, ``skimage.restoration.denoise_tv_chambolle``, per channel
  [``weight``];
* ``nlmeans`` — non-local means, ``skimage.restoration.denoise_nl_means`` in fast mode
  with 5×5 patches and a 13×13 search window (sized for 28×28 images; colour patches
  span all channels) [``h``; ``patch_size`` and ``patch_distance`` are reported but fixed];
* ``wavelet`` — ``skimage.restoration.denoise_wavelet``, BayesShrink, per channel
  [``sigma``, ``mode`` soft/hard, ``wavelet`` db1/db2/sym4];
* ``bm3d`` — BM3D from the optional ``bm3d`` package (licensed for non-commercial use
  only; ``pip install -e '.[bm3d]'``) with its reference profile ``"np"``;
  3-channel images use CBM3D (``bm3d.bm3d_rgb``, opponent colour space, block matching
  on luminance), other channel counts are filtered channel by channel [``sigma_psd``;
  ``profile`` is reported but fixed, see ``BM3D_PROFILE``].

**Tuning.** :func:`tune` tries every point of a small fixed grid on a validation subset
and keeps the one with the highest mean PSNR (ties go to the earlier grid point). The
grids for noise-dependent parameters are multiples of a noise scale σ̂: the mean over
the validation images of ``skimage.restoration.estimate_sigma`` (the wavelet MAD
estimator). σ̂ measures the noise actually present whatever its kind, which matters even
for Gaussian noise: ``clip(x + 0.4·N(0, 1), 0, 1)`` on MNIST has an effective standard
deviation near 0.23, not 0.4, and the best BM3D ``sigma_psd`` there is about 0.2. The
``level`` passed to :func:`tune` (for Gaussian noise the true σ, i.e. the factor) is a
hint: it is added as one more candidate for the σ-like parameters (BM3D ``sigma_psd``,
wavelet ``sigma``) when it is a plausible standard deviation (0 < level ≤ 1) and not
within 10 % of a grid point already there, and it stands in for σ̂ when the images are
too clean to estimate anything. The Gaussian-blur grid is in pixels and does not depend
on the noise.

**Speed and determinism.** Work is split into chunks of images and, with ``workers`` >
1, run in that many worker processes (joblib's loky backend). Every image is denoised
independently with no randomness, and BM3D runs single-threaded inside each process
(its own multi-threading is both slower here and not bit-reproducible), so the output is
byte-identical for any ``workers``. BM3D's reference profile costs about 0.3 s per
28×28 image on one idle core (0.3 s even at 16×16), nearly all of it in the compiled
library's hard-thresholding stage — its correlated-noise machinery (``nf``, ``gamma``),
which the package's conventional mode (``nf = 0``, offered here as profile
``"classic"``) skips at about 10 ms per image but with different output; parallel
processes are the only speed-up found that leaves the output unchanged.

Images are arrays (N, H, W, C), float in [0, 1]; outputs are float32 clipped to [0, 1].
BM3D needs H, W ≥ 8.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from cae.config import BASELINE_METHODS, BM3D_MISSING, DEFAULT_BASELINE_METHODS, package_installed
from cae.evaluate import psnr_ssim

METHODS: tuple[str, ...] = BASELINE_METHODS  # the names baselines.methods accepts
# The default set: every method but BM3D, whose package is an optional extra.
DEFAULT_METHODS: tuple[str, ...] = DEFAULT_BASELINE_METHODS

# Fixed settings (reported in the hyper dicts where they matter).
NLM_PATCH_SIZE = 5
NLM_PATCH_DISTANCE = 6
BM3D_PROFILE = "np"
BM3D_PROFILES: tuple[str, ...] = ("np", "lc", "classic")
BM3D_MIN_SIZE = 8

# Grids. Gaussian blur in pixels; the rest as multiples of the noise scale σ̂.
GAUSSIAN_SIGMAS: tuple[float, ...] = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0, 2.8)
TV_MULTIPLIERS: tuple[float, ...] = (0.25, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0)
NLM_MULTIPLIERS: tuple[float, ...] = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0)
WAVELET_MULTIPLIERS: tuple[float, ...] = (0.5, 0.7, 1.0, 1.4, 2.0)
WAVELET_MODES: tuple[str, ...] = ("soft", "hard")
WAVELET_FAMILIES: tuple[str, ...] = ("db1", "db2", "sym4")
BM3D_MULTIPLIERS: tuple[float, ...] = (0.5, 0.7, 1.0, 1.4, 2.0)

_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "median": (),
    "gaussian": ("sigma",),
    "tv": ("weight",),
    "nlmeans": ("h",),
    "wavelet": ("sigma",),
    "bm3d": ("sigma_psd",),
}
_MIN_SCALE = 1e-3  # below this σ̂ says "no measurable noise"
_MAX_CHUNK = 32  # images per task: small enough for a live progress bar and balance


# --------------------------------------------------------------------------- checks


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown denoising method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "bm3d" and not package_installed("bm3d"):
        raise ValueError(BM3D_MISSING)


def _check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer (got {workers!r})")
    return int(workers)


def _as_images(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape (N, H, W, C); got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be float in [0, 1] (got dtype {x.dtype}; divide uint8 images by 255)")
    return x


def _check_pair(noisy: np.ndarray, clean: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    noisy = _as_images(noisy, f"noisy_{what}")
    clean = _as_images(clean, f"clean_{what}")
    if noisy.shape != clean.shape:
        raise ValueError(f"noisy_{what} and clean_{what} differ in shape: {noisy.shape} vs {clean.shape}")
    if len(noisy) == 0:
        raise ValueError(f"no {what} images given")
    return noisy, clean


# ----------------------------------------------------------------- single images


def _bm3d_profile(name: str) -> Any:
    """A bm3d profile object: ``"np"`` (the package's default), ``"lc"`` (its low-complexity
    profile) or ``"classic"`` (``"np"`` with ``nf = 0``: the package's conventional mode,
    which skips the exact correlated-noise variances — about 30× faster, not the default)."""
    import bm3d

    if name not in BM3D_PROFILES:
        raise ValueError(f"unknown BM3D profile {name!r}; choose one of {', '.join(BM3D_PROFILES)}")
    profile = bm3d.BM3DProfileLC() if name == "lc" else bm3d.BM3DProfile()
    if name == "classic":
        profile.nf = 0
    profile.num_threads = 1  # multi-threaded aggregation is not bit-reproducible
    return profile


def _bm3d_image(img: np.ndarray, hyper: dict) -> np.ndarray:
    import bm3d

    sigma = float(hyper["sigma_psd"])
    profile = _bm3d_profile(str(hyper.get("profile", BM3D_PROFILE)))
    channels = img.shape[-1]
    if channels == 3:
        # CBM3D normalises each opponent channel by its range; a constant channel
        # (e.g. a grey image stored as RGB) would divide by zero, so fall back to
        # per-channel BM3D there.
        opp = img.reshape(-1, 3) @ np.array([[1 / 3, 1 / 3, 1 / 3], [0.5, 0, -0.5], [0.25, -0.5, 0.25]]).T
        if np.all(np.ptp(opp, axis=0) > 1e-6):
            return np.asarray(bm3d.bm3d_rgb(img, sigma, profile=profile, colorspace="opp"))
    out = np.empty_like(img)
    for c in range(channels):
        out[..., c] = bm3d.bm3d(img[..., c], sigma, profile=profile)
    return out


def _denoise_image(method: str, img: np.ndarray, hyper: dict) -> np.ndarray:
    """Denoise one float64 image (H, W, C); the result is not yet clipped."""
    from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

    if method == "median":
        return ndimage.median_filter(img, size=(3, 3, 1), mode="reflect")
    if method == "gaussian":
        s = float(hyper["sigma"])
        return ndimage.gaussian_filter(img, sigma=(s, s, 0), mode="reflect")
    if method == "tv":
        return denoise_tv_chambolle(img, weight=float(hyper["weight"]), channel_axis=-1)
    if method == "nlmeans":
        return denoise_nl_means(
            img,
            h=float(hyper["h"]),
            patch_size=int(hyper.get("patch_size", NLM_PATCH_SIZE)),
            patch_distance=int(hyper.get("patch_distance", NLM_PATCH_DISTANCE)),
            fast_mode=True,
            sigma=0.0,
            channel_axis=-1,
        )
    if method == "wavelet":
        return denoise_wavelet(
            img,
            sigma=float(hyper["sigma"]),
            wavelet=str(hyper.get("wavelet", "db1")),
            mode=str(hyper.get("mode", "soft")),
            method="BayesShrink",
            rescale_sigma=True,
            channel_axis=-1,
        )
    if method == "bm3d":
        return _bm3d_image(img, hyper)
    raise AssertionError(method)  # unreachable: checked by callers


def _denoise_chunk(method: str, images: np.ndarray, hyper: dict) -> np.ndarray:
    """Worker task: denoise a chunk of images, float32 clipped to [0, 1]."""
    out = np.empty(images.shape, np.float32)
    for i, img in enumerate(images):
        den = _denoise_image(method, img.astype(np.float64), hyper)
        out[i] = np.clip(np.reshape(den, img.shape), 0.0, 1.0)
    return out


# -------------------------------------------------------------------- execution


def _chunks(n: int, workers: int) -> list[slice]:
    size = max(1, min(_MAX_CHUNK, math.ceil(n / (8 * workers))))
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _run_tasks(tasks: list[tuple[str, np.ndarray, dict]], workers: int, desc: str, progress: bool) -> list[np.ndarray]:
    """Run ``_denoise_chunk`` on every task, in order, in-process or over processes."""
    total = sum(len(t[1]) for t in tasks)
    bar = tqdm(total=total, desc=desc, unit="img", leave=False, disable=None if progress else True)
    results: list[np.ndarray] = []
    with bar:
        if workers == 1 or len(tasks) == 1:
            for task in tasks:
                results.append(_denoise_chunk(*task))
                bar.update(len(task[1]))
        else:
            from joblib import Parallel, delayed

            parallel = Parallel(n_jobs=workers, backend="loky", return_as="generator")
            for res in parallel(delayed(_denoise_chunk)(*task) for task in tasks):
                results.append(res)
                bar.update(len(res))
    return results


def _warm_up(workers: int) -> None:
    """Start the worker processes (and their imports) so that timings exclude it."""
    if workers > 1:
        tiny = np.zeros((1, 3, 3, 1), np.float32)
        _run_tasks([("median", tiny, {})] * workers, workers, "start workers", progress=False)


def _denoise_many(
    method: str, noisy: np.ndarray, hypers: list[dict], workers: int, desc: str, progress: bool
) -> list[np.ndarray]:
    """Denoise ``noisy`` once per hyper dict; one float32 array per dict."""
    slices = _chunks(len(noisy), workers)
    tasks = [(method, np.ascontiguousarray(noisy[s]), h) for h in hypers for s in slices]
    results = _run_tasks(tasks, workers, desc, progress)
    k = len(slices)
    if k == 0:
        return [np.empty(noisy.shape, np.float32) for _ in hypers]
    return [np.concatenate(results[j * k : (j + 1) * k]) for j in range(len(hypers))]


def _check_hyper(method: str, hyper: dict, shape: tuple[int, ...]) -> None:
    missing = [k for k in _REQUIRED_KEYS[method] if k not in hyper]
    if missing:
        raise ValueError(f"hyper for {method!r} lacks {', '.join(missing)} (got {hyper!r}); see tune()")
    if method == "bm3d" and min(shape[1:3]) < BM3D_MIN_SIZE:
        raise ValueError(f"bm3d needs images of at least {BM3D_MIN_SIZE}×{BM3D_MIN_SIZE} pixels; got {shape[1:3]}")
    if method == "bm3d" and hyper.get("profile", BM3D_PROFILE) not in BM3D_PROFILES:
        raise ValueError(f"unknown BM3D profile {hyper['profile']!r}; choose one of {', '.join(BM3D_PROFILES)}")


def _denoise(method: str, noisy: np.ndarray, hyper: dict, workers: int, progress: bool) -> np.ndarray:
    _check_method(method)
    workers = _check_workers(workers)
    noisy = _as_images(noisy, "noisy")
    _check_hyper(method, hyper, noisy.shape)
    return _denoise_many(method, noisy, [hyper], workers, method, progress)[0]


def denoise(method: str, noisy: np.ndarray, hyper: dict, *, workers: int = 1) -> np.ndarray:
    """Denoise images ``noisy`` (N, H, W, C), float in [0, 1], with ``method`` and ``hyper``.

    ``hyper`` is what :func:`tune` returns (``{}`` for median). Returns float32 of the
    same shape, clipped to [0, 1]; identical bytes for any ``workers`` (processes).
    """
    return _denoise(method, noisy, hyper, workers, progress=True)


# ----------------------------------------------------------------------- tuning


def noise_scale(noisy: np.ndarray) -> float:
    """σ̂: mean over images of skimage's wavelet-MAD noise estimate (channels averaged)."""
    from skimage.restoration import estimate_sigma

    noisy = _as_images(noisy, "noisy")
    sigmas = [estimate_sigma(img.astype(np.float64), channel_axis=-1, average_sigmas=True) for img in noisy]
    return float(np.mean(sigmas)) if sigmas else 0.0


def _r(x: float) -> float:
    return float(f"{x:.3g}")


def _sigma_candidates(multipliers: Sequence[float], scale: float, level: float) -> list[float]:
    values = [_r(m * scale) for m in multipliers]
    if 0 < level <= 1 and all(abs(level - v) > 0.1 * v for v in values):
        values.append(_r(level))
    return sorted(set(values))


def grid(method: str, noisy_val: np.ndarray, level: float) -> list[dict]:
    """The candidate hyper dicts :func:`tune` tries for ``method``, in order."""
    _check_method(method)
    if method == "median":
        return [{}]
    if method == "gaussian":
        return [{"sigma": s} for s in GAUSSIAN_SIGMAS]
    scale = noise_scale(noisy_val)
    if scale < _MIN_SCALE:
        scale = level if 0 < level <= 1 else _MIN_SCALE
    if method == "tv":
        return [{"weight": _r(m * scale)} for m in TV_MULTIPLIERS]
    if method == "nlmeans":
        return [
            {"h": _r(m * scale), "patch_size": NLM_PATCH_SIZE, "patch_distance": NLM_PATCH_DISTANCE}
            for m in NLM_MULTIPLIERS
        ]
    if method == "wavelet":
        return [
            {"sigma": s, "mode": mode, "wavelet": w}
            for w in WAVELET_FAMILIES
            for mode in WAVELET_MODES
            for s in _sigma_candidates(WAVELET_MULTIPLIERS, scale, level)
        ]
    return [{"sigma_psd": s, "profile": BM3D_PROFILE} for s in _sigma_candidates(BM3D_MULTIPLIERS, scale, level)]


def _tune(
    method: str, noisy_val: np.ndarray, clean_val: np.ndarray, level: float, workers: int, progress: bool
) -> dict:
    _check_method(method)
    workers = _check_workers(workers)
    noisy_val, clean_val = _check_pair(noisy_val, clean_val, "val")
    candidates = grid(method, noisy_val, level)
    if len(candidates) == 1:
        return dict(candidates[0])
    _check_hyper(method, candidates[0], noisy_val.shape)
    outputs = _denoise_many(method, noisy_val, candidates, workers, f"tune {method}", progress)
    target = clean_val.astype(np.float32)
    scores = [psnr_ssim(out, target)[0] for out in outputs]
    return dict(candidates[int(np.argmax(scores))])  # argmax: first of equal scores


def tune(method: str, noisy_val: np.ndarray, clean_val: np.ndarray, level: float, workers: int = 1) -> dict:
    """Choose ``method``'s hyperparameters by mean PSNR on a validation subset.

    Tries every dict of :func:`grid` (built from ``level`` and the noise measured in
    ``noisy_val``) and returns the best, e.g. ``{"sigma": 1.0}``; ``{}`` for median.
    """
    return _tune(method, noisy_val, clean_val, level, workers, progress=True)


# ---------------------------------------------------------------------- the lot


def run_baselines(
    noisy_val: np.ndarray,
    clean_val: np.ndarray,
    noisy_test: np.ndarray,
    clean_test: np.ndarray,
    level: float,
    methods: Sequence[str] = DEFAULT_METHODS,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, dict]:
    """Tune each method on validation, then denoise and score the test images.

    Returns ``{method: {"psnr", "ssim", "hyper", "seconds", "tune_seconds"}}``: mean
    PSNR/SSIM of the denoised test images against ``clean_test`` (as
    :func:`cae.evaluate.psnr_ssim`), the chosen hyperparameters, the wall-clock seconds
    spent denoising the test images and those spent tuning (worker start-up excluded).
    """
    for m in methods:
        _check_method(m)
    workers = _check_workers(workers)
    noisy_val, clean_val = _check_pair(noisy_val, clean_val, "val")
    noisy_test, clean_test = _check_pair(noisy_test, clean_test, "test")
    target = clean_test.astype(np.float32)
    _warm_up(workers)
    results: dict[str, dict] = {}
    for method in tqdm(list(methods), desc="baselines", unit="method", disable=None if progress else True):
        t0 = time.perf_counter()
        hyper = _tune(method, noisy_val, clean_val, level, workers, progress)
        t1 = time.perf_counter()
        denoised = _denoise(method, noisy_test, hyper, workers, progress)
        t2 = time.perf_counter()
        psnr, ssim = psnr_ssim(denoised, target)
        results[method] = {
            "psnr": psnr,
            "ssim": ssim,
            "hyper": hyper,
            "seconds": t2 - t1,
            "tune_seconds": t1 - t0,
        }
    return results
