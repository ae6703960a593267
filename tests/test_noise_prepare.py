"""Corruption and noisy pairs: the defined formula, seeded, deterministic."""

import numpy as np
import pytest

from cae.config import parse_params
from cae.errors import CaeError
from cae.noise import corrupt, gaussian
from cae.prepare import PREPARED_FILES, make_pairs, split_indices, to_float


def _raw(n_train=50, n_test=20, seed=3):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 8, 8, 1), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 8, 8, 1), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def test_gaussian_is_the_clipped_formula():
    x = np.linspace(0, 1, 64, dtype=np.float32).reshape(1, 8, 8, 1)
    noisy = gaussian(x, 0.4, np.random.default_rng(7))
    expected = np.clip(x + 0.4 * np.random.default_rng(7).standard_normal(x.shape, dtype=np.float32), 0, 1)
    np.testing.assert_array_equal(noisy, expected)
    assert noisy.dtype == np.float32 and noisy.min() >= 0 and noisy.max() <= 1


def test_factor_zero_is_identity_and_noise_grows_with_factor():
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    np.testing.assert_array_equal(corrupt(x, "gaussian", 0.0, np.random.default_rng(1)), x)
    err = [np.abs(corrupt(x, "gaussian", f, np.random.default_rng(1)) - x).mean() for f in (0.1, 0.4)]
    assert err[0] < err[1]


def test_unknown_kind_rejected():
    with pytest.raises(ValueError, match="unknown noise kind"):
        corrupt(np.zeros((1, 2, 2, 1), np.float32), "pink", 0.1, np.random.default_rng(0))


def test_to_float_range():
    x = np.array([0, 128, 255], dtype=np.uint8)
    np.testing.assert_allclose(to_float(x), [0, 128 / 255, 1])
    assert to_float(x).dtype == np.float32


def test_split_is_seeded_disjoint_and_complete():
    train, val = split_indices(100, 0.1, seed=5)
    assert len(val) == 10 and len(train) == 90
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    again = split_indices(100, 0.1, seed=5)
    np.testing.assert_array_equal(train, again[0])
    assert not np.array_equal(val, split_indices(100, 0.1, seed=6)[1])


def test_split_leaving_nothing_to_train_is_an_error():
    with pytest.raises(CaeError, match="split.val_fraction"):
        split_indices(1, 0.5, seed=0)


def test_make_pairs_shapes_dtypes_and_determinism():
    params = parse_params({"split": {"val_fraction": 0.2}, "seed": 11})
    pairs = make_pairs(_raw(), params)
    assert tuple(pairs) == PREPARED_FILES
    assert pairs["x_train"].shape == (40, 8, 8, 1) and pairs["x_val"].shape == (10, 8, 8, 1)
    assert pairs["x_test"].shape == (20, 8, 8, 1)
    for split in ("train", "val", "test"):
        assert pairs[f"x_{split}"].dtype == np.uint8
        assert pairs[f"x_{split}_noisy"].dtype == np.float32
        assert pairs[f"x_{split}_noisy"].shape == pairs[f"x_{split}"].shape
        assert len(pairs[f"y_{split}"]) == len(pairs[f"x_{split}"])
    again = make_pairs(_raw(), params)
    for name in PREPARED_FILES:
        assert pairs[name].tobytes() == again[name].tobytes(), name
    other = make_pairs(_raw(), parse_params({"split": {"val_fraction": 0.2}, "seed": 12}))
    assert pairs["x_test_noisy"].tobytes() != other["x_test_noisy"].tobytes()
    # the test set itself is never shuffled or subset
    np.testing.assert_array_equal(pairs["x_test"], _raw()["x_test"])
