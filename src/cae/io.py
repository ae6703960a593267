"""Atomic file and directory writes, and deterministic JSON.

Every output of a stage is written under a temporary name in the same directory and
renamed into place only when complete, so an interrupted stage never leaves a
half-written file for DVC to cache or for a later stage to read.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import json
import math
import os
import shutil
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cae.errors import CaeError
from cae.paths import HINT_MODEL

TMP_PREFIX = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_sibling(path: Path, directory: bool) -> Path:
    """A new temporary file or directory beside ``path``, with the usual permissions
    (``mkstemp`` would make it private to the owner)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{TMP_PREFIX}{path.name}."
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
        tmp.chmod(0o777 & ~_umask())
        return tmp
    fd, name = tempfile.mkstemp(prefix=prefix, dir=path.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success rename it to ``path``.

    With ``directory=True`` the temporary path is a fresh empty directory and any
    existing ``path`` directory is replaced whole. On any exception the temporary is
    removed and ``path`` is left exactly as it was.
    """
    path = Path(path)
    try:
        tmp = _tmp_sibling(path, directory)
    except OSError as exc:
        raise CaeError(f"{path}: cannot write here ({_blocker(path) or exc.strerror or exc})") from exc
    try:
        yield tmp
        if directory:
            replace_dir(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        _remove(tmp)
        # Name the output itself: a write nested in another one (to a temporary name)
        # leaves the translation to the outer one.
        full = None if isinstance(exc, CaeError) or path.name.startswith(TMP_PREFIX) else _disk_full(exc)
        if full is not None:
            raise CaeError(
                f"no space left / file too large writing {path} ({full.strerror or full}); "
                "free some disk space (or raise the quota or file-size limit) and rerun; "
                "the previous output is unchanged"
            ) from exc
        raise


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def _disk_full(exc: BaseException | None) -> OSError | None:
    """The out-of-space ``OSError`` behind ``exc`` (libraries often wrap it), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _blocker(path: Path) -> str | None:
    """Name the first ancestor of ``path`` that is a file, not a directory."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a directory"
    return None


def replace_dir(src: Path, dst: Path) -> None:
    """Move directory ``src`` to ``dst``, replacing any existing ``dst`` whole."""
    old = None
    if dst.exists() or dst.is_symlink():
        old = dst.with_name(f"{TMP_PREFIX}{dst.name}.old-{os.getpid()}")
        _remove(old)
        os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        if old is not None:
            os.replace(old, dst)
        raise
    if old is not None:
        _remove(old)


# --- links and special files: never followed out of a tree, never modified through ----


def open_regular(path: str | os.PathLike) -> int | None:
    """A read-only descriptor of ``path`` if it is a regular file itself, else None: a
    symbolic link is not followed, and a FIFO, device or folder is never opened."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link since the check
            return None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced by something else since the check
        os.close(fd)
        return None
    return fd


def within(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether ``path``, every link on the way resolved, lies inside folder ``root``."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def remove_entry(path: str | os.PathLike) -> None:
    """Delete the file or link ``path`` itself, never what a link points to; its folder is
    opened without following a link in its place, so a swapped-in link is refused (ELOOP)."""
    path = Path(path)
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.unlink(path.name, dir_fd=folder)
    finally:
        os.close(folder)


# --- model files: a .keras archive is checked before Keras opens it -----------------

MAX_ARCHIVE_ENTRIES = 1000  # a saved model holds 3 (config, metadata, weights) plus assets
MAX_ARCHIVE_CONFIG_BYTES = 8 << 20  # config.json / metadata.json, parsed whole by Keras (a few KB here)
MAX_ARCHIVE_BYTES = 2 << 30  # everything uncompressed: Keras reads the weights into memory
_END_OF_CENTRAL_DIRECTORY = b"PK\x05\x06"


def check_model_file(path: str | os.PathLike, hint: str = HINT_MODEL) -> None:
    """A one-line :class:`CaeError` unless ``path`` is a plausible ``.keras`` archive
    (:func:`check_keras_archive`); a missing file names ``hint``, the way to make it.
    Stages call it before importing TensorFlow, so a missing model fails at once."""
    path = Path(path)
    if not path.is_file():
        raise CaeError(f"{path}: no trained model here; {hint}")
    check_keras_archive(path)


def check_keras_archive(path: str | os.PathLike) -> None:
    """Refuse, with one :class:`CaeError` line and before Keras reads it, a ``.keras`` file
    that is not a zip archive of a plausible model: too many entries, an oversized
    ``config.json`` or ``metadata.json``, or too many bytes uncompressed. Only the zip's
    directory is read (its declared sizes bind: :mod:`zipfile` reads no further)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - (1 << 16) - 22))  # the end record and its comment (at most 64 KiB)
            tail = f.read()
        end = tail.rfind(_END_OF_CENTRAL_DIRECTORY)
        if end < 0 or len(tail) - end < 22:
            raise CaeError(f"{path}: not a Keras model file (.keras: a zip archive)")
        entries, directory_bytes = struct.unpack("<HI", tail[end + 10 : end + 16])
        if entries > MAX_ARCHIVE_ENTRIES or directory_bytes > MAX_ARCHIVE_ENTRIES * 1024:
            raise CaeError(f"{path}: a model archive with too many entries (at most {MAX_ARCHIVE_ENTRIES})")
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise CaeError(f"{path}: not a readable Keras model file ({exc})") from None
    if len(infos) > MAX_ARCHIVE_ENTRIES:
        raise CaeError(f"{path}: a model archive with too many entries (at most {MAX_ARCHIVE_ENTRIES})")
    for info in infos:
        if info.filename in ("config.json", "metadata.json") and info.file_size > MAX_ARCHIVE_CONFIG_BYTES:
            raise CaeError(
                f"{path}: its {info.filename} is {info.file_size:,} bytes, over the limit of "
                f"{MAX_ARCHIVE_CONFIG_BYTES:,}: not a model this project saved"
            )
    total = sum(info.file_size for info in infos)
    if total > MAX_ARCHIVE_BYTES:
        raise CaeError(f"{path}: {total:,} bytes uncompressed, over the limit of {MAX_ARCHIVE_BYTES:,}")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"refusing to write a non-finite number ({value}) to JSON")
        return value
    return value


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as sorted, indented JSON, atomically; same object → same bytes."""
    text = json.dumps(_clean(obj), indent=2, sort_keys=True) + "\n"
    write_bytes(path, text.encode())


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` without pickles: the ``.npy`` format is deterministic for plain arrays."""
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


def write_arrays(out_dir: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write ``{name: array}`` as ``name.npy`` files into ``out_dir``, replacing it whole."""
    with atomic_path(out_dir, directory=True) as tmp:
        for name, array in arrays.items():
            save_npy(tmp / f"{name}.npy", array)


# --- streaming: arrays larger than memory, a few rows at a time -----------------------
#
# A memory map (``np.load(mmap_mode="r")``, ``open_memmap``) would also avoid loading a
# whole array, but every page it touches counts in the process's resident set until the
# mapping goes: a pass over a 2 GB file leaves 2 GB resident. Positioned reads and writes
# (``os.pread`` / ``os.pwrite``) keep only the rows asked for, so peak memory stays
# bounded however large the data set grows. Same ``.npy`` format, same bytes.


def _rows_key(key, n: int) -> tuple[int, int] | np.ndarray:
    """A row index as (start, stop) for a contiguous slice, else as an int array."""
    if isinstance(key, (int, np.integer)):
        key = int(key) + (n if key < 0 else 0)
        if not 0 <= key < n:
            raise IndexError(f"row {key} out of range for {n} rows")
        return np.array([key])
    if isinstance(key, slice):
        start, stop, step = key.indices(n)
        if step == 1:
            return start, max(start, stop)
        return np.arange(start, stop, step)
    idx = np.asarray(key)
    if idx.dtype == bool:
        idx = np.flatnonzero(idx)
    idx = idx.astype(np.int64, copy=False).reshape(-1)
    idx = np.where(idx < 0, idx + n, idx)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"row index out of range for {n} rows")
    return idx


class NpyRows:
    """The rows of a ``.npy`` file, read on demand (``rows[i]``, ``rows[a:b]``, ``rows[idx]``).

    Looks like a read-only array to code that only takes ``len``, ``shape``, ``dtype``
    and row indexing (Keras' batching, :func:`np.asarray` of a slice); memory use is
    that of the rows returned. ``rows[i]`` keeps the leading axis (one row, shape (1, …)).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        if fortran or dtype.hasobject or not shape:
            raise ValueError(f"{self.path}: not a C-ordered array of plain values with rows")
        self.shape, self.dtype, self.ndim = tuple(shape), dtype, len(shape)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        need = self.offset + self.row_bytes * shape[0]
        if os.path.getsize(self.path) < need:
            raise ValueError(f"file is truncated ({os.path.getsize(self.path)} of {need} bytes)")
        self._fd = os.open(self.path, os.O_RDONLY)

    @classmethod
    def headerless(cls, path: str | os.PathLike, shape: tuple[int, ...], dtype) -> NpyRows:
        """The rows of a raw file of C-ordered values without a ``.npy`` header."""
        rows = object.__new__(cls)
        rows.path, rows.offset = Path(path), 0
        rows.shape, rows.dtype, rows.ndim = tuple(shape), np.dtype(dtype), len(shape)
        rows.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * rows.dtype.itemsize
        rows._fd = os.open(rows.path, os.O_RDONLY)
        return rows

    def __del__(self):
        with contextlib.suppress(Exception):
            os.close(self._fd)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return self.row_bytes * self.shape[0]

    def _read(self, start: int, count: int) -> bytes:
        data = os.pread(self._fd, self.row_bytes * count, self.offset + self.row_bytes * start)
        if len(data) != self.row_bytes * count:
            raise OSError(f"{self.path}: short read")
        return data

    def __getitem__(self, key) -> np.ndarray:
        rows = _rows_key(key, len(self))
        if isinstance(rows, tuple):
            start, stop = rows
            return np.frombuffer(bytearray(self._read(start, stop - start)), self.dtype).reshape(
                stop - start, *self.shape[1:]
            )
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8) if out.size else out
        # consecutive indices are read together
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for run in np.split(np.arange(len(rows)), breaks):
            if len(run):
                data = self._read(int(rows[run[0]]), len(run))
                flat[run[0] : run[-1] + 1] = np.frombuffer(data, np.uint8).reshape(len(run), -1)
        return out

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)


class NpyWriter:
    """A ``.npy`` file of a given shape and dtype, filled row by row (``w[a:b] = rows``,
    ``w[idx] = rows``) with positioned writes; the bytes equal ``np.save`` of the whole
    array once every row is written. ``part(j)`` writes sub-array ``j`` of a 5-D array."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, ...], dtype):
        self.path, self.shape, self.dtype = Path(path), tuple(int(s) for s in shape), np.dtype(dtype)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        with open(self.path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)  # the version np.save picks for any shape here
            self.offset = f.tell()
            f.truncate(self.offset + int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize)
        self._fd = os.open(self.path, os.O_WRONLY)
        self._base, self._rows, self._row_shape = self.offset, self.shape[0], self.shape[1:]

    def part(self, j: int) -> NpyWriter:
        sub = object.__new__(NpyWriter)
        sub.path, sub.dtype, sub._fd, sub.shape = self.path, self.dtype, self._fd, self.shape[1:]
        sub._rows, sub._row_shape = self.shape[1], self.shape[2:]
        sub._base = self._base + j * int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        return sub

    def __len__(self) -> int:
        return self._rows

    def __setitem__(self, key, values) -> None:
        row_bytes = int(np.prod(self._row_shape, dtype=np.int64)) * self.dtype.itemsize
        rows = _rows_key(key, self._rows)
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if isinstance(rows, tuple):
            start, stop = rows
            if values.shape != (stop - start, *self._row_shape):
                raise ValueError(f"{values.shape} rows for slots of {(stop - start, *self._row_shape)}")
            os.pwrite(self._fd, memoryview(values).cast("B"), self._base + row_bytes * start)
            return
        if values.shape != (len(rows), *self._row_shape):
            raise ValueError(f"{values.shape} rows for slots of {(len(rows), *self._row_shape)}")
        for row, value in zip(rows, values, strict=True):
            os.pwrite(self._fd, memoryview(value).cast("B"), self._base + row_bytes * int(row))

    def close(self) -> None:
        os.close(self._fd)


def chunk_rows(row_shape: tuple[int, ...], itemsize: int = 4, budget: int = 1 << 26) -> int:
    """How many rows of ``row_shape`` fit in ``budget`` bytes (64 MiB): the unit of streaming."""
    return max(1, budget // max(1, int(np.prod(row_shape, dtype=np.int64)) * itemsize))


# The project's arrays (data/raw, data/prepared) by name: dtype and dimensions. Images
# are (N, H, W, C): clean ones uint8, noisy ones float32 in [0, 1]; labels (N,) uint8;
# ``x_test_levels`` (levels, N, H, W, C) at the noise levels in ``test_levels``.
ARRAY_LAYOUT = (
    ("x_test_levels", np.float32, 5),
    ("test_levels", np.float32, 1),
    ("x_*_noisy", np.float32, 4),
    ("x_*", np.uint8, 4),
    ("y_*", np.uint8, 1),
)


def _layout(name: str) -> tuple[np.dtype, int] | None:
    for pattern, dtype, ndim in ARRAY_LAYOUT:
        if fnmatch.fnmatchcase(name, pattern):
            return np.dtype(dtype), ndim
    return None


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, offset of the data) from a ``.npy`` header; nothing else is read
    (NumPy caps the header's size)."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        return tuple(shape), dtype, f.tell()


def _check_npy(path: Path, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """The array's shape and dtype, checked from its header before it is loaded: plain
    numbers, the dtype and dimensions :data:`ARRAY_LAYOUT` gives ``name``, a file that
    holds every byte the header promises; float values finite (read in chunks of 16 MiB,
    so memory stays bounded). ``ValueError`` says what is wrong."""
    shape, dtype, offset = _npy_header(path)
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"holds {dtype}, not plain numbers")
    expected = _layout(name)
    if expected is not None and (dtype != expected[0] or len(shape) != expected[1]):
        raise _Layout(f"expected {expected[0]} with {expected[1]} dimensions, got {dtype} {shape}")
    nbytes = math.prod(shape) * dtype.itemsize
    size = os.path.getsize(path)
    if size < offset + nbytes:
        raise ValueError(f"file is truncated ({size:,} of {offset + nbytes:,} bytes)")
    if dtype.kind == "f" and nbytes:
        step = max(1, (1 << 24) // dtype.itemsize) * dtype.itemsize  # 16 MiB at a time
        fd = os.open(path, os.O_RDONLY)
        try:
            for start in range(0, nbytes, step):
                chunk = np.frombuffer(os.pread(fd, min(step, nbytes - start), offset + start), dtype)
                finite = np.isfinite(chunk)
                if not finite.all():
                    first = int(np.argmin(finite))
                    at = start // dtype.itemsize + first
                    raise _Layout(f"holds a non-finite value ({chunk[first]} at flat index {at})")
        finally:
            os.close(fd)
    return shape, dtype


class _Layout(ValueError):
    """A readable array of the wrong kind (not a corrupt file)."""


def _check_together(arrays: dict[str, Any], in_dir: Path, hint: str) -> None:
    """The arrays read together agree: one image shape, and as many images, noisy copies
    and labels per split (``x_S``, ``x_S_noisy``, ``y_S``; ``x_test_levels``)."""
    images = {
        n: tuple(a.shape[2:] if n == "x_test_levels" else a.shape[1:]) for n, a in arrays.items() if n[:2] == "x_"
    }
    images = {n: s for n, s in images.items() if _layout(n) is not None}
    if images:
        first, shape = next(iter(images.items()))
        for name, other in images.items():
            if other != shape:
                raise CaeError(f"{in_dir / name}.npy: images of shape {other}, but {first}.npy has {shape}; {hint}")
    lengths = {n: a.shape[1] if n == "x_test_levels" else len(a) for n, a in arrays.items() if _layout(n) is not None}
    for name, n in lengths.items():
        split = name.removeprefix("x_").removeprefix("y_").removesuffix("_noisy").removesuffix("_levels")
        if f"x_{split}" in lengths and name != "test_levels" and n != lengths[f"x_{split}"]:
            raise CaeError(
                f"{in_dir / name}.npy: {n} images or labels, but x_{split}.npy has {lengths[f'x_{split}']}; {hint}"
            )
    if "x_test_levels" in arrays and "test_levels" in arrays:
        levels, stacked = len(arrays["test_levels"]), arrays["x_test_levels"].shape[0]
        if levels != stacked:
            raise CaeError(
                f"{in_dir / 'x_test_levels'}.npy: {stacked} noise levels, but test_levels.npy lists {levels}; {hint}"
            )


def read_arrays(
    in_dir: str | os.PathLike,
    names: tuple[str, ...] | list[str],
    *,
    hint: str,
    mmap: bool = False,
    rows: bool = False,
) -> dict[str, np.ndarray]:
    """Load ``name.npy`` for each name from ``in_dir``; :class:`CaeError` names a bad file.

    ``hint`` says how to produce the directory, e.g. ``"run `dvc repro download`"``.
    ``mmap``: memory-mapped arrays; ``rows``: :class:`NpyRows`, read a few rows at a time.
    Every file is checked before it is loaded (:func:`_check_npy`: plain numbers, the
    project's dtype and dimensions for its name, finite floats, not truncated), and
    the arrays together (:func:`_check_together`), so a bad file is one line naming
    it, never an error deep inside a stage.
    """
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise CaeError(f"{in_dir}: not found; {hint}")
    out: dict[str, Any] = {}  # np.ndarray, or with ``rows`` an NpyRows (len, shape, dtype, row slices)
    for name in names:
        path = in_dir / f"{name}.npy"
        if not path.is_file():
            raise CaeError(f"{path}: not found; {hint}")
        try:
            _check_npy(path, name)
            if rows:
                out[name] = NpyRows(path)
            else:
                out[name] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except _Layout as exc:
            raise CaeError(f"{path}: {exc}; {hint}") from None
        except (ValueError, OSError, EOFError) as exc:
            raise CaeError(f"{path}: unreadable or corrupt ({exc}); {hint}") from None
    _check_together(out, in_dir, hint)
    return out
