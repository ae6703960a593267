"""Quiet start-up: TensorFlow's C++ start-up lines stay out of stage logs, while Python
warnings and the project's own log lines still show."""

import os
import subprocess
import sys

import pytest
from test_stages import REPO, write_params, write_tiny_prepared

from cae.runtime import START_UP_NOISE, without_start_up_noise

# What TensorFlow 2.21 prints on a machine without a GPU, unless held back.
NOISE = (
    "absl::InitializeLog",
    "oneDNN",
    "cudart_stub",
    "Could not find cuda drivers",
    "cuInit",
    "NodeDef mentions attribute",
    "retracing",
)


def _run(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # the default set-up
    env["PYTHONPATH"] = str(REPO / "src")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _noise(stderr):
    return [line for line in stderr.splitlines() if any(n in line for n in NOISE)]


def test_start_up_lines_are_held_back_and_the_rest_written_back(capfd):
    with without_start_up_noise():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1796144379.076959    8385 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"E0000 00:00:1796144387.905268    8385 cuda_platform.cc:52] failed call to cuInit\n")
        os.write(2, b"a line of our own\n")
        os.write(2, b"I0000 is not a C++ log line\n")
    assert capfd.readouterr().err == "a line of our own\nI0000 is not a C++ log line\n"
    assert not START_UP_NOISE.match(b"cae: training denoise on 64 images")


def test_importing_tensorflow_is_quiet_and_python_warnings_still_show(tmp_path):
    proc = _run(
        ["-c", "import cae, warnings; import tensorflow as tf; tf.constant(1.0) + 1; warnings.warn('a real warning')"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert not _noise(proc.stderr), proc.stderr
    assert "UserWarning: a real warning" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_training_stage_log_holds_no_tensorflow_start_up_lines(tmp_path):
    write_params(tmp_path, epochs=1, batch_size=32)
    write_tiny_prepared(tmp_path)
    proc = _run(["-m", "cae.stages.train"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not _noise(proc.stderr), proc.stderr
    assert "cae: training denoise on 64 images" in proc.stderr and "cae: done in" in proc.stderr


def test_run_jobs_in_worker_processes_keeps_the_order_and_raises_the_first_error(tmp_path):
    from functools import partial

    from cae.errors import CaeError
    from cae.io import read_arrays
    from cae.runtime import run_jobs

    jobs = [(2, 3), (3, 2), (5, 1)]
    assert run_jobs(pow, jobs, workers=2) == run_jobs(pow, jobs, workers=None) == [8, 9, 5]
    assert run_jobs(pow, [], workers=2) == []
    # an error in a worker reaches the caller as itself: a stage still prints one clear line
    with pytest.raises(CaeError, match="none: not found; make it"):
        run_jobs(partial(read_arrays, hint="make it"), [(tmp_path / "none", ["x"])], workers=2)
