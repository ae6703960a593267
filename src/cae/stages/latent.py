"""Stage `latent`: the embeddings' codes → data/latent/, metrics/latent.json, plots/latent_2d.png.

Encodes the training and test images (``data/prepared/x_train.npy``, ``x_test.npy``)
with both embedding models (the variational one by its mean) and scores the codes as
features against PCA with ``latent_dim`` components fitted on the same training images,
and against PCA with twice as many (see :mod:`cae.latent`):

- ``data/latent/<variant>_<split>.npy``: the codes (float32), in the order of the
  prepared arrays, for ``variant`` in plain, variational and ``split`` in train, test;
- ``metrics/latent.json``: ``knn_acc``, ``linear_acc``, ``retrieval_p10`` of the plain
  model's code, ``pca_…`` of the peer, ``pca2x_…`` of PCA with twice the code's
  numbers, ``vae_…`` of the variational model's code.
  ``retrieval_p10`` is measured among
  the test codes (each test image against the other test images);
- ``plots/latent_2d.png``: a seeded subset of ``latent.plot_points`` test codes of each
  model in two dimensions (the code itself at latent_dim 2, else ``latent.projection``),
  coloured by label.
"""

from __future__ import annotations

from cae.config import Params
from cae.paths import HINT_PREPARED, LATENT_DIR, LATENT_METRICS, LATENT_PLOT, PREPARED_DIR
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
PARAMS = ("seed", "latent.batch_size", "latent.standardise", "latent.projection", "latent.plot_points")
PREFIX = {"plain": "", "variational": "vae_"}
TITLE = {"plain": "plain autoencoder", "variational": "variational autoencoder"}


def main(params: Params) -> None:
    import numpy as np

    from cae import runtime, seeds
    from cae.io import read_arrays, write_arrays, write_json
    from cae.latent import SPLITS, VARIANTS, check_embeddings, code_metrics, load_embedding, pca_codes, project_2d
    from cae.plots import scatter_panels
    from cae.prepare import to_float
    from cae.seeds import Stream

    cfg = params.latent
    data = read_arrays(PREPARED_DIR, ["x_train", "y_train", "x_test", "y_test"], hint=HINT_PREPARED)
    check_embeddings()
    from cae.model import encoder_of, predict_batch  # TensorFlow only once every input is there

    images = {"train": to_float(data["x_train"]), "test": to_float(data["x_test"])}
    labels = {s: np.ravel(data[f"y_{s}"]) for s in SPLITS}
    runtime.make_deterministic(params.seed)
    codes = {}
    for variant in VARIANTS:
        encoder = encoder_of(load_embedding(variant))
        codes[variant] = {
            s: encoder.predict(images[s], batch_size=predict_batch(cfg.batch_size), verbose=0).astype(np.float32)
            for s in SPLITS
        }
    dims = codes["plain"]["train"].shape[1]
    log.info("codes of %d numbers for %d training and %d test images", dims, len(images["train"]), len(images["test"]))

    metrics: dict = {}
    # PCA with twice the code's numbers; its first `dims` components are the peer of as many
    wide = pca_codes(images["train"], images["test"], 2 * dims, seeds.seed_int(params.seed, Stream.LATENT_PCA))
    peer = (wide[0][:, :dims], wide[1][:, :dims])
    scored = {**{PREFIX[v]: (codes[v]["train"], codes[v]["test"]) for v in VARIANTS}, "pca_": peer, "pca2x_": wide}
    for prefix, (train, test) in scored.items():
        found = code_metrics(train, labels["train"], test, labels["test"], cfg.standardise, prefix)
        metrics.update({k: round(v, 6) for k, v in found.items()})

    order = seeds.rng(params.seed, Stream.LATENT_PLOT_SUBSET).permutation(len(labels["test"]))
    subset = np.sort(order[: cfg.plot_points])
    how = "the code itself" if dims == 2 else cfg.projection
    panels = [
        (
            project_2d(
                codes[v]["test"][subset], cfg.projection, seeds.seed_int(params.seed, Stream.LATENT_PROJECTION, i)
            ),
            labels["test"][subset],
            f"{TITLE[v]}: {len(subset)} test codes of {dims}, {how}",
        )
        for i, v in enumerate(VARIANTS)
    ]
    write_arrays(LATENT_DIR, {f"{v}_{s}": codes[v][s] for v in VARIANTS for s in SPLITS})
    scatter_panels(panels, LATENT_PLOT)
    write_json(LATENT_METRICS, metrics)

    log.info("%-12s %8s %8s %8s", "code", "kNN %", "linear %", "P@10 %")
    rows = (("autoencoder", ""), ("variational", "vae_"), (f"PCA-{dims}", "pca_"), (f"PCA-{2 * dims}", "pca2x_"))
    for name, prefix in rows:
        log.info(
            "%-12s %8.2f %8.2f %8.2f",
            name,
            *(100 * metrics[f"{prefix}{k}"] for k in ("knn_acc", "linear_acc", "retrieval_p10")),
        )


if __name__ == "__main__":
    run_stage(main)
