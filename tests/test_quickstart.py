"""The quick start (`make quick`, i.e. `python -m cae.quickstart`) in a fresh clone: a denoiser
that beats the median filter on its test set, as the DVC experiment `quick`, the
workspace's params and committed results left untouched."""

import re
import shutil

import pytest
from project_copy import IGNORE, REPO, sh

from cae import quickstart

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_make_quick_runs_the_quick_start():
    assert "python -m cae.quickstart" in (REPO / "Makefile").read_text().split("\nquick:")[1].split("\n\n")[0]
    assert quickstart.command()[:6] == ["dvc", "exp", "run", "--temp", "-n", "quick"]


def test_quick_start_beats_the_median_filter_and_leaves_the_workspace_alone(tmp_path, monkeypatch):
    project = tmp_path / "project"
    shutil.copytree(REPO, project, ignore=IGNORE)
    sh("git init -q -b main && git add -A && git commit -q -m clone", project)
    committed = {
        p: p.read_bytes() for p in [project / "params.yaml", *project.glob("metrics/*"), *project.glob("plots/*")]
    }

    out = sh("python -m cae.quickstart", project, timeout=800)
    monkeypatch.chdir(project)
    found = quickstart.headline("quick")  # the experiment's metrics/eval.json and metrics/baselines.json
    assert found["denoise_psnr"] > found["median_psnr"], found
    line = next(line for line in out.splitlines() if line.startswith("quick start:"))
    assert re.search(
        rf"PSNR is {found['denoise_psnr']:.2f} dB, the 3×3 median filter's {found['median_psnr']:.2f} dB", line
    )
    assert "beats the median filter by" in line and "Where to look: dvc_plots/index.html" in out
    assert (project / "dvc_plots/index.html").is_file()
    assert {p: p.read_bytes() for p in committed} == committed, "the workspace is untouched"
    assert sh("git status --porcelain", project).strip() == ""
