"""Fixtures shared by the tests that run the real pipeline."""

import fcntl
import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from project_copy import sh, tiny_project

# What cae.evaluate.evaluate_denoiser measures; the `evaluate` stage adds score_threshold.
DENOISER_KEYS = {"denoise_psnr", "denoise_ssim", "noisy_psnr", "recon_psnr", "recon_bce", "test_images"}
EVAL_KEYS = DENOISER_KEYS | {"score_threshold"}  # metrics/eval.json


@pytest.fixture(scope="session")
def pipeline_done(tmp_path_factory):
    """A scratch project after a full `dvc repro` (1 epoch on mnist_sample), committed to
    git with its DVC cache. Tests copy it with :func:`copy_project`, never change it.
    The output of that first `dvc repro` is kept beside it, in :func:`first_repro_log`.

    Built once per pytest run: under pytest-xdist the workers share it (it lives in the
    run's temporary directory, above each worker's own, and a lock makes the others wait
    while one builds it), so it is never built twice, whichever worker a test lands on."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, common to its workers
    template = base / "pipeline-template"
    template.mkdir(exist_ok=True)
    root = template / "project"
    with open(template / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (template / "done").exists():
            shutil.rmtree(root, ignore_errors=True)  # a build that failed part way
            tiny_project(root, epochs=1, batch_size=256)
            first_repro_log(root).write_text(sh("dvc repro", root, timeout=600))
            sh("git add -A && git commit -q -m results", root)
            (template / "done").touch()
    return root


def first_repro_log(template):
    """Where :func:`pipeline_done` keeps the output of its project's first `dvc repro`."""
    return template.parent / "first-repro.log"


def copy_project(template, dest):
    """A copy of ``template`` (git history, workspace, DVC cache) at ``dest``."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` as a module (the folder is not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_collection_modifyitems(items):
    """A test on the pipeline run (``pipeline_done``: a full `dvc repro`) must be marked
    ``slow``, so that ``pytest -m "not slow"`` (``make test-fast``) never starts it."""
    unmarked = [
        item.nodeid
        for item in items
        if "pipeline_done" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"these use pipeline_done (a full `dvc repro`) but are not marked slow: {unmarked}")
