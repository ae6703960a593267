"""End to end: the real `dvc repro` and `dvc exp run` on mnist_sample, in a scratch git repo.

This is the test a user's first five minutes depend on: the pipeline runs from a
fresh checkout, reruns nothing when nothing changed, reruns only what a param
touches, reproduces byte for byte, and lists experiments with their metrics.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "data", "models", "cache", "tmp", "__pycache__", "*.egg-info", ".pytest_cache", ".tmp-*"
)
EVAL_KEYS = {"denoise_psnr", "denoise_ssim", "noisy_psnr", "noisy_ssim", "recon_psnr", "recon_ssim", "recon_bce",
             "test_images"}  # fmt: skip

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def sh(cmd, cwd, timeout=600):
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
        "DVC_NO_ANALYTICS": "1",
    }  # fmt: skip
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, shell=True)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline") / "project"
    shutil.copytree(REPO, root, ignore=IGNORE)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params.update(dataset="mnist_sample", epochs=2, batch_size=128)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git init -q -b main && git add -A && git commit -q -m init", root)
    return root


def read_metrics(root):
    return {p.name: json.loads(p.read_text()) for p in sorted((root / "metrics").glob("*.json"))}


def test_repro_then_noop_then_force_is_byte_identical_then_experiment(project):
    out = sh("dvc repro", project)
    for stage in ("download", "noisy_pairs", "train", "evaluate", "plots"):
        assert f"Running stage '{stage}'" in out
    for path in (
        "data/raw/x_train.npy", "data/prepared/x_test_noisy.npy", "models/autoencoder.keras",
        "plots/reconstructions.png", "plots/denoising.png", "dvclive/plots/metrics/train/loss.tsv",
        "dvclive/plots/metrics/eval/loss.tsv", "dvc.lock",
    ):  # fmt: skip
        assert (project / path).is_file(), path
    metrics = read_metrics(project)
    assert set(metrics["eval.json"]) == EVAL_KEYS
    assert set(metrics["train.json"]) == {"loss", "val_loss", "epochs", "train_images"}
    assert set(metrics["train_timing.json"]) == {"seconds", "images_per_second"}
    for values in metrics.values():
        assert all(math.isfinite(v) for v in values.values())
    assert metrics["eval.json"]["test_images"] == 1000
    assert metrics["train.json"] == {**metrics["train.json"], "epochs": 2, "train_images": 3600}
    assert len((project / "dvclive/plots/metrics/train/loss.tsv").read_text().splitlines()) == 3

    # Nothing changed: nothing reruns.
    assert "Data and pipelines are up to date" in sh("dvc repro", project)
    assert "up to date" in sh("dvc status", project)
    sh("git add -A && git commit -q -m results", project)

    # Forced rerun: the same bytes (timing is not a stage output, so dvc.lock is unchanged too).
    lock = (project / "dvc.lock").read_bytes()
    before = read_metrics(project)
    sh("dvc repro -f", project)
    assert (project / "dvc.lock").read_bytes() == lock
    after = read_metrics(project)
    for name in ("train.json", "eval.json"):
        assert after[name] == before[name], name
    assert "up to date" in sh("dvc status", project)
    sh("git checkout -- metrics/train_timing.json", project)

    # A tracked experiment: only train and what follows rerun.
    out = sh("dvc exp run -S epochs=1 -n one-epoch", project)
    assert "Stage 'download' didn't change, skipping" in out
    assert "Stage 'noisy_pairs' didn't change, skipping" in out
    for stage in ("train", "evaluate", "plots"):
        assert f"Running stage '{stage}'" in out
    shown = json.loads(sh("dvc exp show --json", project))
    exps = [e for rev in shown for e in (rev.get("experiments") or [])]
    runs = [r for e in exps for r in e.get("revs", [])]
    one = [r for r in runs if r.get("name") == "one-epoch"]
    assert one, f"experiment not listed: {json.dumps(shown)[:2000]}"
    data = one[0]["data"]
    assert data["params"]["params.yaml"]["data"]["epochs"] == 1
    exp_metrics = data["metrics"]
    assert exp_metrics["metrics/train.json"]["data"]["epochs"] == 1
    assert set(exp_metrics["metrics/eval.json"]["data"]) == EVAL_KEYS

    # Comparing runs: metrics diff against the last commit, plots rendered.
    diff = json.loads(sh("dvc metrics diff --json", project))
    assert "metrics/train.json" in diff
    sh("dvc plots show -o rendered", project)
    assert (project / "rendered/index.html").is_file()
