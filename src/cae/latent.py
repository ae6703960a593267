"""The latent code as a feature and as a generator: probes, the PCA peer, samples.

A code is good as a feature when images of a class lie close together and classes
can be told apart by a simple rule. Three measures, each of the autoencoder's code
and, as the honest peer, of PCA with as many dimensions fitted on the same training
images:

- ``knn_acc``: accuracy on the test codes of a k-nearest-neighbour classifier
  (k = 5, Euclidean) fitted on the training codes;
- ``linear_acc``: accuracy on the test codes of a logistic regression fitted on the
  training codes (always after standardising each dimension on the training codes);
- ``retrieval_p10``: precision at 10 among the test codes: for each test image, the
  share of its 10 nearest *other* test images (Euclidean) that have its label, averaged.

With ``standardise`` the codes are standardised on the training codes before kNN and
retrieval — PCA codes exactly like the autoencoder's.

Generation: a Gaussian mixture fitted on the training codes gives new codes for the
decoder; interpolation decodes evenly spaced points on the segment between two codes.
"""

from __future__ import annotations

import numpy as np

from cae.paths import HINT_EMBEDDING, HINT_LATENT, LATENT_DIR, embedding_path

KNN_K = 5
RETRIEVAL_K = 10
VARIANTS = ("plain", "variational")  # the embedding models, both from `train_embedding`
SPLITS = ("train", "test")  # the codes `latent` writes: data/latent/<variant>_<split>.npy


def flat(x: np.ndarray) -> np.ndarray:
    """(N, ...) → (N, D) in float64."""
    return np.asarray(x, np.float64).reshape(len(x), -1)


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays standardised with the mean and standard deviation of ``train``'s
    dimensions (a dimension that never varies is only centred)."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def knn_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray, k: int = KNN_K) -> float:
    """Accuracy on ``test`` of the k-nearest-neighbour vote (Euclidean) over ``train``."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(train))).fit(flat(train), np.ravel(y_train))
    return float(knn.score(flat(test), np.ravel(y_test)))


def linear_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray) -> float:
    """Accuracy on ``test`` of a (multinomial) logistic regression fitted on ``train``,
    each dimension standardised on ``train`` first."""
    from sklearn.linear_model import LogisticRegression

    a, b = standardised(flat(train), flat(test))
    probe = LogisticRegression(max_iter=2000).fit(a, np.ravel(y_train))
    return float(probe.score(b, np.ravel(y_test)))


def retrieval_precision(codes: np.ndarray, labels: np.ndarray, k: int = RETRIEVAL_K) -> float:
    """Mean over the codes of the share of each one's ``k`` nearest other codes
    (Euclidean; the query itself excluded, ties broken by index) that share its label."""
    from sklearn.neighbors import NearestNeighbors

    codes, labels = flat(codes), np.ravel(labels)
    n = len(codes)
    if n < 2:
        raise ValueError("retrieval needs at least two codes")
    k = min(k, n - 1)
    index = NearestNeighbors(n_neighbors=k + 1).fit(codes)
    neighbours = index.kneighbors(codes, return_distance=False)
    # the query is usually its own first neighbour, but an identical code may come first
    others = np.array([row[row != i][:k] for i, row in enumerate(neighbours)])
    return float(np.mean(labels[others] == labels[:, None]))


def code_metrics(
    train: np.ndarray,
    y_train: np.ndarray,
    test: np.ndarray,
    y_test: np.ndarray,
    standardise: bool = False,
    prefix: str = "",
) -> dict[str, float]:
    """``knn_acc``, ``linear_acc`` and ``retrieval_p10`` of one kind of code, keys prefixed."""
    train, test = flat(train), flat(test)
    near_train, near_test = standardised(train, test) if standardise else (train, test)
    return {
        f"{prefix}knn_acc": knn_accuracy(near_train, y_train, near_test, y_test),
        f"{prefix}linear_acc": linear_accuracy(train, y_train, test, y_test),
        f"{prefix}retrieval_p{RETRIEVAL_K}": retrieval_precision(near_test, y_test),
    }


def pca_codes(train_images: np.ndarray, test_images: np.ndarray, dims: int, random_state: int = 0):
    """The peer: the first ``dims`` principal components of ``train_images`` (fitted on
    them alone), as codes of both sets: (train codes, test codes). ``random_state`` is
    scikit-learn's (neither solver used here draws from it)."""
    a, b = flat(train_images), flat(test_images)
    pca = fit_pca(a, dims, random_state)
    return pca.transform(a), pca.transform(b)


