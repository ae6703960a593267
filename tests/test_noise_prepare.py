"""Corruption and noisy pairs: the defined formula, seeded, deterministic."""

import numpy as np
import pytest

from cae.config import parse_params
from cae.errors import CaeError
from cae.noise import corrupt, corrupt_mixed, gaussian, noisy_inputs
from cae.prepare import PREPARED_FILES, eval_subset, make_pairs, split_indices, to_float


def _sections(params):
    """What make_pairs / write_pairs take of the params: noise, split, seed."""
    return params.noise, params.split, params.seed


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
    pairs = make_pairs(_raw(), *_sections(params))
    assert tuple(pairs) == PREPARED_FILES
    assert pairs["x_train"].shape == (40, 8, 8, 1) and pairs["x_val"].shape == (10, 8, 8, 1)
    assert pairs["x_test"].shape == (20, 8, 8, 1)
    for split in ("train", "val", "test"):
        assert pairs[f"x_{split}"].dtype == np.uint8
        assert pairs[f"x_{split}_noisy"].dtype == np.float32
        assert pairs[f"x_{split}_noisy"].shape == pairs[f"x_{split}"].shape
        assert len(pairs[f"y_{split}"]) == len(pairs[f"x_{split}"])
    again = make_pairs(_raw(), *_sections(params))
    for name in PREPARED_FILES:
        assert pairs[name].tobytes() == again[name].tobytes(), name
    other = make_pairs(_raw(), *_sections(parse_params({"split": {"val_fraction": 0.2}, "seed": 12})))
    assert pairs["x_test_noisy"].tobytes() != other["x_test_noisy"].tobytes()
    # the test set itself is never shuffled or subset
    np.testing.assert_array_equal(pairs["x_test"], _raw()["x_test"])


@pytest.mark.parametrize("kind", ["gaussian", "salt_pepper", "speckle", "poisson", "masking"])
def test_every_kind_is_seeded_in_range_and_grows_with_level(kind):
    x = np.random.default_rng(0).random((6, 12, 12, 1), dtype=np.float32)
    a = corrupt(x, kind, 0.3, np.random.default_rng(5))
    b = corrupt(x, kind, 0.3, np.random.default_rng(5))
    assert a.dtype == np.float32 and a.shape == x.shape
    assert a.tobytes() == b.tobytes()
    assert a.min() >= 0 and a.max() <= 1
    errs = [np.abs(corrupt(x, kind, f, np.random.default_rng(5)) - x).mean() for f in (0.0, 0.1, 0.5)]
    assert errs[0] == 0 and errs[0] < errs[1] < errs[2]


def test_salt_pepper_and_masking_hit_the_requested_fraction():
    x = np.full((20, 32, 32, 3), 0.5, np.float32)
    sp = corrupt(x, "salt_pepper", 0.1, np.random.default_rng(0))
    changed = (sp != 0.5).any(axis=-1)
    assert abs(changed.mean() - 0.1) < 0.01
    assert set(np.unique(sp[sp != 0.5])) == {0.0, 1.0}
    assert ((sp == 0) | (sp == 0.5) | (sp == 1)).all() and (sp[..., 0] == sp[..., 2]).all()  # same pixel, all channels
    masked = corrupt(x, "masking", 0.25, np.random.default_rng(0), block=4)
    dropped = masked[..., 0] == 0
    assert abs(dropped.mean() - 0.25) < 0.03
    blocks = dropped.reshape(20, 8, 4, 8, 4)  # whole 4×4 blocks drop together
    assert (blocks.all(axis=(2, 4)) == blocks.any(axis=(2, 4))).all()


def test_poisson_noise_std_at_white_is_the_factor():
    x = np.ones((50, 16, 16, 1), np.float32)
    noisy = corrupt(x, "poisson", 0.1, np.random.default_rng(0))
    unclipped_std = np.sqrt(((noisy - 1) ** 2)[noisy < 1].sum() * 2 / noisy.size)  # clip folds half the spread
    assert 0.07 < unclipped_std < 0.13


