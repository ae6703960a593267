"""Classical baselines: they denoise, tune sensibly, handle colour, and are deterministic.

Tiny synthetic images (bars and blobs on a grey background, 16×16) keep the file fast;
BM3D's reference profile costs about 0.3 s per image whatever its size, so the tests
that only need *a* BM3D (tuning direction, run_baselines) use the package's fast
conventional profile ("classic"), and the reference one is exercised on few images.
BM3D is an optional extra: its tests are skipped where the ``bm3d`` package is missing.
"""

import sys

import numpy as np
import pytest

from cae import baselines as B
from cae.config import package_installed
from cae.evaluate import psnr_ssim

needs_bm3d = pytest.mark.skipif(not package_installed("bm3d"), reason="bm3d is optional: pip install -e '.[bm3d]'")
# Every method, BM3D's tests skipped where its package is missing.
ALL = [pytest.param(m, marks=needs_bm3d) if m == "bm3d" else m for m in B.METHODS]
INSTALLED = [m for m in B.METHODS if m != "bm3d" or package_installed("bm3d")]

SIZE = 16
NOISE = 0.2


def shapes(n: int, channels: int = 1, seed: int = 0, size: int = SIZE) -> np.ndarray:
    """Smooth piecewise images: a bright bar (horizontal or vertical) plus a Gaussian blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = np.empty((n, size, size, channels), np.float32)
    for i in range(n):
        for c in range(channels):
            img = np.full((size, size), 0.25)
            a, b = sorted(rng.uniform(0.1, 0.9, 2))
            lo, hi = int(a * size), int(b * size) + 2
            if rng.random() < 0.5:
                img[:, lo:hi] = 0.6
            else:
                img[lo:hi, :] = 0.6
            cx, cy = rng.uniform(0.25, 0.75, 2)
            img += 0.2 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)
            out[i, ..., c] = img
    return out


def add_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(clean.shape)
    return np.clip(clean + sigma * noise, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    val_clean = shapes(6, seed=5)
    test_clean = shapes(10, seed=0)
    return {
        "val_clean": val_clean,
        "val_noisy": add_noise(val_clean, NOISE, 2),
        "test_clean": test_clean,
        "test_noisy": add_noise(test_clean, NOISE, 1),
    }


@pytest.fixture(scope="module")
def tuned(data):
    """Every method tuned on the validation images and applied to the test images."""
    out = {}
    for method in INSTALLED:
        hyper = B.tune(method, data["val_noisy"], data["val_clean"], NOISE, workers=2)
        out[method] = (hyper, B.denoise(method, data["test_noisy"], hyper))
    return out


def test_methods_are_the_six_named():
    assert B.METHODS == ("median", "gaussian", "tv", "nlmeans", "wavelet", "bm3d")


@pytest.mark.parametrize("method", ALL)
def test_every_method_clearly_improves_psnr(data, tuned, method):
    noisy_psnr = psnr_ssim(data["test_noisy"], data["test_clean"])[0]
    psnr, ssim = psnr_ssim(tuned[method][1], data["test_clean"])
    assert psnr > noisy_psnr + 3.0, (method, psnr, noisy_psnr)
    assert ssim > psnr_ssim(data["test_noisy"], data["test_clean"])[1]


@pytest.mark.parametrize("method", ALL)
def test_output_shape_dtype_range(data, tuned, method):
    out = tuned[method][1]
    assert out.shape == data["test_noisy"].shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("method", ALL)
def test_tuned_values_come_from_the_grid(data, tuned, method):
    hyper = tuned[method][0]
    assert hyper in B.grid(method, data["val_noisy"], NOISE)
    if method == "median":
        assert hyper == {}


@needs_bm3d
def test_bm3d_grid_brackets_the_noise_and_is_the_reference_profile(data):
    g = B.grid("bm3d", data["val_noisy"], NOISE)
    sigmas = [h["sigma_psd"] for h in g]
    assert min(sigmas) < NOISE < max(sigmas)
    assert {h["profile"] for h in g} == {"np"}


@pytest.mark.parametrize(
    "method, key", [("gaussian", "sigma"), ("tv", "weight"), pytest.param("bm3d", "sigma_psd", marks=needs_bm3d)]
)
def test_more_noise_chooses_stronger_smoothing(monkeypatch, method, key):
    monkeypatch.setattr(B, "BM3D_PROFILE", "classic")  # the fast variant; same grid logic
    clean = shapes(8, seed=3)
    low = B.tune(method, add_noise(clean, 0.05, 4), clean, 0.05)
    high = B.tune(method, add_noise(clean, 0.3, 4), clean, 0.3)
    assert high[key] > low[key], (low, high)


def test_noise_scale_tracks_the_noise():
    clean = shapes(8, seed=3)
    s = [B.noise_scale(add_noise(clean, f, 4)) for f in (0.05, 0.1, 0.2)]
    assert s[0] < s[1] < s[2]
    assert s[2] == pytest.approx(0.2, rel=0.25)


# A middling setting per method, for tests that need no tuning.
FIXED = {
    "median": {},
    "gaussian": {"sigma": 1.0},
    "tv": {"weight": 0.12},
    "nlmeans": {"h": 0.15},
    "wavelet": {"sigma": 0.2, "mode": "soft", "wavelet": "db1"},
    "bm3d": {"sigma_psd": 0.2},
}


@pytest.mark.parametrize("method", ALL)
def test_colour_images_work(method):
    clean = shapes(2, channels=3, seed=7)
    noisy = add_noise(clean, NOISE, 8)
    out = B.denoise(method, noisy, FIXED[method])
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert psnr_ssim(out, clean)[0] > psnr_ssim(noisy, clean)[0] + 2.0


@needs_bm3d
def test_bm3d_on_grey_rgb_falls_back_to_per_channel():
    # identical channels make CBM3D's chroma channels constant (it would divide by 0)
    grey = add_noise(shapes(1, seed=9), NOISE, 10)
    rgb = np.repeat(grey, 3, axis=-1)
    out = B.denoise("bm3d", rgb, FIXED["bm3d"])
    assert np.all(np.isfinite(out))
    single = B.denoise("bm3d", grey, FIXED["bm3d"])
    for c in range(3):
        np.testing.assert_array_equal(out[..., c : c + 1], single)


@pytest.mark.parametrize("method", ALL)
def test_two_workers_give_identical_bytes(method):
    noisy = add_noise(shapes(6 if method == "bm3d" else 24, seed=11), NOISE, 12)
    one = B.denoise(method, noisy, FIXED[method], workers=1)
    two = B.denoise(method, noisy, FIXED[method], workers=2)
    assert one.tobytes() == two.tobytes()


def test_tuning_with_two_workers_matches_one(data):
    args = (data["val_noisy"], data["val_clean"], NOISE)
    assert B.tune("tv", *args, workers=2) == B.tune("tv", *args, workers=1)


def test_same_inputs_same_outputs(data):
    a = B.denoise("nlmeans", data["test_noisy"], FIXED["nlmeans"])
    b = B.denoise("nlmeans", data["test_noisy"].copy(), FIXED["nlmeans"])
    assert a.tobytes() == b.tobytes()


def test_unknown_method_is_named_with_the_valid_ones(data):
    for call in (
        lambda: B.denoise("bilateral", data["test_noisy"], {}),
        lambda: B.tune("bilateral", data["val_noisy"], data["val_clean"], NOISE),
        lambda: B.run_baselines(
            data["val_noisy"],
            data["val_clean"],
            data["test_noisy"],
            data["test_clean"],
            NOISE,
            methods=("median", "bilateral"),
            progress=False,
        ),
    ):
        with pytest.raises(ValueError, match=r"'bilateral'.*median, gaussian, tv, nlmeans, wavelet, bm3d"):
            call()


def test_bad_inputs_are_rejected(data):
    with pytest.raises(ValueError, match="lacks sigma"):
        B.denoise("gaussian", data["test_noisy"], {})
    with pytest.raises(ValueError, match="divide uint8"):
        B.denoise("median", np.zeros((1, 8, 8, 1), np.uint8), {})
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        B.denoise("median", np.zeros((8, 8), np.float32), {})
    with pytest.raises(ValueError, match="workers"):
        B.denoise("median", data["test_noisy"], {}, workers=0)


@needs_bm3d
def test_bad_bm3d_inputs_are_rejected(data):
    with pytest.raises(ValueError, match="at least 8"):
        B.denoise("bm3d", np.zeros((1, 6, 6, 1), np.float32), {"sigma_psd": 0.1})
    with pytest.raises(ValueError, match="unknown BM3D profile"):
        B.denoise("bm3d", data["test_noisy"], {"sigma_psd": 0.1, "profile": "fastest"})


def test_bm3d_without_its_package_says_how_to_install_it(monkeypatch, data):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # as if not installed
    pairs = (data["val_noisy"], data["val_clean"], data["test_noisy"], data["test_clean"])
    for call in (
        lambda: B.denoise("bm3d", data["test_noisy"], {"sigma_psd": 0.1}),
        lambda: B.run_baselines(*pairs, NOISE, methods=("bm3d",)),
    ):
        with pytest.raises(ValueError, match=r"pip install -e '\.\[bm3d\]'"):
            call()
    assert list(B.run_baselines(*pairs, NOISE, methods=("median",), progress=False)) == ["median"]


def test_default_methods_are_all_but_bm3d():
    assert B.DEFAULT_METHODS == ("median", "gaussian", "tv", "nlmeans", "wavelet")


@needs_bm3d
def test_run_baselines_reports_every_requested_method(monkeypatch, data):
    monkeypatch.setattr(B, "BM3D_PROFILE", "classic")  # fast; the reference profile is tested above
    res = B.run_baselines(
        data["val_noisy"],
        data["val_clean"],
        data["test_noisy"],
        data["test_clean"],
        NOISE,
        methods=B.METHODS,
        workers=2,
        progress=False,
    )
    assert list(res) == list(B.METHODS)
    for method, r in res.items():
        assert np.isfinite(r["psnr"]) and np.isfinite(r["ssim"]), method
        assert set(B._REQUIRED_KEYS[method]) <= set(r["hyper"]), method
        assert r["seconds"] > 0 and r["tune_seconds"] > 0, method  # each measured around real work
        # the score reported is the score of the test images denoised with the hyperparameters reported
        denoised = B.denoise(method, data["test_noisy"], r["hyper"])
        psnr, ssim = psnr_ssim(denoised, data["test_clean"].astype(np.float32))
        assert (psnr, ssim) == pytest.approx((r["psnr"], r["ssim"])), method
    assert res["bm3d"]["hyper"]["profile"] == "classic"
    subset = B.run_baselines(
        data["val_noisy"],
        data["val_clean"],
        data["test_noisy"],
        data["test_clean"],
        NOISE,
        methods=("tv",),
        progress=False,
    )
    assert list(subset) == ["tv"] and subset["tv"]["psnr"] == pytest.approx(res["tv"]["psnr"])
