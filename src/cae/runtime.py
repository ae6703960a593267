"""TensorFlow start-up: quiet logs, seeds and deterministic ops.

The package imports this module first (``import cae`` does), so it runs before
TensorFlow or Keras is imported, and sets what TensorFlow reads once at import time:

* ``TF_CPP_MIN_LOG_LEVEL=3`` (unless already set): no C++ log lines once TensorFlow
  is running (``failed call to cuInit``, ``NodeDef mentions attribute …``, oneDNN's
  notes). Python warnings and this project's own log lines are not affected.
* The lines TensorFlow's C++ libraries print while they load, before that level
  applies (``All log messages before absl::InitializeLog() …``, ``oneDNN custom
  operations are on …``, ``Could not find cuda drivers …``), are held back: the first
  ``import tensorflow`` runs with stderr captured, and everything it wrote except
  those C++ log lines is written back. Set ``TF_CPP_MIN_LOG_LEVEL=0`` to see them all.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

_LOG_LEVEL = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# A C++ log line in absl's format ("I0000 00:00:1796144379.076959    8385 port.cc:153] …")
# and absl's banner before its logging is initialised.
START_UP_NOISE = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IWEF]\d{4} [\d:.]+\s+\d+ [\w.-]+:\d+\] )"
)


@contextlib.contextmanager
def without_start_up_noise():
    """Capture what is written to file descriptor 2 (C++ libraries and Python alike) in
    the block; write it back afterwards, less the lines :data:`START_UP_NOISE` matches."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(line for line in captured if not START_UP_NOISE.match(line))
            if kept:
                os.write(2, kept)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` inside :func:`without_start_up_noise`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and the real finders find the package
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def quiet_exec_module(module):
                with without_start_up_noise():
                    exec_module(module)

            # wrap this one loader instance's method: the module runs as before, its C++ noise held back
            spec.loader.exec_module = quiet_exec_module  # type: ignore[method-assign]
        return spec


if _LOG_LEVEL.strip() not in ("", "0") and "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _QuietTensorFlowImport())


def make_deterministic(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (from the ``FRAMEWORK`` stream of ``seed``) and make TensorFlow's ops deterministic.

    Same params on the same machine then give the same weights, metrics and
    figures, byte for byte.
    """
    import tensorflow as tf

    from cae.seeds import seed_frameworks

    seed_frameworks(seed)
    tf.config.experimental.enable_op_determinism()


def numerics_after_tensorflow():
    """A context in which NumPy's BLAS and scikit-learn's OpenMP use half the CPUs (at
    least one), for the NumPy and scikit-learn work a stage does after TensorFlow ran.

    Right after TensorFlow's work, small BLAS operations on every core run slower than
    on half of them. Measured on the idle 2-core machine, one thread against two,
    results identical: a Gaussian mixture on 54,000 16-number codes 3.9 s against
    6.0 s, the one-class PCA peer 0.6 s against 2.7 s. Not for t-SNE: its OpenMP
    gradient took 12 s on one thread against 8 s on two, right after a prediction.
    """
    from threadpoolctl import threadpool_limits

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 2
    return threadpool_limits(max(1, cpus // 2))
