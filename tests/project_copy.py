"""Shared by the tests that run the real pipeline: copy the repository into a scratch
git repository, shrink its params, and run shell commands there safely."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".cae",
    "data",
    "models",
    "cache",
    "tmp",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".tmp-*",
    "config.local",  # a checkout's own DVC settings (e.g. a shared cache): the copy starts afresh
)


def env() -> dict[str, str]:
    """The environment of :func:`sh`: the venv's bin first on PATH and a git identity."""
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "DVC_NO_ANALYTICS": "1",
    }


def start(cmd: str, cwd: Path, **popen) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (end it whole with ``os.killpg``)."""
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env(),
        shell=True,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **popen,
    )


def run(cmd: str, cwd: Path, timeout: float = 600, **popen) -> tuple[int, str]:
    """Run ``cmd`` with :func:`env`; return its exit status and stdout+stderr.

    The command gets its own process group, killed whole if it runs past ``timeout``,
    so no dvc or stage process is left running behind a failed test.
    """
    proc = start(cmd, cwd, **popen)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"{cmd} ran past {timeout} s:\n{out[-3000:]}") from None
    return proc.returncode, out


def sh(cmd: str, cwd: Path, timeout: float = 600, **popen) -> str:
    """:func:`run` ``cmd`` and assert it succeeded; return stdout+stderr."""
    code, out = run(cmd, cwd, timeout, **popen)
    assert code == 0, f"{cmd} failed ({code}):\n{out}"
    return out


def _merge(into: dict, keys: dict) -> None:
    for key, value in keys.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def set_params(root: Path, **keys) -> None:
    """Edit ``root``/params.yaml: a key set to a dict updates that section key by key
    (``model={"preset": "wide"}`` keeps the other ``model`` keys); any other value replaces."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    _merge(params, keys)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def tiny_project(dest: Path, epochs: int, **top_level) -> Path:
    """Copy the repository to ``dest`` as a fresh git repository with tiny params:
    mnist_sample, ``epochs`` epochs, one extra noise level, two cheap baselines, and
    the one-class anomaly study on two classes for one epoch, the embeddings for one epoch."""
    shutil.copytree(REPO, dest, ignore=IGNORE)
    set_params(
        dest,
        dataset="mnist_sample",
        epochs=epochs,
        **top_level,
        noise={"eval_levels": [0.2]},
        baselines={"methods": ["median", "gaussian"], "subset": 100, "val_images": 20},
        anomaly={"classes": [0, 1], "epochs": 1, "examples": 3, "roc_points": 20},
        latent={"epochs": 1, "plot_points": 200, "samples": 10, "interpolation_pairs": 2},
    )
    sh("git init -q -b main && git add -A && git commit -q -m init", dest)
    return dest
