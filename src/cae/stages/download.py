"""Stage `download`: the dataset named by `dataset`, verified, into data/raw/."""

from __future__ import annotations

from cae.config import Params
from cae.stages import RAW_DIR, log, run_stage


def main(params: Params) -> None:
    from cae.data import fetch_dataset, write_raw

    arrays, source = fetch_dataset(params.dataset, params.download)
    log.info("%s served by %s", params.dataset, source)
    write_raw(arrays, RAW_DIR)
    log.info("wrote %s (%d train, %d test images)", RAW_DIR, len(arrays["x_train"]), len(arrays["x_test"]))


if __name__ == "__main__":
    run_stage(main)
