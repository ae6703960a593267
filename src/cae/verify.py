"""``python -m cae.verify [--repair]``: find corrupt objects in the DVC cache.

DVC 3.67 trusts a cache file whose mode is still read-only (0444) without hashing it,
so an object corrupted in place (bit rot, a tool running as root) goes unnoticed:
``dvc status`` stays clean and ``dvc checkout`` copies the corrupt bytes into the
workspace, recording them as matching ``dvc.lock``. This command hashes every object
under ``.dvc/cache/files/md5/`` (each is named by the MD5 of its content) and every
workspace output that ``dvc.lock`` says is one of the corrupt objects.

With ``--repair`` it deletes the corrupt objects and the workspace copies made from
them; ``dvc status`` then reports them missing and ``dvc repro`` (or ``dvc pull`` from
a remote) restores them. Exit status: 0 all good (or repaired), 1 corruption found.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

CACHE = Path(".dvc/cache/files/md5")


def md5_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def corrupt_objects(cache: Path = CACHE) -> dict[str, Path]:
    """``{expected md5: object path}`` for every object whose content does not match its name."""
    bad = {}
    for path in sorted(cache.glob("??/*")) if cache.is_dir() else []:
        if not path.is_file():
            continue
        expected = path.parent.name + path.name.removesuffix(".dir")
        if md5_of(path) != expected:
            bad[expected] = path
    return bad


def _locked_files(lock: Path, cache: Path) -> Iterator[tuple[Path, str]]:
    """``(workspace path, md5)`` of every file output in ``lock``, directories expanded."""
    import json

    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {}) if lock.is_file() else {}
    for stage in stages.values():
        for out in stage.get("outs", []):
            md5, path = out.get("md5", ""), Path(out["path"])
            if not md5.endswith(".dir"):
                yield path, md5
                continue
            listing = cache / md5[:2] / md5[2:]
            try:
                entries = json.loads(listing.read_text())
            except (OSError, ValueError):
                continue  # a missing or corrupt listing is reported as an object
            for entry in entries:
                yield path / entry["relpath"], entry["md5"]


def corrupt_outputs(bad: dict[str, Path], lock: Path = Path("dvc.lock"), cache: Path = CACHE) -> list[Path]:
    """Workspace outputs recorded as a corrupt object whose content does not match."""
    return [path for path, md5 in _locked_files(lock, cache) if md5 in bad and path.is_file() and md5_of(path) != md5]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cae.verify", description=__doc__.splitlines()[0])
    parser.add_argument("--repair", action="store_true", help="delete what is corrupt so DVC restores it")
    args = parser.parse_args(argv)
    bad = corrupt_objects()
    outputs = corrupt_outputs(bad)
    for md5, path in bad.items():
        print(f"corrupt cache object {path} (content is not {md5})")
    for path in outputs:
        print(f"corrupt workspace output {path} (checked out from a corrupt object)")
    if not bad:
        print(f"{CACHE}: every object matches its hash")
        return 0
    if not args.repair:
        print("rerun with --repair to delete them, then `dvc repro` (or `dvc pull`) restores them")
        return 1
    for path in [*bad.values(), *outputs]:
        path.chmod(0o644)
        path.unlink()
    print("deleted; now run `dvc repro` (or `dvc pull` from a remote) to restore them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
