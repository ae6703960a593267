"""The latent code: probes with known answers, the PCA peer, sampling, interpolation,
the variational code and the decoder half; params errors of the `latent` section."""

import numpy as np
import pytest

from cae import runtime
from cae.config import ModelParams, parse_params
from cae.errors import CaeError, ParamsError
from cae.latent import (
    code_metrics,
    fit_density,
    interpolate,
    interpolation_pairs,
    knn_accuracy,
    linear_accuracy,
    pca_codes,
    project_2d,
    retrieval_precision,
    sample_density,
    standardised,
)
from cae.model import (
    Reparameterise,
    build_autoencoder,
    compile_autoencoder,
    decoder_of,
    encoder_of,
    load_model,
    save_model,
)


def two_clusters(n, dims=4, seed=0, gap=10.0):
    """``n`` codes in two tight clusters ``gap`` apart, labelled by cluster (alternating)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    return rng.normal(0, 0.1, (n, dims)) + gap * labels[:, None], labels


# --- probes with known answers -------------------------------------------------------


def test_separable_codes_score_one_everywhere():
    train, y_train = two_clusters(40)
    test, y_test = two_clusters(30, seed=1)  # 14 others of its class: more than 10
    assert knn_accuracy(train, y_train, test, y_test) == 1.0
    assert linear_accuracy(train, y_train, test, y_test) == 1.0
    assert retrieval_precision(test, y_test) == 1.0
    for standardise in (False, True):
        metrics = code_metrics(train, y_train, test, y_test, standardise, prefix="pca_")
        assert metrics == {"pca_knn_acc": 1.0, "pca_linear_acc": 1.0, "pca_retrieval_p10": 1.0}


def test_retrieval_counts_the_k_nearest_others_not_the_query():
    codes = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [12.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert retrieval_precision(codes, labels, k=2) == 1.0  # the two others of its group
    assert retrieval_precision(codes, labels, k=3) == pytest.approx(2 / 3)  # and one of the other group
    assert retrieval_precision(codes, labels, k=5) == pytest.approx(2 / 5)  # everything else
    # identical codes: the query is excluded even when a twin comes first
    assert retrieval_precision(np.zeros((4, 2)), np.array([0, 0, 1, 1]), k=3) == pytest.approx(1 / 3)


def test_knn_votes_five_neighbours_and_identical_codes_give_the_majority():
    train = np.array([[0.0]] * 3 + [[1.0]] * 2 + [[100.0]] * 5)
    y_train = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    # five nearest of 0.4: three 0s and two 1s → 0; of 99: five 2s
    assert knn_accuracy(train, y_train, np.array([[0.4], [99.0]]), np.array([0, 2])) == 1.0
    assert knn_accuracy(train, y_train, np.array([[0.4], [99.0]]), np.array([1, 2])) == 0.5
    # codes that say nothing: the probe falls back on the majority class of the training labels
    y_train = np.array([0] * 7 + [1] * 3)
    y_test = np.array([0] * 6 + [1] * 4)
    assert linear_accuracy(np.zeros((10, 3)), y_train, np.zeros((10, 3)), y_test) == pytest.approx(0.6)


def test_standardising_lets_a_small_informative_dimension_count():
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 2
    codes = np.column_stack([0.01 * labels, 100 * rng.random(400)])  # signal tiny, noise huge
    train, test, y_train, y_test = codes[:300], codes[300:], labels[:300], labels[300:]
    raw = code_metrics(train, y_train, test, y_test, standardise=False)
    scaled = code_metrics(train, y_train, test, y_test, standardise=True)
    assert raw["knn_acc"] < 0.75 and raw["retrieval_p10"] < 0.75
    assert scaled["knn_acc"] == 1.0 and scaled["retrieval_p10"] == 1.0
    assert raw["linear_acc"] == scaled["linear_acc"] == 1.0  # the linear probe always standardises
    a, b = standardised(train, test)
    np.testing.assert_allclose(a.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(a.std(axis=0), 1)
    flat_a, _ = standardised(np.ones((3, 2)), np.ones((1, 2)))  # a constant dimension is only centred
    assert np.all(flat_a == 0)


def test_pca_peer_is_fitted_on_the_training_images_alone():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(2, 16))
    train = (rng.normal(size=(50, 2)) @ basis).reshape(50, 4, 4, 1)  # images in a 2-D subspace
    test = (rng.normal(size=(7, 2)) @ basis).reshape(7, 4, 4, 1)
    a, b = pca_codes(train, test, dims=2)
    assert a.shape == (50, 2) and b.shape == (7, 2)
    # two components hold everything: distances between codes are distances between images
    d_codes = np.linalg.norm(b[0] - b[1])
    assert d_codes == pytest.approx(np.linalg.norm(test[0] - test[1]))
    assert pca_codes(train, test, dims=99)[0].shape == (50, 16)  # capped at the image size


@pytest.mark.parametrize("n", [200, 30])  # the eigenvector solver and the full SVD
def test_the_first_components_of_a_wider_pca_are_the_narrower_pca(n):
    """`latent` takes PCA-16's codes from the first 16 of PCA-32's: the same, to rounding."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(n, 6)) @ rng.normal(size=(6, 64)) + 0.1 * rng.normal(size=(n, 64))
    b = rng.normal(size=(9, 64))
    wide, narrow = pca_codes(a, b, dims=8), pca_codes(a, b, dims=4)
    for w, m in zip(wide, narrow, strict=True):
        np.testing.assert_allclose(np.abs(w[:, :4]), np.abs(m), atol=1e-9)  # each component up to its sign


