"""Stage `train`: fit the autoencoder on data/prepared/ → models/, metrics/, dvclive/.

Outputs: ``models/autoencoder.keras``, ``metrics/train.json`` (final losses; the same
bytes for the same params) and the per-epoch loss curves in ``dvclive/``, logged with
DVCLive as each epoch ends (``dvclive/metrics.json``, a stage metric, and
``dvclive/plots/metrics/{train,eval}/loss.tsv``, stage plots). Wall-clock
figures go to ``metrics/train_timing.json``, which is shown by ``dvc metrics show``
and ``dvc exp show`` but is not a stage output, so timing noise never changes
``dvc.lock``.

A killed run resumes: each epoch is backed up in ``.cae/train-backup/<key>/`` (see
:mod:`cae.resume`) and the next run continues after the last one backed up, ending
with the same bytes as an uninterrupted run. With ``distribute: multi_worker`` every
worker trains and only the chief writes the outputs.
"""

from __future__ import annotations

import shutil

from cae.config import Params, TrainSettings
from cae.paths import (
    BACKUP_ROOT,
    HINT_PREPARED,
    MODEL_PATH,
    PREPARED_DIR,
    TIMING_METRICS,
    TRAIN_LOG_DIR,
    TRAIN_METRICS,
)
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
PARAMS = ("seed", "epochs", "batch_size", "task", "model", "distribute", "steps_per_execution")


def main(params: Params) -> None:
    import os

    from cae.distribute import is_chief, make_strategy, read_tf_config

    tf_config = read_tf_config() if params.distribute == "multi_worker" else None  # before importing TF

    from cae.config import check_input_shape
    from cae.io import atomic_path, read_arrays, write_json

    names = ["x_train", "x_val"] + (["x_train_noisy", "x_val_noisy"] if params.task == "denoise" else [])
    # Streamed: the arrays are read a batch at a time (NpyRows) and the clean uint8
    # targets converted to float per batch, so a data set larger than memory trains
    # (benchmarks/folder_rss.py); with plain in-memory arrays cae.train would gather the
    # batches in TensorFlow instead, equally fast here (benchmarks/README.md).
    data = read_arrays(PREPARED_DIR, names, hint=HINT_PREPARED, rows=True)
    check_input_shape(data["x_train"].shape[1:], params.model)
    # TensorFlow only now: missing or unfit data fails at once, not after its start-up
    from cae import runtime
    from cae.model import save_model
    from cae.resume import fingerprint
    from cae.train import restored_on_failure, train_autoencoder

    x_train, x_val = data["x_train"], data["x_val"]  # uint8: converted to float32 batch by batch
    if params.task == "denoise":
        inputs, val_inputs = data["x_train_noisy"], data["x_val_noisy"]
    else:
        inputs, val_inputs = x_train, x_val

    settings = TrainSettings(
        seed=params.seed,
        epochs=params.epochs,
        batch_size=params.batch_size,
        distribute=params.distribute,
        steps_per_execution=params.steps_per_execution,
    )
    strategy = make_strategy(settings.distribute)  # before any other TensorFlow work
    runtime.make_deterministic(params.seed)
    log.info(
        "training %s on %d images of %s for %d epochs (batch %d)",
        params.task,
        len(inputs),
        "×".join(map(str, inputs.shape[1:])),
        params.epochs,
        params.batch_size,
    )
    # A killed run resumes from its last epoch: the backup lives outside DVC's outputs,
    # keyed by everything that decides the result. Multi-worker runs are not backed up
    # (workers would have to agree on the epoch to resume).
    backup = None
    if tf_config is None:
        backup = BACKUP_ROOT / fingerprint(params.model, settings, params.task, inputs, x_train, val_inputs, x_val)
    if not is_chief(tf_config):
        train_autoencoder(params.model, settings, inputs, x_train, val_inputs, x_val, strategy=strategy)
        log.info("worker %s done; the chief writes the outputs", os.environ.get("TF_CONFIG"))
        return
    # The loss curves are logged to dvclive/ epoch by epoch, as training goes (what `dvc
    # exp show` and the VS Code extension follow). The other outputs are written under a
    # temporary name first and renamed into place only once all of them are complete; a
    # failure (divergence, no space, an unwritable path) leaves every previous output,
    # dvclive/ included, as it was.
    with restored_on_failure(TRAIN_LOG_DIR) as log_dir:
        result = train_autoencoder(
            params.model,
            settings,
            inputs,
            x_train,
            val_inputs,
            x_val,
            log_dir=log_dir,
            backup_dir=backup,
            strategy=strategy,
        )
        with atomic_path(TRAIN_METRICS) as tmp_metrics:
            write_json(tmp_metrics, result.summary())
            with atomic_path(MODEL_PATH) as tmp_model:
                save_model(result.model, tmp_model)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    write_json(
        TIMING_METRICS,
        {"seconds": round(result.seconds, 2), "images_per_second": round(result.images_per_second, 1)},
    )
    log.info(
        "done in %.1f s (%.0f images/s%s): loss %.4f, val_loss %.4f",
        result.seconds,
        result.images_per_second,
        f", resumed after epoch {result.resumed_from}" if result.resumed_from else "",
        result.history["loss"][-1],
        result.history["val_loss"][-1],
    )


if __name__ == "__main__":
    run_stage(main)
