"""notebooks/explore.ipynb: stored without outputs, and runs against a tiny real pipeline run.

The slow test copies the tiny project whose whole pipeline has run (``pipeline_done``:
mnist_sample, one epoch), then executes the notebook in a fresh kernel (nbclient, this
virtual environment's python3) from that copy and checks what it showed.
"""

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import copy_project
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from project_copy import REPO

NOTEBOOK = Path("notebooks/explore.ipynb")
CELL_TIMEOUT = 300


def test_committed_notebook_has_no_outputs_and_no_execution_counts():
    nb = nbformat.read(REPO / NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "the notebook has code cells"
    assert all(c.outputs == [] and c.execution_count is None for c in code), "strip it: nbstripout"
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_notebook_runs_on_a_tiny_pipeline_run(pipeline_done, tmp_path, monkeypatch):
    root = copy_project(pipeline_done, tmp_path / "project")

    # The kernel: this venv's (jupyter_client runs a "python" kernelspec with sys.executable).
    monkeypatch.setenv("JUPYTER_PATH", str(Path(sys.executable).parents[1] / "share" / "jupyter"))
    nb = nbformat.read(root / NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(root)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"a notebook cell failed:\n{exc}")
    seconds = time.perf_counter() - start
    print(f"notebook executed in {seconds:.1f} s")

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    markdown = [o.data["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert any("| eval.json | denoise_psnr |" in m and "| train.json | val_loss |" in m for m in markdown)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5, "2 figures of the plots stage, noise levels, latent map, anomalies"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"repository: {os.path.realpath(root)}" in text
    noise = ("absl::InitializeLog", "oneDNN", "Could not find cuda", "cuInit", "NodeDef mentions")
    assert not [n for n in noise if n in text], "TensorFlow's C++ start-up lines are held back"
    assert "dataset=mnist_sample" in text