PCA_EIGH_MAX_DIMS = 2048


def fit_pca(a: np.ndarray, dims: int, random_state: int):
    """scikit-learn's ``PCA`` with ``min(dims, *a.shape)`` components fitted on the rows of ``a``.

    With no more columns (pixels) than rows (images), and at most :data:`PCA_EIGH_MAX_DIMS`
    of them, from the eigenvectors of the covariance matrix: the components of a full SVD
    (to rounding, up to sign), at a small fraction of its cost (full MNIST: seconds
    instead of a minute); otherwise by a full SVD.
    """
    from sklearn.decomposition import PCA

    n, d = a.shape
    solver = "covariance_eigh" if d <= min(n, PCA_EIGH_MAX_DIMS) else "full"
    return PCA(n_components=min(dims, n, d), svd_solver=solver, random_state=random_state).fit(a)


def project_2d(codes: np.ndarray, method: str, random_state: int = 0) -> np.ndarray:
    """Codes in two dimensions: the codes themselves if they have two, else their first
    two principal components (``pca``) or a t-SNE embedding (``tsne``, seeded with
    ``random_state``)."""
    codes = flat(codes)
    if codes.shape[1] == 2:
        return codes
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, svd_solver="full", random_state=random_state).fit_transform(codes)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (len(codes) - 1) / 3)
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=random_state).fit_transform(codes)
    raise ValueError(f"unknown projection {method!r}")


def fit_density(codes: np.ndarray, components: int, covariance: str, random_state: int = 0):
    """A Gaussian mixture fitted on ``codes`` (scikit-learn's ``GaussianMixture``, its
    initialisation seeded with ``random_state``)."""
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(
        n_components=min(components, len(codes)), covariance_type=covariance, random_state=random_state, reg_covar=1e-5
    ).fit(flat(codes))


def sample_density(density, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` codes drawn from ``density``, in a random order (scikit-learn draws them
    grouped by component); both the draws and the order come from ``rng``."""
    density.random_state = int(rng.integers(2**32))
    codes, _ = density.sample(n)
    return codes[rng.permutation(n)].astype(np.float32)


def interpolate(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """``steps`` evenly spaced points from ``a`` to ``b`` (both included): (steps, D)."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1 - t) * flat(a[None]) + t * flat(b[None])).astype(np.float32)


def interpolation_pairs(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` pairs of indices (n, 2) of images with different labels (any two images when
    every label is the same), drawn from ``rng``."""
    labels = np.ravel(labels)
    pairs = []
    for _ in range(100 * n):
        i, j = rng.choice(len(labels), size=2, replace=False)
        if labels[i] != labels[j] or len(np.unique(labels)) == 1:
            pairs.append((i, j))
            if len(pairs) == n:
                break
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


# --- what the latent stages wrote ------------------------------------------------------------


def check_embeddings() -> None:
    """Every variant's embedding model is there, a plausible archive; a missing one names
    the stage to run. TensorFlow-free: the latent stages call it before importing it."""
    from cae.io import check_model_file

    for variant in VARIANTS:
        check_model_file(embedding_path(variant), HINT_EMBEDDING)


def load_embedding(variant: str):
    """The trained embedding model of ``variant``; a missing file names the stage to run."""
    from cae.model import load_model

    return load_model(embedding_path(variant), hint=HINT_EMBEDDING)


def read_codes() -> dict[str, dict[str, np.ndarray]]:
    """What `latent` wrote: ``{variant: {split: codes}}``."""
    from cae.io import read_arrays

    arrays = read_arrays(LATENT_DIR, [f"{v}_{s}" for v in VARIANTS for s in SPLITS], hint=HINT_LATENT)
    return {v: {s: arrays[f"{v}_{s}"] for s in SPLITS} for v in VARIANTS}
