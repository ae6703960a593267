"""DVC's run cache on every stage: an experiment rerun with params already run is restored
from the cache (the stage code does not run) with the same bytes as the first time.

DVC turns the run cache off for a stage with an uncached output that is neither a metric
nor a plot, so every uncached output in dvc.yaml is declared under `metrics:` or `plots:`.
"""

from pathlib import Path

import pytest
import yaml
from conftest import copy_project
from project_copy import sh

REPO = Path(__file__).resolve().parents[1]
STAGES = ("train", "evaluate", "plots")
OUTPUTS = (  # every output of those stages
    "models/autoencoder.keras",
    "metrics/train.json",
    "dvclive/metrics.json",
    "dvclive/plots/metrics/train/loss.tsv",
    "dvclive/plots/metrics/eval/loss.tsv",
    "metrics/eval.json",
    "plots/psnr_by_noise.csv",
    "plots/reconstructions.png",
    "plots/denoising.png",
)


def _entries(stage, key):
    for entry in stage.get(key, []):
        yield (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))


def test_every_uncached_output_is_a_metric_or_a_plot():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        uncached = [path for path, opts in _entries(stage, "outs") if opts.get("cache") is False]
        assert not uncached, f"stage {name}: {uncached} would turn its run cache off; declare them as metrics or plots"
        for key in ("metrics", "plots"):
            for path, opts in _entries(stage, key):
                assert opts.get("cache") is False, f"stage {name}: {path} belongs in git (cache: false)"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_an_experiment_with_params_already_run_is_restored_from_the_run_cache(pipeline_done, tmp_path):
    project = copy_project(pipeline_done, tmp_path / "project")  # 1 epoch, committed

    first = sh("dvc exp run -S epochs=2", project)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first
    outputs = {path: (project / path).read_bytes() for path in OUTPUTS}

    other = sh("dvc exp run -S epochs=1", project)  # other params: the committed run's, cached too
    assert "Stage 'train' is cached - skipping run" in other
    assert (project / "models/autoencoder.keras").read_bytes() != outputs["models/autoencoder.keras"]

    again = sh("dvc exp run -S epochs=2", project)
    for stage in STAGES:
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in again, again
        assert f"Running stage '{stage}'" not in again
    assert "cae: " not in again, "no stage code ran"
    for path, data in outputs.items():
        assert (project / path).read_bytes() == data, path
