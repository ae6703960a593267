"""Fixtures shared by the tests that run the real pipeline."""

import shutil

import pytest
from project_copy import sh, tiny_project


@pytest.fixture(scope="session")
def pipeline_done(tmp_path_factory):
    """A scratch project after a full `dvc repro` (1 epoch on mnist_sample), committed to
    git with its DVC cache. Tests copy it with :func:`copy_project`, never change it.
    The output of that first `dvc repro` is kept beside it, in :func:`first_repro_log`."""
    root = tiny_project(tmp_path_factory.mktemp("template") / "project", epochs=1, batch_size=256)
    first_repro_log(root).write_text(sh("dvc repro", root, timeout=600))
    sh("git add -A && git commit -q -m results", root)
    return root


def first_repro_log(template):
    """Where :func:`pipeline_done` keeps the output of its project's first `dvc repro`."""
    return template.parent / "first-repro.log"


def copy_project(template, dest):
    """A copy of ``template`` (git history, workspace, DVC cache) at ``dest``."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group markers
def pytest_collection_modifyitems(items):
    """A test on the pipeline run (``pipeline_done``: a full `dvc repro`) must be marked
    ``slow``, so that ``pytest -m "not slow"`` (``make test-fast``) never starts it.

    Those tests also share one xdist group: with ``--dist loadgroup`` (pyproject's
    addopts) they all run on one worker, which builds the session fixture once, while
    the other workers take the rest of the suite."""
    users = [item for item in items if "pipeline_done" in getattr(item, "fixturenames", ())]
    unmarked = [item.nodeid for item in users if item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError(f"these use pipeline_done (a full `dvc repro`) but are not marked slow: {unmarked}")
    for item in users:
        item.add_marker(pytest.mark.xdist_group("pipeline_done"))
