"""One thin entry point per DVC stage: read params → call the library → write outputs.

The stage modules know file paths and params; the library knows neither. Each stage
validates ``params.yaml`` before importing TensorFlow or doing any work, and turns a
:class:`~cae.errors.CaeError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from cae.config import Params, load_params
from cae.errors import CaeError

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
MODEL_PATH = Path("models/autoencoder.keras")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")
TRAIN_LOG_DIR = Path("dvclive")

HINT_RAW = "run `dvc repro download`"
HINT_PREPARED = "run `dvc repro noisy_pairs`"
HINT_MODEL = "run `dvc repro train`"

log = logging.getLogger("cae")


def run_stage(main: Callable[[Params], None]) -> None:
    """Validate params, run ``main(params)``, exit 0, or exit 2 with one clear line."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        params = load_params()
        main(params)
    except CaeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: no output was written", file=sys.stderr)
        sys.exit(130)
