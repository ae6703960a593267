"""Fixtures shared by the tests that run the real pipeline."""

import shutil

import pytest
from project_copy import sh, tiny_project


@pytest.fixture(scope="session")
def pipeline_done(tmp_path_factory):
    """A scratch project after a full `dvc repro` (1 epoch on mnist_sample), committed to
    git with its DVC cache. Tests copy it with :func:`copy_project`, never change it."""
    root = tiny_project(tmp_path_factory.mktemp("template") / "project", epochs=1, batch_size=256)
    sh("dvc repro", root, timeout=600)
    sh("git add -A && git commit -q -m results", root)
    return root


def copy_project(template, dest):
    """A copy of ``template`` (git history, workspace, DVC cache) at ``dest``."""
    shutil.copytree(template, dest, symlinks=True)
    return dest
