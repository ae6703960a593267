"""Stage `plots`: the reference figure and the denoising figure → plots/*.png."""

from __future__ import annotations

from cae.config import Params
from cae.paths import DENOISING_PLOT as DENOISING
from cae.paths import HINT_PREPARED, MODEL_PATH, PREPARED_DIR
from cae.paths import RECONSTRUCTIONS_PLOT as RECONSTRUCTIONS
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
PARAMS = ("seed",)
N_IMAGES = 10


def main(params: Params) -> None:
    from cae import runtime
    from cae.io import check_model_file, read_arrays
    from cae.plots import denoising_figure, reference_figure
    from cae.prepare import to_float

    data = read_arrays(PREPARED_DIR, ["x_test", "x_test_noisy"], hint=HINT_PREPARED, mmap=True)
    check_model_file(MODEL_PATH)
    from cae.model import load_model  # TensorFlow only once every input is there

    clean = to_float(data["x_test"][:N_IMAGES])
    noisy = data["x_test_noisy"][:N_IMAGES]
    runtime.make_deterministic(params.seed)
    model = load_model(MODEL_PATH, image_shape=data["x_test"].shape[1:])
    reference_figure(clean, model.predict(clean, verbose=0), RECONSTRUCTIONS)
    denoising_figure(noisy, model.predict(noisy, verbose=0), clean, DENOISING)
    log.info("wrote %s and %s", RECONSTRUCTIONS, DENOISING)


if __name__ == "__main__":
    run_stage(main)