def test_mixed_levels_use_every_level():
    x = np.full((300, 4, 4, 1), 0.5, np.float32)
    noisy = corrupt_mixed(x, "gaussian", [0.0, 0.5], np.random.default_rng(0))
    untouched = (noisy == 0.5).all(axis=(1, 2, 3))
    assert 0.35 < untouched.mean() < 0.65  # about half the images drew level 0


def test_prepared_test_levels_and_headline():
    params = parse_params({"noise": {"factor": [0.3, 0.1], "eval_levels": [0.5, 0.3]}})
    pairs = make_pairs(_raw(), *_sections(params))
    np.testing.assert_allclose(pairs["test_levels"], [0.3, 0.5])  # headline (first factor) + eval levels
    assert pairs["x_test_levels"].shape == (2, 20, 8, 8, 1)
    assert params.noise.test_level == 0.3
    headline = np.abs(pairs["x_test_noisy"] - to_float(pairs["x_test"])).mean()
    at_03 = np.abs(pairs["x_test_levels"][0] - to_float(pairs["x_test"])).mean()
    assert headline == pytest.approx(at_03, rel=0.15)


def test_eval_subset_is_seeded_sorted_and_bounded():
    a = eval_subset(100, 10, seed=1)
    assert len(a) == 10 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(a, eval_subset(100, 10, seed=1))
    np.testing.assert_array_equal(eval_subset(5, 10, seed=1), np.arange(5))


@pytest.mark.parametrize("kind", ["gaussian", "speckle", "poisson", "salt_pepper", "masking"])
@pytest.mark.parametrize("levels", [[0.3], [0.1, 0.5]])
def test_corrupting_in_chunks_gives_the_same_bytes(kind, levels):
    from cae.noise import corrupt_into

    x = np.random.default_rng(0).random((23, 6, 6, 3), dtype=np.float32)
    whole = corrupt_mixed(x, kind, levels, np.random.default_rng(5), 2)
    chunked = np.empty_like(whole)
    corrupt_into(chunked, lambda idx: x[idx], len(x), kind, levels, np.random.default_rng(5), 2, chunk=4)
    assert chunked.tobytes() == whole.tobytes()


def test_write_pairs_streams_the_same_bytes_as_make_pairs(tmp_path, monkeypatch):
    """Written a few images at a time, from raw arrays read on demand, to the same bytes."""
    from cae import prepare
    from cae.io import NpyRows

    params = parse_params({"noise": {"factor": [0.2, 0.5], "eval_levels": [0.1]}, "seed": 4})
    raw = _raw()
    expected = make_pairs(raw, *_sections(params))
    for key, a in raw.items():
        np.save(tmp_path / f"{key}.npy", a)
    monkeypatch.setattr(prepare, "chunk_rows", lambda shape: 3)
    rows = {key: NpyRows(tmp_path / f"{key}.npy") for key in raw}
    shapes = prepare.write_pairs(rows, *_sections(params), tmp_path / "prepared")
    assert shapes == {name: a.shape for name, a in expected.items()}
    for name, a in expected.items():
        buf = tmp_path / "expected.npy"
        np.save(buf, a)
        assert (tmp_path / "prepared" / f"{name}.npy").read_bytes() == buf.read_bytes(), name


def test_write_pairs_failing_midway_leaves_nothing(tmp_path, monkeypatch):
    from cae import prepare

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(prepare, "corrupt_into", boom)
    with pytest.raises(CaeError, match="no space left"):
        prepare.write_pairs(_raw(), *_sections(parse_params({})), tmp_path / "prepared")
    assert list(tmp_path.iterdir()) == []


def test_noisy_inputs_draw_train_then_val_from_one_generator_and_leave_zero_alone():
    rng = np.random.default_rng(0)
    train, val = rng.random((4, 6, 6, 1), dtype=np.float32), rng.random((2, 6, 6, 1), dtype=np.float32)
    same = noisy_inputs(train, val, 0.0, np.random.default_rng(7))
    assert same[0] is train and same[1] is val
    noisy_train, noisy_val = noisy_inputs(train, val, 0.3, np.random.default_rng(7))
    expected = np.random.default_rng(7)
    np.testing.assert_array_equal(noisy_train, gaussian(train, 0.3, expected))
    np.testing.assert_array_equal(noisy_val, gaussian(val, 0.3, expected))
    assert not np.array_equal(noisy_train, train)
