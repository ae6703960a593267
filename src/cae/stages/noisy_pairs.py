"""Stage `noisy_pairs`: validation split and seeded corruption, into data/prepared/."""

from __future__ import annotations

from cae.config import Params
from cae.stages import PREPARED_DIR, RAW_DIR, log, run_stage


def main(params: Params) -> None:
    from cae.data import read_raw
    from cae.io import write_arrays
    from cae.prepare import make_pairs

    raw = read_raw(RAW_DIR)
    pairs = make_pairs(raw, params)
    write_arrays(PREPARED_DIR, pairs)
    log.info(
        "wrote %s: %d train / %d val / %d test pairs, %s noise at factor %g",
        PREPARED_DIR, len(pairs["x_train"]), len(pairs["x_val"]), len(pairs["x_test"]),
        params.noise.kind, params.noise.factor,
    )  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
