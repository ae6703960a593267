"""benchmarks/threads_bench.py on tiny made-up data: every row measured, and a failing run named."""

import re

import numpy as np
import pytest
from conftest import load_benchmark


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_each_arrangement_is_timed_and_a_failed_run_stops_it(tmp_path, capsys):
    from cae.io import write_arrays

    x = np.random.default_rng(0).integers(0, 255, (40, 16, 16, 1), dtype=np.uint8)
    write_arrays(tmp_path / "prepared", {"x_train": x, "x_val": x[:8]})
    (tmp_path / "params.yaml").write_text("latent: {batch_size: 8}\n")
    bench = load_benchmark("threads_bench")
    argv = ["--prepared", str(tmp_path / "prepared"), "--params", str(tmp_path / "params.yaml"), "--images", "40"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    seconds = [float(s) for s in re.findall(r"([\d.]+) s", out)]
    assert len(seconds) == 2 + 3 + 3 and all(s > 0 for s in seconds), out  # rows 1-4, walls of 3 and 4
    assert "4. two side by side, one thread each" in out
    with pytest.raises(SystemExit, match="a training run failed"):
        bench.main(["--prepared", str(tmp_path / "nowhere"), "--params", str(tmp_path / "params.yaml")])