@pytest.mark.parametrize(("n", "solver"), [(200, "covariance_eigh"), (30, "full")])
def test_fit_pca_reconstructs_as_a_full_svd_does(n, solver):
    from sklearn.decomposition import PCA

    from cae.latent import fit_pca

    rng = np.random.default_rng(5)
    a = rng.normal(size=(n, 3)) @ rng.normal(size=(3, 64)) + 0.1 * rng.normal(size=(n, 64))
    fitted = fit_pca(a, 5, 0)
    assert fitted.svd_solver == solver and fitted.n_components == 5
    reference = PCA(n_components=5, svd_solver="full").fit(a)
    np.testing.assert_allclose(
        fitted.inverse_transform(fitted.transform(a)), reference.inverse_transform(reference.transform(a)), atol=1e-9
    )
    assert fit_pca(a[:4], 99, 0).n_components == 4  # capped at what the data allows


def test_projection_to_two_dimensions():
    codes, _ = two_clusters(60, dims=5)
    two, _ = two_clusters(10, dims=2)
    assert np.array_equal(project_2d(two, "tsne"), two)
    for method in ("pca", "tsne"):
        points = project_2d(codes, method)
        assert points.shape == (60, 2) and np.all(np.isfinite(points))
        np.testing.assert_array_equal(points, project_2d(codes, method))  # seeded
    with pytest.raises(ValueError, match="umap"):
        project_2d(codes, "umap")


def test_mixture_samples_lie_near_the_training_codes_and_are_seeded():
    codes, _ = two_clusters(200, dims=3)
    density = fit_density(codes, components=2, covariance="full")
    drawn = sample_density(density, 50, np.random.default_rng(3))
    assert drawn.shape == (50, 3) and drawn.dtype == np.float32
    near = np.minimum(np.linalg.norm(drawn, axis=1), np.linalg.norm(drawn - 10, axis=1))
    assert near.max() < 1.5
    np.testing.assert_array_equal(drawn, sample_density(fit_density(codes, 2, "full"), 50, np.random.default_rng(3)))
    assert not np.array_equal(drawn, sample_density(density, 50, np.random.default_rng(4)))


def test_interpolation_ends_at_both_codes_and_pairs_differ_in_label():
    a, b = np.array([0.0, 2.0]), np.array([4.0, -2.0])
    line = interpolate(a, b, 5)
    assert line.shape == (5, 2)
    np.testing.assert_allclose(line[[0, 2, 4]], [a, (a + b) / 2, b])
    labels = np.array([0, 0, 0, 1, 2, 2])
    pairs = interpolation_pairs(labels, 4, np.random.default_rng(1))
    assert pairs.shape == (4, 2) and all(labels[i] != labels[j] for i, j in pairs)
    np.testing.assert_array_equal(pairs, interpolation_pairs(labels, 4, np.random.default_rng(1)))


# --- the variational code and the decoder half -----------------------------------------


