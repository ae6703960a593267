"""Many experiments: a grid queued with `dvc exp run --queue` and run by two celery
workers at once (`dvc queue start -j 2`); `dvc exp show` lists both with their metrics.
(Two runs keep the suite short; a 2×2 grid `-S 'epochs=1,2' -S 'batch_size=128,256'`
queues four the same way.)"""

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import copy_project
from project_copy import run, sh

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _kill_left_behind(project):
    """`dvc queue stop --kill` ends the experiments' dvc processes but not the stage they
    were running (DVC 3.67): end any process still working inside ``project``."""
    for proc in Path("/proc").iterdir():
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if proc.name.isdigit() and cwd.startswith(str(project)):
            os.kill(int(proc.name), signal.SIGKILL)


def test_queued_grid_runs_to_completion_on_two_workers(pipeline_done, tmp_path):
    project = copy_project(pipeline_done, tmp_path / "project")
    out = sh("dvc exp run --queue -S 'epochs=1,2'", project, timeout=120)
    assert out.count("Queued experiment") == 2, out
    try:
        # The workers outlive the command: keep them off its output pipe, or reading it
        # to the end would wait for the whole queue.
        log = tmp_path / "queue-start.log"
        sh(f"dvc queue start -j 2 >{log} 2>&1 </dev/null", project, timeout=120)
        assert "Started '2' new experiments task queue workers" in log.read_text()
        deadline = time.monotonic() + 600  # ~1 min on an idle 2-core machine
        while True:
            status = sh("dvc queue status", project, timeout=60)
            rows = [line.split()[-1] for line in status.splitlines()[1:] if line.strip() and "Worker" not in line]
            if len(rows) == 2 and all(s in ("Success", "Failed") for s in rows):
                break
            assert time.monotonic() < deadline, f"queue not done after 600 s:\n{status}"
            time.sleep(3)
        assert rows == ["Success"] * 2, status
    finally:
        try:
            run("dvc queue stop --kill", project, timeout=120)
        finally:
            _kill_left_behind(project)

    shown = json.loads(sh("dvc exp show --json", project, timeout=120))
    runs = [r for rev in shown for e in (rev.get("experiments") or []) for r in e.get("revs", [])]
    grid = {}
    for r in runs:
        params = r["data"]["params"]["params.yaml"]["data"]
        train = r["data"]["metrics"]["metrics/train.json"]["data"]
        evaluation = r["data"]["metrics"]["metrics/eval.json"]["data"]
        assert train["epochs"] == params["epochs"] and evaluation["test_images"] == 1000
        grid[params["epochs"]] = train["val_loss"]
    assert sorted(grid) == [1, 2], grid
    assert len(set(grid.values())) == 2, "two different runs, two different results"
    # The queue ran in temporary copies: the workspace is untouched.
    assert "up to date" in sh("dvc status", project)
