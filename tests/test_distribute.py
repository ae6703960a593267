"""`distribute`: none | mirrored | multi_worker. TF_CONFIG is validated with one clear
line; two workers on 127.0.0.1 train the same model as one process, within rounding."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_stages import error_lines, run_stage, write_params

from cae.config import parse_params
from cae.distribute import is_chief, read_tf_config
from cae.errors import CaeError, ParamsError

HERE = Path(__file__).parent
REPO = HERE.parent


def _config(index=0, workers=("127.0.0.1:1", "127.0.0.1:2")):
    return {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "TF_CONFIG (needed by distribute: multi_worker) is not set"),
        ("{not json", "is not valid JSON"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), "'cluster' must map job names to lists of 'host:port'"),
        (json.dumps({"cluster": {"worker": ["hostonly"]}, "task": {"type": "worker", "index": 0}}), "'host:port'"),
        (json.dumps({**_config(), "task": {"type": "ps", "index": 0}}), "'task' must name a job of 'cluster'"),
        (json.dumps(_config(index=2)), "task index 2 is outside the 2 'worker' address(es)"),
    ],
)
def test_bad_tf_config_is_one_clear_error(value, message):
    environ = {} if value is None else {"TF_CONFIG": value}
    with pytest.raises(CaeError) as info:
        read_tf_config(environ)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_chief_is_worker_0_unless_there_is_a_chief():
    assert is_chief(None) and is_chief(_config(0)) and not is_chief(_config(1))
    with_chief = {"cluster": {"chief": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}
    assert not is_chief(with_chief)
    assert is_chief({**with_chief, "task": {"type": "chief", "index": 0}})
    assert read_tf_config({"TF_CONFIG": json.dumps(_config(1))})["task"]["index"] == 1


def test_distribute_param_is_validated():
    assert parse_params({}).distribute == "none"
    assert parse_params({"distribute": "multi_worker"}).distribute == "multi_worker"
    with pytest.raises(ParamsError, match=r"^params.yaml: distribute: Input should be 'none', 'mirrored' or "):
        parse_params({"distribute": "horovod"})


def test_stage_without_tf_config_stops_before_any_work(tmp_path, monkeypatch):
    write_params(tmp_path, distribute="multi_worker")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    proc = run_stage("train", tmp_path, timeout=120)
    assert proc.returncode == 2
    assert error_lines(proc) == [error_lines(proc)[0]] and "TF_CONFIG" in error_lines(proc)[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_on_localhost_match_one_process(tmp_path):
    """Two MultiWorkerMirroredStrategy workers (and a MirroredStrategy over two logical
    CPUs) against the default strategy. Same seed, same data, same global batch: each
    step's gradient is summed from two halves of the batch instead of computed whole, so
    the weights agree up to float32 rounding in a different order: measured 4.5e-8 after
    2 epochs of 3 steps; the bound, 1e-5, is ~100 float32 ulps of weights of order 0.1,
    far below any real difference (one Adam step moves a weight by up to 1e-2)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    cluster = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps(_config(index, cluster))
        procs.append(
            subprocess.Popen(
                [sys.executable, str(HERE / "dist_worker.py"), "worker", str(tmp_path / f"w{index}.npz")],
                env={**env, "TF_CONFIG": tf_config},
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        )
    single = subprocess.run(
        [sys.executable, str(HERE / "dist_worker.py"), "single", str(tmp_path / "single.npz")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=240)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
    assert single.returncode == 0, single.stderr[-3000:]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]

    ref = np.load(tmp_path / "single.npz")
    weights = sorted(k for k in ref.files if k.startswith("w"))
    runs = {"mirrored (2 CPUs)": {k: ref[f"mirrored_{k}"] for k in ["loss", "val_loss", *weights]}}
    for index in range(2):
        w = np.load(tmp_path / f"w{index}.npz")
        assert int(w["replicas"]) == 2
        runs[f"worker {index}"] = {k: w[k] for k in ["loss", "val_loss", *weights]}
    assert int(ref["replicas"]) == 2
    for name, run in runs.items():
        np.testing.assert_allclose(run["loss"], ref["loss"], rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(run["val_loss"], ref["val_loss"], rtol=1e-5, err_msg=name)
        diff = max(float(np.max(np.abs(run[k] - ref[k]))) for k in weights)
        assert diff < 1e-5, f"{name}: weights differ by up to {diff}"
        print(f"{name}: max weight difference {diff:.2e}")
    for k in weights:  # the two workers hold the same (mirrored) weights, bit for bit
        assert runs["worker 0"][k].tobytes() == runs["worker 1"][k].tobytes()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_train_stage_as_two_workers_only_the_chief_writes(tmp_path):
    """`python -m cae.stages.train` with `distribute: multi_worker` on two "hosts"
    (two directories, each with the same prepared data): both train, worker 0 writes."""
    from test_faults import _project

    cluster = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    hosts = []
    for i in range(2):
        (tmp_path / f"host{i}").mkdir()
        hosts.append(_project(tmp_path / f"host{i}", distribute="multi_worker"))
    for host in hosts:  # no previous outputs: see who writes
        for sub in ("models", "metrics", "dvclive"):
            shutil.rmtree(host / sub)
    procs = []
    for index, host in enumerate(hosts):
        env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TF_CONFIG": json.dumps(_config(index, cluster))}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "cae.stages.train"],
                cwd=host,
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    try:
        outputs = [proc.communicate(timeout=240)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
    assert [proc.returncode for proc in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert (hosts[0] / "models/autoencoder.keras").is_file() and (hosts[0] / "metrics/train.json").is_file()
    assert not any((hosts[1] / sub).exists() for sub in ("models", "metrics", "dvclive"))
    assert "the chief writes the outputs" in outputs[1]
