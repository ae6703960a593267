"""One-class anomaly detection: scores, AUROC, thresholds and F1 against known answers."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from cae.anomaly import (
    auroc,
    average_precision,
    class_images,
    decision_metrics,
    ensemble_scores,
    extremes,
    knn_scores,
    latent_fit,
    latent_scores,
    mse_scores,
    pca_scores,
    roc_points,
    ssim_scores,
    standardise,
    threshold_of,
)
from cae.errors import CaeError
from cae.evaluate import ssim_per_image


def test_auroc_of_perfectly_separated_reversed_and_tied_scores():
    anomalous = np.array([0, 0, 0, 1, 1], bool)
    assert auroc(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), anomalous) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.7, 0.2, 0.1]), anomalous) == 0.0
    assert auroc(np.ones(5), anomalous) == 0.5  # ties count half


def test_auroc_counts_correctly_ordered_pairs():
    # normal 0.1, 0.4; anomalies 0.3, 0.5: pairs (0.3>0.1) (0.3<0.4) (0.5>0.1) (0.5>0.4) → 3/4
    assert auroc(np.array([0.1, 0.4, 0.3, 0.5]), np.array([0, 0, 1, 1], bool)) == pytest.approx(0.75)


def test_average_precision_perfect_and_known():
    anomalous = np.array([0, 0, 1, 1], bool)
    assert average_precision(np.array([0.1, 0.2, 0.8, 0.9]), anomalous) == 1.0
    # ranking: a(0.9) n(0.8) a(0.7): precision 1 at recall .5, 2/3 at recall 1 → (1 + 2/3) / 2
    scores, truth = np.array([0.9, 0.8, 0.7]), np.array([1, 0, 1], bool)
    assert average_precision(scores, truth) == pytest.approx((1 + 2 / 3) / 2)


def test_auroc_needs_both_labels():
    with pytest.raises(CaeError, match="normal class and of at least one other"):
        auroc(np.array([0.1, 0.2]), np.array([1, 1], bool))


def test_threshold_is_mean_plus_k_std_of_training_scores():
    train = np.array([1.0, 2.0, 3.0, 4.0])  # mean 2.5, std sqrt(1.25)
    assert threshold_of(train, 0) == 2.5
    assert threshold_of(train, 2) == pytest.approx(2.5 + 2 * np.sqrt(1.25))


def test_decision_metrics_by_hand():
    # threshold 0.5: flagged = scores > 0.5 → indices 2, 3, 4
    scores = np.array([0.1, 0.4, 0.6, 0.9, 0.7, 0.2])
    truth = np.array([0, 0, 0, 1, 1, 1], bool)
    d = decision_metrics(scores, truth, 0.5)
    # TP = {3, 4} = 2, flagged 3 → precision 2/3; anomalies 3 → recall 2/3; F1 2/3
    assert d == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    d = decision_metrics(scores, truth, 0.65)  # flagged {3, 4}: precision 1, recall 2/3, F1 0.8
    assert d == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8})


def test_decision_metrics_nothing_flagged_or_score_equal_to_threshold():
    truth = np.array([0, 1], bool)
    assert decision_metrics(np.array([0.1, 0.2]), truth, 1.0) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    # a score equal to the threshold is normal: only strictly greater is flagged
    assert decision_metrics(np.array([0.1, 0.5]), truth, 0.5)["recall"] == 0.0


def test_mse_and_ssim_scores_per_image():
    rng = np.random.default_rng(0)
    x = rng.random((3, 12, 12, 1)).astype(np.float32)
    recon = x.copy()
    recon[1] += 0.1
    np.testing.assert_allclose(mse_scores(x, recon), [0, 0.01, 0], atol=1e-7)
    ssim = ssim_scores(x, np.clip(recon, 0, 1))
    assert ssim[0] == pytest.approx(0) and ssim[2] == pytest.approx(0) and ssim[1] > 0
    expected = 1 - structural_similarity(
        x[1].astype(np.float64), np.clip(recon[1], 0, 1).astype(np.float64), data_range=1.0, channel_axis=-1, win_size=7
    )
    assert ssim[1] == pytest.approx(expected)


@pytest.mark.parametrize("shape", [(40, 28, 28, 1), (9, 9, 12, 3), (5, 5, 5, 1), (3, 6, 30, 2)])
def test_ssim_scores_equal_scikit_image_image_by_image(shape):
    rng = np.random.default_rng(4)
    x = rng.random(shape).astype(np.float32)
    recon = np.clip(x + 0.2 * rng.standard_normal(shape), 0, 1).astype(np.float32)
    win = min(7, *shape[1:3])
    win -= 1 - win % 2
    expected = [
        1
        - structural_similarity(
            a.astype(np.float64), b.astype(np.float64), data_range=1.0, channel_axis=-1, win_size=win
        )
        for a, b in zip(x, recon, strict=True)
    ]
    np.testing.assert_allclose(ssim_scores(x, recon), expected, rtol=0, atol=1e-12)
    # chunk by chunk (as for many images) gives the same values
    np.testing.assert_allclose(1 - ssim_per_image(x, recon, chunk=4), expected, rtol=0, atol=1e-12)


def test_latent_distance_is_mahalanobis_per_dimension():
    mean, precision = np.array([2.0, 10.0]), np.diag([1 / 4, 1.0])  # stds 2 and 1
    codes = np.array([[2.0, 10.0], [8.0, 10.0], [2.0, 13.0], [4.0, 11.0]])
    # (Δ/σ)² summed, over 2 dimensions: 0, 3²/2, 3²/2, (1 + 1)/2
    np.testing.assert_allclose(latent_scores(codes, mean, precision), [0, 4.5, 4.5, 1.0])
    rho = 0.9  # correlated dimensions: moving along the correlation costs less than across it
    precision = np.linalg.inv(np.array([[1.0, rho], [rho, 1.0]]))
    along, across = latent_scores(np.array([[1.0, 1.0], [1.0, -1.0]]), np.zeros(2), precision)
    assert along == pytest.approx(2 / (1 + rho) / 2) and across == pytest.approx(2 / (1 - rho) / 2)


def test_latent_fit_estimates_mean_and_precision_even_for_constant_dimensions():
    rng = np.random.default_rng(3)
    codes = rng.standard_normal((4000, 3)) * [1.0, 3.0, 0.0] + [0.0, 5.0, 7.0]  # third dimension constant
    mean, precision = latent_fit(codes.reshape(4000, 1, 3, 1))
    np.testing.assert_allclose(mean, [0, 5, 7], atol=0.1)
    assert np.all(np.isfinite(precision))
    scores = latent_scores(codes, mean, precision)
    assert np.isfinite(scores).all() and scores.mean() > 0


def test_knn_score_is_mean_distance_to_nearest_training_codes_excluding_itself():
    train = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [10.0, 0.0]])
    test = np.array([[0.0, 0.0], [13.0, 4.0]])
    test_scores, train_scores = knn_scores(train, test, k=2)
    # (0, 0): itself at 0 and (1, 0) at 1; (13, 4): (10, 0) at 5 and (1, 0) at sqrt(160)
    np.testing.assert_allclose(test_scores, [0.5, (5 + np.sqrt(160)) / 2])
    # a training code's neighbours are the others: (0, 0) → 1 and 2; (10, 0) → 9 and 10
    np.testing.assert_allclose(train_scores, [1.5, (1 + np.sqrt(5)) / 2, (2 + np.sqrt(5)) / 2, 9.5])


def test_knn_score_caps_k_at_the_other_training_codes():
    train = np.array([[0.0], [2.0]])
    test_scores, train_scores = knn_scores(train, np.array([[5.0]]), k=5)
    np.testing.assert_allclose(test_scores, [3.0])  # k = 1: the nearest of the two
    np.testing.assert_allclose(train_scores, [2.0, 2.0])
    alone_test, alone_train = knn_scores(np.array([[1.0]]), np.array([[4.0]]), k=3)
    np.testing.assert_allclose(alone_test, [3.0])
    np.testing.assert_allclose(alone_train, [0.0])


def test_standardise_and_ensemble_use_training_statistics():
    train = {"a": np.array([1.0, 3.0]), "b": np.array([10.0, 30.0])}  # means 2 / 20, stds 1 / 10
    test = {"a": np.array([4.0]), "b": np.array([0.0])}
    np.testing.assert_allclose(standardise(test["a"], train["a"]), [2.0])
    ens_test, ens_train = ensemble_scores(test, train, ["a", "b"])
    np.testing.assert_allclose(ens_test, [(2.0 + -2.0) / 2])
    np.testing.assert_allclose(ens_train, [-1.0, 1.0])
    np.testing.assert_allclose(ensemble_scores(test, train, ["a"])[0], [2.0])


def test_pca_peer_separates_a_subspace_from_the_rest():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.standard_normal((64, 64)))[0]
    normal = rng.standard_normal((200, 3)) @ basis[:, :3].T  # lives in 3 dimensions
    other = rng.standard_normal((100, 3)) @ basis[:, 3:6].T  # orthogonal to them
    test = np.concatenate([normal[:50] + 0, other]).reshape(-1, 8, 8, 1)
    test_scores, train_scores = pca_scores(normal[50:].reshape(-1, 8, 8, 1), test, dims=3)
    np.testing.assert_allclose(train_scores, 0, atol=1e-12)
    np.testing.assert_allclose(test_scores[:50], 0, atol=1e-12)  # in the subspace: reconstructed exactly
    assert auroc(test_scores, np.arange(150) >= 50) == 1.0
    assert pca_scores(normal, test, dims=1000)[0].shape == (150,)  # dims capped at what the data allows


def test_pca_peer_is_the_reconstruction_error_from_the_components():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(5)
    train, test = rng.random((120, 6, 6, 1)), rng.random((40, 6, 6, 1))
    pca = PCA(n_components=5, svd_solver="full").fit(train.reshape(120, -1))
    flat = test.reshape(40, -1)
    expected = np.mean((flat - pca.inverse_transform(pca.transform(flat))) ** 2, axis=1)
    np.testing.assert_allclose(pca_scores(train, test, dims=5)[0], expected, rtol=1e-9)


def test_roc_points_are_thinned_and_keep_the_ends():
    rng = np.random.default_rng(2)
    truth = rng.random(5000) < 0.9
    scores = truth + rng.standard_normal(5000)
    fpr, tpr = roc_points(scores, truth, 50)
    assert len(fpr) <= 52 and (fpr[0], tpr[0]) == (0, 0) and (fpr[-1], tpr[-1]) == (1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(scores, truth), abs=0.01)


def test_extremes_most_and_least_anomalous_ties_by_index():
    most, least = extremes(np.array([0.5, 0.9, 0.1, 0.9, 0.1]), 2)
    assert most.tolist() == [1, 3] and least.tolist() == [2, 4]


def test_class_images_and_too_few_names_the_class():
    x, y = np.arange(6)[:, None], np.array([0, 1, 0, 1, 1, 2])
    assert class_images(x, y, 1, min_images=3).ravel().tolist() == [1, 3, 4]
    with pytest.raises(CaeError) as info:
        class_images(x, y, 2, min_images=3)
    message = str(info.value)
    assert message.startswith("anomaly class 2: 1 training images, at least 3 needed")
    assert "classes in the data: 0, 1, 2" in message and "anomaly.min_images" in message
    with pytest.raises(CaeError, match="anomaly class 7: 0 training images"):
        class_images(x, y, 7, min_images=1)
