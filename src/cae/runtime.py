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
from collections.abc import Sequence

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


LOG_FORMAT = "%(name)s: %(message)s"


def log_to_stderr() -> None:
    """The project's log lines (logger ``cae``, INFO and up) on stderr, as every stage writes them."""
    import logging

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, stream=sys.stderr)


def one_thread_worker() -> None:
    """Set up a process of :func:`run_jobs`: TensorFlow's and NumPy's thread pools of one
    thread each, GPU memory taken as needed (not all of it at once, as TensorFlow would:
    the other workers share the GPU), and the project's log lines on stderr."""
    import tensorflow as tf
    from threadpoolctl import threadpool_limits

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    threadpool_limits(1)
    log_to_stderr()


def run_jobs(fn, jobs: Sequence[tuple], workers: int | None) -> list:
    """``[fn(*job) for job in jobs]``, in ``workers`` processes side by side.

    The studies' models are small: on the 2-core machine one such model trains as fast on
    one thread as on two, so two side by side train in about the time of one
    (``python benchmarks/threads_bench.py --section anomaly --images 5400 --epochs 8``:
    two one-class models 41.9 s one after another, 21.6 s side by side; docs/speed.md).
    Each process (started fresh, not forked) runs TensorFlow and NumPy on
    one thread whatever the number of processes, so every model comes out the same for
    any ``workers``. ``workers=None`` runs the jobs here, one after another, with the
    threads as they are (for distributed training). ``fn`` and the jobs must pickle; the
    results come back in the order of ``jobs``, and the first failure is raised once the
    jobs already running have finished.
    """
    if workers is None or not jobs:
        return [fn(*job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=one_thread_worker) as pool:
        futures = [pool.submit(fn, *job) for job in jobs]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise
