"""Stage `download`: the dataset named by `dataset`, verified, into data/raw/.

``mnist``, ``mnist_sample`` and ``fashion_mnist`` are fetched and checked against their
checksums; ``folder`` reads your own images (``folder`` in params.yaml), streaming them
to disk, and also writes ``data/raw/classes.json`` (class names, size, counts).
"""

from __future__ import annotations

from cae.config import Params
from cae.paths import RAW_DIR
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
PARAMS = ("dataset", "download", "folder")


def main(params: Params) -> None:
    if params.dataset == "folder":
        from cae.folder import write_folder_dataset

        summary = write_folder_dataset(params.folder, RAW_DIR)
        log.info(
            "wrote %s (%d train, %d test images of %s×%d, classes: %s)",
            RAW_DIR,
            summary["train_images"],
            summary["test_images"],
            "×".join(map(str, summary["size"])),
            summary["channels"],
            ", ".join(summary["classes"]) or "none",
        )
        return

    from cae.data import fetch_dataset, write_raw

    arrays, source = fetch_dataset(params.dataset, params.download)
    log.info("%s served by %s", params.dataset, source)
    write_raw(arrays, RAW_DIR)
    log.info("wrote %s (%d train, %d test images)", RAW_DIR, len(arrays["x_train"]), len(arrays["x_test"]))


if __name__ == "__main__":
    run_stage(main)
