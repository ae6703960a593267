"""Stage `train`: fit the autoencoder on data/prepared/ → models/, metrics/, dvclive/.

Outputs: ``models/autoencoder.keras``, ``metrics/train.json`` (final losses; the same
bytes for the same params) and the per-epoch loss curves in ``dvclive/``. Wall-clock
figures go to ``metrics/train_timing.json``, which is shown by ``dvc metrics show``
and ``dvc exp show`` but is not a stage output, so timing noise never changes
``dvc.lock``.
"""

from __future__ import annotations

from cae.config import Params
from cae.stages import (
    HINT_PREPARED,
    METRICS_DIR,
    MODEL_PATH,
    PREPARED_DIR,
    TRAIN_LOG_DIR,
    log,
    run_stage,
)

TRAIN_METRICS = METRICS_DIR / "train.json"
TIMING_METRICS = METRICS_DIR / "train_timing.json"


def main(params: Params) -> None:
    from cae import runtime
    from cae.io import atomic_path, read_arrays, write_json
    from cae.model import check_input_shape, save_model
    from cae.prepare import to_float
    from cae.train import train_autoencoder

    names = ["x_train", "x_val"] + (["x_train_noisy", "x_val_noisy"] if params.task == "denoise" else [])
    data = read_arrays(PREPARED_DIR, names, hint=HINT_PREPARED)
    check_input_shape(data["x_train"].shape[1:], len(params.model.filters))
    x_train, x_val = to_float(data["x_train"]), to_float(data["x_val"])
    if params.task == "denoise":
        inputs, val_inputs = data["x_train_noisy"], data["x_val_noisy"]
    else:
        inputs, val_inputs = x_train, x_val

    runtime.make_deterministic(params.seed)
    log.info(
        "training %s on %d images of %s for %d epochs (batch %d)",
        params.task, len(inputs), "×".join(map(str, inputs.shape[1:])), params.epochs, params.batch_size,
    )  # fmt: skip
    # The loss curves are written to a temporary directory that replaces dvclive/
    # only once the model and metrics are saved: an interrupted run leaves no output.
    with atomic_path(TRAIN_LOG_DIR, directory=True) as tmp_log:
        result = train_autoencoder(params, inputs, x_train, val_inputs, x_val, log_dir=tmp_log)
        save_model(result.model, MODEL_PATH)
        write_json(TRAIN_METRICS, result.summary())
    write_json(
        TIMING_METRICS,
        {"seconds": round(result.seconds, 2), "images_per_second": round(result.images_per_second, 1)},
    )
    log.info(
        "done in %.1f s (%.0f images/s): loss %.4f, val_loss %.4f",
        result.seconds, result.images_per_second, result.history["loss"][-1], result.history["val_loss"][-1],
    )  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
