"""``python -m cae.verify [--repair]``: find corrupt objects in the DVC cache.

DVC 3.67 trusts a cache file whose mode is still read-only (0444) without hashing it,
so an object corrupted in place (bit rot, a tool running as root) goes unnoticed:
``dvc status`` stays clean and ``dvc checkout`` copies the corrupt bytes into the
workspace, recording them as matching ``dvc.lock``. This command hashes every object
under ``.dvc/cache/files/md5/`` (each is named by the MD5 of its content) and every
workspace output that ``dvc.lock`` says is one of the corrupt objects.

A cache object must be a regular file: a symbolic link, FIFO or device in its place
is reported as corrupt too, and never opened or followed. Workspace paths that
``dvc.lock`` names outside the repository (absolute, ``..``, or through a link) are
ignored.

With ``--repair`` it deletes the corrupt objects and the workspace copies made from
them (a link is deleted itself, never what it points to; no mode is changed);
``dvc status`` then reports them missing and ``dvc repro`` (or ``dvc pull`` from a
remote) restores them. Exit status: 0 all good (or repaired), 1 corruption found,
2 an unreadable dvc.lock or a file that could not be deleted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from cae.config import MAX_LOCK_BYTES, read_yaml
from cae.errors import CaeError
from cae.io import open_regular, remove_entry, within

CACHE = Path(".dvc/cache/files/md5")
MAX_LISTING_BYTES = 64 << 20  # a directory's listing (``<md5>.dir``): JSON, about 100 bytes per file


def md5_of(path: Path) -> str | None:
    """The MD5 of ``path`` if it is a regular file itself (a link is not followed), else None."""
    fd = open_regular(path)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _kind(path: Path) -> str:
    """What ``path`` is, when it is not a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "gone"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a folder" if stat.S_ISDIR(mode) else "not a regular file"


def corrupt_objects(cache: Path = CACHE) -> dict[str, Path]:
    """``{expected md5: object path}`` for every object whose content does not match its
    name, or that is not a regular file (a link in a prefix folder's place is keyed by the prefix)."""
    bad: dict[str, Path] = {}
    if not cache.is_dir():
        return bad
    for prefix in sorted(p for p in cache.iterdir() if len(p.name) == 2):
        if prefix.is_symlink():
            bad[prefix.name] = prefix
            continue
        if not prefix.is_dir():
            continue
        for path in sorted(prefix.iterdir()):
            expected = prefix.name + path.name.removesuffix(".dir")
            if md5_of(path) != expected:
                bad[expected] = path
    return bad


def _listing(md5: str, cache: Path) -> list:
    """The entries of a directory's listing in the cache, or [] if it cannot be read (the
    listing itself is then reported as an object)."""
    fd = open_regular(cache / md5[:2] / md5[2:])
    if fd is None:
        return []
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_LISTING_BYTES + 1)
    try:
        entries = json.loads(data) if len(data) <= MAX_LISTING_BYTES else []
    except ValueError:
        return []
    return entries if isinstance(entries, list) else []


def _locked_files(lock: Path, cache: Path) -> Iterator[tuple[Path, str]]:
    """``(workspace path, md5)`` of every file output in ``lock``, directories expanded."""
    content = read_yaml(lock, max_bytes=MAX_LOCK_BYTES, error=CaeError) if lock.is_file() else None
    stages = content.get("stages") if isinstance(content, dict) else None
    for stage in stages.values() if isinstance(stages, dict) else []:
        outs = stage.get("outs") if isinstance(stage, dict) else None
        for out in outs if isinstance(outs, list) else []:
            if not isinstance(out, dict) or not isinstance(out.get("path"), str):
                continue
            md5, path = out.get("md5"), Path(out["path"])
            if not isinstance(md5, str):
                continue
            if not md5.endswith(".dir"):
                yield path, md5
                continue
            for entry in _listing(md5, cache):
                if (
                    isinstance(entry, dict)
                    and isinstance(entry.get("relpath"), str)
                    and isinstance(entry.get("md5"), str)
                ):
                    yield path / entry["relpath"], entry["md5"]


def corrupt_outputs(bad: dict[str, Path], lock: Path = Path("dvc.lock"), cache: Path = CACHE) -> list[Path]:
    """Workspace outputs recorded as a corrupt object whose content does not match: a
    regular file with other content, or a link or other file in its place (not followed).
    Paths outside the repository (the current folder) are never looked at."""
    found = []
    for path, md5 in _locked_files(lock, cache):
        if md5 not in bad or path.is_absolute() or not within(path.parent, ".") or not os.path.lexists(path):
            continue  # the file itself may be a link (checked, never followed); its folder must be inside
        if path.is_symlink() or md5_of(path) != md5:
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cae.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--repair", action="store_true", help="delete what is corrupt so DVC restores it")
    args = parser.parse_args(argv)
    try:
        bad = corrupt_objects()
        outputs = corrupt_outputs(bad)
    except CaeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for md5, path in bad.items():
        is_file = path.is_file() and not path.is_symlink()
        why = f"content is not {md5}" if is_file else f"{_kind(path)}, not a cache object"
        print(f"corrupt cache object {path} ({why})")
    for path in outputs:
        print(f"corrupt workspace output {path} (checked out from a corrupt object)")
    if not bad:
        print(f"{CACHE}: every object matches its hash")
        return 0
    if not args.repair:
        print("rerun with --repair to delete them, then `dvc repro` (or `dvc pull`) restores them")
        return 1
    failed = 0
    for path in [*bad.values(), *outputs]:
        try:
            remove_entry(path)  # the file or link itself: no chmod, nothing followed
        except FileNotFoundError:
            pass
        except OSError as exc:
            print(f"error: {path}: cannot delete ({exc.strerror or exc})", file=sys.stderr)
            failed += 1
    if failed:
        return 2
    print("deleted; now run `dvc repro` (or `dvc pull` from a remote) to restore them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