def test_variational_model_adds_a_kl_term_samples_in_training_only_and_loads_safely(tmp_path):
    runtime.make_deterministic(0)
    x = np.random.default_rng(0).random((32, 8, 8, 1)).astype(np.float32)
    losses = {}
    for weight in (0.0, 50.0):
        cfg = ModelParams(filters=[4], latent_dim=3, variational=True, kl_weight=weight)
        model = compile_autoencoder(build_autoencoder(cfg, (8, 8, 1), seed=1), cfg)
        losses[weight] = model.evaluate(x, x, verbose=0)
    assert losses[50.0] > losses[0.0] + 1e-3  # the KL term is in the loss
    layer = model.get_layer("vae_sample")
    assert isinstance(layer, Reparameterise) and layer.weight == pytest.approx(50.0 / 64)
    # inference uses the mean; training draws a new code each call
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))
    assert not np.array_equal(model(x, training=True), model(x, training=True))
    code = encoder_of(model)
    assert code.output.shape[1:] == (3,) and code.layers[-1].name == "enc_latent"
    np.testing.assert_allclose(
        decoder_of(model).predict(code.predict(x, verbose=0), verbose=0),
        model.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )
    save_model(model, tmp_path / "vae.keras")
    loaded = load_model(tmp_path / "vae.keras")  # safe mode: the layer is registered
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_decoder_of_a_plain_dense_code_and_of_a_model_without_one():
    model = build_autoencoder(ModelParams(filters=[4, 4], latent_dim=2), (8, 8, 1))
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype(np.float32)
    decoder = decoder_of(model)
    assert decoder.input.shape[1:] == (2,) and decoder.output.shape[1:] == (8, 8, 1)
    np.testing.assert_allclose(
        decoder.predict(encoder_of(model).predict(x, verbose=0), verbose=0),
        model.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )
    for cfg in (ModelParams(filters=[4]), ModelParams(filters=[4], latent_dim=2, skip=True)):
        with pytest.raises(CaeError, match="no decoder of its code alone"):
            decoder_of(build_autoencoder(cfg, (8, 8, 1)))


# --- params -------------------------------------------------------------------------


def test_latent_defaults_have_their_own_dense_model():
    params = parse_params({})
    assert params.latent.model.latent_dim == 16 and not params.latent.model.variational
    assert params.model.latent_dim is None and params.model.variational is False
    assert params.model.kl_weight == 1.0
    vae = parse_params({"model": {"latent_dim": 8, "variational": True, "kl_weight": 0.5}}).model
    assert vae.variational and vae.kl_weight == 0.5


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"model": {"variational": True}}, "params.yaml: model.variational: needs a dense code: set latent_dim"),
        (
            {"model": {"variational": True, "latent_dim": 4, "skip": True}},
            "params.yaml: model.variational: cannot combine with skip or residual",
        ),
        ({"model": {"variational": "yes please"}}, "params.yaml: model.variational: Input should be a valid boolean"),
        ({"model": {"kl_weight": -1}}, "params.yaml: model.kl_weight: Input should be greater than or equal to 0"),
        ({"latent": {"model": {"latent_dim": None}}}, "params.yaml: latent.model: latent_dim must be a number"),
        (
            {"latent": {"model": {"latent_dim": 4, "residual": True}}},
            "params.yaml: latent.model: skip and residual must be false",
        ),
        (
            {"latent": {"model": {"latent_dim": 4, "variational": True}}},
            "params.yaml: latent.model: variational must be false here",
        ),
        ({"latent": {"model": {"latent_dim": 0}}}, "params.yaml: latent.model.latent_dim: Input should be greater"),
        ({"latent": {"epochs": 0}}, "params.yaml: latent.epochs: Input should be greater than 0"),
        ({"latent": {"batch_size": 2.5}}, "params.yaml: latent.batch_size: Input should be a valid integer"),
        ({"latent": {"standardise": "maybe"}}, "params.yaml: latent.standardise: Input should be a valid boolean"),
        ({"latent": {"noise": -0.1}}, "params.yaml: latent.noise: Input should be greater than or equal to 0"),
        ({"latent": {"noise": "some"}}, "params.yaml: latent.noise: Input should be a valid number"),
        ({"latent": {"projection": "umap"}}, "params.yaml: latent.projection: Input should be 'pca' or 'tsne'"),
        ({"latent": {"plot_points": 0}}, "params.yaml: latent.plot_points: Input should be greater than 0"),
        ({"latent": {"gmm_components": 0}}, "params.yaml: latent.gmm_components: Input should be greater than 0"),
        ({"latent": {"gmm_covariance": "round"}}, "params.yaml: latent.gmm_covariance: Input should be 'full'"),
        ({"latent": {"samples": -3}}, "params.yaml: latent.samples: Input should be greater than 0"),
        ({"latent": {"interpolation_pairs": 0}}, "params.yaml: latent.interpolation_pairs: Input should be greater"),
        ({"latent": {"interpolation_steps": 1}}, "params.yaml: latent.interpolation_steps: Input should be greater"),
        ({"latent": {"knn": 5}}, "params.yaml: latent.knn: unknown key"),
    ],
)
def test_latent_bad_value_is_one_line_naming_the_key(raw, line):
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    assert str(info.value).startswith(line) and len(str(info.value).splitlines()) == 1, str(info.value)
