"""Smoke test of benchmarks/train_bench.py on the bundled sample: tiny, no timing asserted."""

import json

from conftest import load_benchmark


def _bench():
    return load_benchmark("train_bench")


def test_benchmark_measures_both_ways_and_the_time_to_a_loss(tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = _bench().main(
        [
            "--images",
            "256",
            "--rounds",
            "1",
            "--epochs-per-fit",
            "2",
            "--presets",
            "fast",
            "--target",
            "0.69",
            "--check-every",
            "1",
            "--max-epochs",
            "3",
            "--skip-dvc",
            "--json",
            str(out),
        ]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    rates = results["throughput"]
    assert set(rates) == {"reference (fit on NumPy arrays)", "project (train_autoencoder)"}
    assert all(rate > 0 for rate in rates.values())
    assert set(results["time_to_target"]) == {"reference setup", "preset fast"}
    reached = [t for t in results["time_to_target"].values() if t is not None]
    assert reached and all(t > 0 for t in reached), "BCE 0.69 is below a fresh model's ~0.69 after a few steps"
    printed = capsys.readouterr().out
    assert "× the reference way" in printed and "1000 validation images" in printed
