"""One thin entry point per DVC stage: read params → call the library → write outputs.

The stage modules read params and pass the library the sections it uses; paths come from
:mod:`cae.paths`. No stage module imports another. Each stage validates ``params.yaml``
before importing TensorFlow or doing any work, and turns a :class:`~cae.errors.CaeError`
into one line on stderr and exit status 2. Each declares the params it reads in a
module-level ``PARAMS`` tuple, from which ``tools/dvc_deps.py`` writes its entry in
dvc.yaml (with its code deps, the import closure of the module).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from cae import runtime
from cae.config import Params, load_params
from cae.errors import CaeError

log = logging.getLogger("cae")


def run_stage(main: Callable[[Params], None]) -> None:
    """Validate params, run ``main(params)``, exit 0, or exit 2 with one clear line."""
    runtime.log_to_stderr()
    try:
        params = load_params()
        main(params)
    except CaeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: no output was written", file=sys.stderr)
        sys.exit(130)
