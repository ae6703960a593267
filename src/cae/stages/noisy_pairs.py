"""Stage `noisy_pairs`: validation split and seeded corruption, into data/prepared/.

Streams: the raw arrays are read and the prepared ones written a chunk of images at a
time, so memory stays bounded however many images the data set has.
"""

from __future__ import annotations

from cae.config import Params
from cae.paths import PREPARED_DIR, RAW_DIR
from cae.stages import log, run_stage

# The params this stage reads (dvc.yaml's `params:` is written from this; tools/dvc_deps.py).
PARAMS = ("seed", "split", "noise")


def main(params: Params) -> None:
    from cae.data import read_raw
    from cae.prepare import write_pairs

    raw = read_raw(RAW_DIR, rows=True)
    shapes = write_pairs(raw, params.noise, params.split, params.seed, PREPARED_DIR)
    log.info(
        "wrote %s: %d train / %d val / %d test pairs of %s, %s noise at factor %s",
        PREPARED_DIR,
        shapes["x_train"][0],
        shapes["x_val"][0],
        shapes["x_test"][0],
        "×".join(map(str, shapes["x_train"][1:])),
        params.noise.kind,
        params.noise.factor,
    )


if __name__ == "__main__":
    run_stage(main)
