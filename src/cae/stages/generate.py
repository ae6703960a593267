"""Stage `generate`: decoded samples and interpolations → plots/samples.png, plots/interpolation.png.

For each embedding model (plain and variational): a Gaussian mixture
(``latent.gmm_components`` components, ``latent.gmm_covariance`` covariance) is fitted
on its training codes (``data/latent/``) and ``latent.samples`` codes drawn from it are
decoded; the variational model's decoder is also shown on codes drawn from its prior
N(0, I). ``plots/samples.png`` puts them in labelled rows, one model under the other.
``plots/interpolation.png``: for ``latent.interpolation_pairs`` seeded pairs of test
images of different classes, ``latent.interpolation_steps`` codes evenly spaced
between theirs, decoded by each model, one row per model.
"""

from __future__ import annotations

from cae.config import Params
from cae.paths import HINT_PREPARED, INTERPOLATION_PLOT, PREPARED_DIR, SAMPLES_PLOT
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
PARAMS = (
    "seed",
    "latent.gmm_components",
    "latent.gmm_covariance",
    "latent.samples",
    "latent.interpolation_pairs",
    "latent.interpolation_steps",
)
PER_ROW = 10


def _rows(images, title: str) -> tuple[list, list[str]]:
    """``images`` cut into rows of :data:`PER_ROW`, the first one titled."""
    rows = [images[i : i + PER_ROW] for i in range(0, len(images), PER_ROW)]
    return rows, [title] + [""] * (len(rows) - 1)


def _run(model, x):
    """``model`` on ``x`` in one eager call: no ``tf.function`` traced per model and batch
    shape (``predict`` on four small models retraced often enough for TensorFlow to warn)."""
    import keras

    return keras.ops.convert_to_numpy(model(x, training=False))


def _decode_all(decoder, batches: list) -> list:
    """``decoder`` on every array of codes in ``batches``, in one call; one array of images per entry."""
    import numpy as np

    images = _run(decoder, np.concatenate(batches))
    return np.split(images, np.cumsum([len(b) for b in batches])[:-1])


def main(params: Params) -> None:
    import numpy as np

    from cae import runtime, seeds
    from cae.io import read_arrays
    from cae.latent import (
        VARIANTS,
        check_embeddings,
        fit_density,
        interpolate,
        interpolation_pairs,
        load_embedding,
        read_codes,
        sample_density,
    )
    from cae.plots import image_rows
    from cae.prepare import to_float
    from cae.seeds import Stream

    cfg = params.latent
    data = read_arrays(PREPARED_DIR, ["x_test", "y_test"], hint=HINT_PREPARED, mmap=True)
    codes = read_codes()
    check_embeddings()
    from cae.model import decoder_of, encoder_of  # TensorFlow only once every input is there

    runtime.make_deterministic(params.seed)
    models = {v: load_embedding(v) for v in VARIANTS}
    decoders = {v: decoder_of(m) for v, m in models.items()}

    # Every code a decoder turns into an image is gathered first, so that each decoder
    # runs once, then cut back into rows.
    drawn = {}
    with runtime.numerics_after_tensorflow():
        for i, v in enumerate(VARIANTS):
            fit_seed = seeds.seed_int(params.seed, Stream.DENSITY_FIT, i)
            density = fit_density(codes[v]["train"], cfg.gmm_components, cfg.gmm_covariance, fit_seed)
            drawn[v] = sample_density(density, cfg.samples, seeds.rng(params.seed, Stream.DENSITY_SAMPLE, i))
    dims = codes["variational"]["train"].shape[1]
    prior = seeds.rng(params.seed, Stream.PRIOR_SAMPLE).standard_normal((cfg.samples, dims)).astype(np.float32)
    y = np.ravel(data["y_test"])
    pairs = interpolation_pairs(y, cfg.interpolation_pairs, seeds.rng(params.seed, Stream.INTERPOLATION_PAIRS))
    index = np.unique(pairs)  # sorted: the test images at the ends, read once
    at = {int(i): k for k, i in enumerate(index)}
    ends = to_float(np.asarray(data["x_test"][index]))
    lines = {}
    for v in VARIANTS:
        end_codes = _run(encoder_of(models[v]), ends)
        lines[v] = [interpolate(end_codes[at[i]], end_codes[at[j]], cfg.interpolation_steps) for i, j in pairs]
    wanted = {v: [drawn[v], *lines[v], *([prior] if v == "variational" else [])] for v in VARIANTS}
    decoded = {v: _decode_all(decoders[v], wanted[v]) for v in VARIANTS}

    sample_rows, sample_titles = [], []
    for variant in VARIANTS:
        rows, titles = _rows(decoded[variant][0], f"{variant}:\nGMM samples")
        sample_rows += rows
        sample_titles += titles
    rows, titles = _rows(decoded["variational"][-1], "variational:\nN(0, I) samples")
    image_rows(sample_rows + rows, sample_titles + titles, SAMPLES_PLOT)

    inter_rows, inter_titles = [], []
    for k, (i, j) in enumerate(pairs):
        for variant in VARIANTS:
            inter_rows.append(decoded[variant][1 + k])
            inter_titles.append(f"{y[i]} → {y[j]}\n{variant}")
    image_rows(inter_rows, inter_titles, INTERPOLATION_PLOT)
    log.info(
        "wrote %s (%d samples per model) and %s (%d pairs)", SAMPLES_PLOT, cfg.samples, INTERPOLATION_PLOT, len(pairs)
    )


if __name__ == "__main__":
    run_stage(main)
