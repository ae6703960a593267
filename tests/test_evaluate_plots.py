"""Metrics against known answers, and figures that render and are deterministic."""

import numpy as np
import pytest
from conftest import DENOISER_KEYS
from skimage.metrics import peak_signal_noise_ratio

from cae.evaluate import PSNR_CAP, binary_crossentropy, evaluate_denoiser, psnr_ssim
from cae.plots import denoising_figure, image_rows, reference_figure


def test_psnr_of_a_known_error():
    target = np.zeros((3, 8, 8, 1), np.float32)
    pred = np.full_like(target, 0.1)  # MSE 0.01 → 20 dB
    psnr, ssim = psnr_ssim(pred, target)
    assert psnr == pytest.approx(20.0, abs=1e-4)
    assert ssim < 1


def test_identical_images_cap_psnr_and_give_ssim_one():
    x = np.random.default_rng(0).random((2, 16, 16, 1), dtype=np.float32)
    psnr, ssim = psnr_ssim(x, x)
    assert psnr == PSNR_CAP and ssim == pytest.approx(1.0)


def test_psnr_matches_scikit_image_per_image_mean():
    rng = np.random.default_rng(1)
    t = rng.random((4, 12, 12, 3))
    p = np.clip(t + 0.05 * rng.standard_normal(t.shape), 0, 1)
    expected = np.mean([peak_signal_noise_ratio(t[i], p[i], data_range=1.0) for i in range(4)])
    assert psnr_ssim(p, t)[0] == pytest.approx(expected)


def test_ssim_works_on_images_smaller_than_the_default_window():
    x = np.random.default_rng(2).random((2, 5, 5, 1))
    assert psnr_ssim(x, x)[1] == pytest.approx(1.0)


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr_ssim(np.zeros((1, 4, 4, 1)), np.zeros((1, 4, 4, 3)))


def test_binary_crossentropy_known_values():
    t = np.array([1.0, 0.0])
    assert binary_crossentropy(np.array([0.5, 0.5]), t) == pytest.approx(np.log(2))
    assert binary_crossentropy(t, t) == pytest.approx(-np.log(1 - 1e-7), rel=1e-3)


def test_evaluate_denoiser_keys_and_a_perfect_denoiser():
    rng = np.random.default_rng(3)
    clean = (rng.random((5, 8, 8, 1)) > 0.5).astype(np.float32)
    noisy = np.clip(clean + 0.3 * rng.standard_normal(clean.shape), 0, 1).astype(np.float32)
    lookup = {noisy.tobytes(): clean, clean.tobytes(): clean}
    metrics = evaluate_denoiser(lambda x: lookup[x.tobytes()], clean, noisy)
    assert set(metrics) == DENOISER_KEYS
    assert metrics["denoise_psnr"] == PSNR_CAP and metrics["denoise_ssim"] == pytest.approx(1.0)
    assert metrics["noisy_psnr"] < 20 and metrics["test_images"] == 5


def test_figures_render_deterministically(tmp_path):
    rng = np.random.default_rng(4)
    clean = rng.random((10, 28, 28, 1), dtype=np.float32)
    reference_figure(clean, clean[::-1], tmp_path / "a.png")
    reference_figure(clean, clean[::-1], tmp_path / "b.png")
    a = (tmp_path / "a.png").read_bytes()
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and a == (tmp_path / "b.png").read_bytes()
    denoising_figure(clean, clean, clean, tmp_path / "d.png")
    colour = rng.random((3, 16, 16, 3), dtype=np.float32)
    image_rows([colour], ["rgb"], tmp_path / "c.png")
    import matplotlib.image as mpimg

    assert mpimg.imread(tmp_path / "d.png").shape[0] > mpimg.imread(tmp_path / "a.png").shape[0]
    rgb = mpimg.imread(tmp_path / "c.png")
    assert not np.allclose(rgb[..., 0], rgb[..., 1])  # colour is drawn as colour
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png", "d.png"]
