"""Sharing and integrity of DVC-tracked data and models: push/pull through a local and
an S3-compatible remote (a fresh clone pulls, recomputes nothing), and corrupt objects
in the DVC cache (what DVC 3.67 detects, what `python -m cae.verify` adds)."""

import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import copy_project
from project_copy import run, sh

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

MODEL = "models/autoencoder.keras"
SHARED = [MODEL, "data/prepared/x_train.npy", "data/raw/x_test.npy", "metrics/eval.json", "plots/denoising.png"]


def _lock_md5(root, path):
    import yaml

    for stage in yaml.safe_load((root / "dvc.lock").read_text())["stages"].values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out["md5"]
    raise KeyError(path)


def _round_trip(project, tmp_path, url, setup=""):
    """Push from ``project`` to ``url``; a fresh clone pulls and finds nothing to recompute."""
    sh(f"dvc remote add -d shared {url} {setup}", project)
    sh("git add .dvc/config && git commit -q -m 'shared remote'", project)
    out = sh("dvc push", project, timeout=180)
    assert "pushed" in out, out
    clone = tmp_path / "clone"
    sh(f"git clone -q {project} {clone}", tmp_path)
    assert not (clone / MODEL).exists()
    sh("dvc pull", clone, timeout=180)
    for path in SHARED:
        assert (clone / path).read_bytes() == (project / path).read_bytes(), path
    assert "Data and pipelines are up to date" in sh("dvc status", clone)
    out = sh("dvc repro", clone, timeout=180)
    assert "Data and pipelines are up to date" in out and "Running stage" not in out, out
    return clone


def test_local_remote_round_trip(pipeline_done, tmp_path):
    project = copy_project(pipeline_done, tmp_path / "project")
    _round_trip(project, tmp_path, tmp_path / "remote")
    assert list((tmp_path / "remote/files/md5").glob("??/*")), "the remote holds the objects"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3 server on 127.0.0.1, with fake credentials in the environment."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    pytest.importorskip("dvc_s3", reason="dvc-s3 is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"moto's S3 server did not start on 127.0.0.1:{port}")
                time.sleep(0.2)
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="cae-shared")
        yield endpoint
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)


def test_s3_remote_round_trip(pipeline_done, tmp_path, s3_server):
    project = copy_project(pipeline_done, tmp_path / "project")
    _round_trip(
        project, tmp_path, "s3://cae-shared/store", setup=f"&& dvc remote modify shared endpointurl {s3_server}"
    )
    import boto3

    keys = boto3.client("s3", endpoint_url=s3_server).list_objects_v2(Bucket="cae-shared")["KeyCount"]
    assert keys > 0


def _corrupt(path, keep_mode):
    """Overwrite a cache object with garbage, as bit rot or a tool running as root would
    (``keep_mode``: still read-only) or as a user must (made writable first)."""
    mode = path.stat().st_mode
    path.chmod(0o644)
    path.write_bytes(b"garbage" * 100)
    if keep_mode:
        path.chmod(stat.S_IMODE(mode))


def test_corrupt_cache_object_dvc_detects_when_its_mode_changed(pipeline_done, tmp_path):
    project = copy_project(pipeline_done, tmp_path / "project")
    md5 = _lock_md5(project, MODEL)
    obj = project / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    _corrupt(obj, keep_mode=False)
    status = sh("dvc status train", project)
    assert "not in cache:" in status and MODEL in status, status  # DVC hashed it, dropped it
    assert not obj.exists()
    out = sh("dvc repro train", project, timeout=240)  # reruns train: the same bytes again
    assert "Running stage 'train'" in out
    assert sh(f"md5sum {obj} {MODEL}", project).split()[::2] == [md5, md5]
    assert "up to date" in sh("dvc status train", project)


def test_corrupt_read_only_cache_object_needs_cae_verify(pipeline_done, tmp_path):
    project = copy_project(pipeline_done, tmp_path / "project")
    md5 = _lock_md5(project, MODEL)
    obj = project / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    _corrupt(obj, keep_mode=True)
    # What DVC 3.67 does: it trusts a read-only cache file without hashing it ...
    assert "up to date" in sh("dvc status", project)
    (project / MODEL).unlink()
    sh(f"dvc checkout {MODEL}", project)
    assert (project / MODEL).read_bytes() == b"garbage" * 100  # ... checks out the garbage ...
    assert "up to date" in sh("dvc status", project)  # ... and still calls it up to date.

    code, out = run("python -m cae.verify", project)
    assert code == 1 and f"corrupt cache object {obj.relative_to(project)}" in out and MODEL in out, out
    assert "deleted" in sh("python -m cae.verify --repair", project)
    assert "not in cache:" in sh("dvc status train", project)
    sh("dvc repro", project, timeout=240)
    assert sh(f"md5sum {obj} {MODEL}", project).split()[::2] == [md5, md5]
    assert "every object matches its hash" in sh("python -m cae.verify", project)
    assert "up to date" in sh("dvc status", project)
