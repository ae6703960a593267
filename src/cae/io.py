"""Atomic file and directory writes, and deterministic JSON.

Every output of a stage is written under a temporary name in the same directory and
renamed into place only when complete, so an interrupted stage never leaves a
half-written file for DVC to cache or for a later stage to read.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cae.errors import CaeError

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


def read_arrays(
    in_dir: str | os.PathLike, names: tuple[str, ...] | list[str], *, hint: str, mmap: bool = False
) -> dict[str, np.ndarray]:
    """Load ``name.npy`` for each name from ``in_dir``; :class:`CaeError` names a bad file.

    ``hint`` says how to produce the directory, e.g. ``"run `dvc repro download`"``.
    """
    in_dir = Path(in_dir)
    if not in_dir.is_dir():
        raise CaeError(f"{in_dir}: not found; {hint}")
    out = {}
    for name in names:
        path = in_dir / f"{name}.npy"
        if not path.is_file():
            raise CaeError(f"{path}: not found; {hint}")
        try:
            out[name] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CaeError(f"{path}: unreadable or corrupt ({exc}); {hint}") from None
    return out
