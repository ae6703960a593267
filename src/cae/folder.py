"""``dataset: folder``: a directory of your own images as the raw data set.

The folder holds PNG, JPEG, BMP or TIFF files, either directly (no labels: every
label is 0) or in one sub-folder per class (the sub-folder's name is the class; the
classes are numbered 0, 1, … in sorted order of their names; images may lie at any
depth below their class folder). Each image is read with :func:`cae.images.read_image`,
converted to ``folder.channels`` and brought to ``folder.size`` (``resize``: the whole
image resized; ``crop``: the largest centred region of the target's aspect ratio,
then resized), and stored as uint8. A seeded, per-class split sends
``folder.test_fraction`` of each class to the test set.

Images are read one at a time and written to disk as they come, so memory stays
bounded however large the folder is. Bad input has one defined outcome each:

* skipped, counted and named in a warning: a file that is not an image (by suffix),
  a corrupt or truncated image, an image over ``folder.max_pixels`` (a decompression
  bomb), a file or folder that cannot be read (permissions), a symbolic link that
  leads back into a folder already walked (a loop), nowhere, or out of the folder
  (links inside it are followed; nothing outside it is ever read), a FIFO, device or
  socket (never opened: reading one could block for ever);
* converted, counted in a warning: a grayscale image in a colour data set or the
  reverse;
* a one-line error naming the folder or the file: a missing folder, a folder with no
  usable image, images of different sizes when ``folder.size`` is not set, files
  directly in the folder beside class sub-folders (ambiguous labels);
* a class with a single image goes to the training set only (a warning says so).

Outputs appear complete or not at all (written in a temporary directory, then renamed).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cae import seeds
from cae.config import FolderParams
from cae.errors import CaeError, DataError
from cae.images import FORMATS, read_image, resize
from cae.io import NpyRows, NpyWriter, atomic_path, chunk_rows, save_npy, within, write_json
from cae.seeds import Stream

log = logging.getLogger("cae.folder")

CLASSES_FILE = "classes.json"
_WARN_FILES = 10  # skipped files named one by one; the rest only counted


@dataclass
class Scan:
    """The files found under the folder, with their class, and what was left out."""

    files: list[tuple[Path, int]] = field(default_factory=list)  # (path, label), sorted by path
    classes: list[str] = field(default_factory=list)  # empty: no class sub-folders
    skipped: list[tuple[Path, str]] = field(default_factory=list)


OUTSIDE = "symbolic link out of the folder (not followed)"


def _walk(top: Path, scan: Scan, seen: set[str], root: Path) -> list[Path]:
    """Image candidates below ``top`` (symbolic links inside ``root`` followed, each real
    folder once; links out of ``root`` and special files skipped)."""
    found: list[Path] = []

    def on_error(exc: OSError) -> None:
        scan.skipped.append((Path(exc.filename or top), f"folder unreadable ({exc.strerror or exc})"))

    for dirpath, dirnames, filenames in os.walk(top, onerror=on_error, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen and dirpath != str(top):  # a symbolic link back into a folder walked or to walk
            scan.skipped.append((Path(dirpath), "symbolic link loop (folder already read)"))
            dirnames[:] = []
            continue
        if not within(real, root):
            scan.skipped.append((Path(dirpath), OUTSIDE))
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if path.suffix.lower() not in FORMATS:
                scan.skipped.append((path, f"not an image file ({path.suffix or 'no suffix'})"))
            elif not path.exists():
                scan.skipped.append((path, "broken symbolic link"))
            elif not within(path, root):
                scan.skipped.append((path, OUTSIDE))
            elif not path.is_file():
                scan.skipped.append((path, "not a regular file (a FIFO, device or socket is never read)"))
            else:
                found.append(path)
    return found


def scan_folder(root: Path) -> Scan:
    """Find the images under ``root`` and their classes; :class:`DataError` if there are none."""
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise DataError(f"folder.path: {root} {what}; set folder.path in params.yaml to a folder of images")
    scan = Scan()
    seen = {os.path.realpath(root)}  # real paths of the folders walked (or to walk: the class folders)
    try:
        entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"folder.path: {root} cannot be read ({exc.strerror or exc})") from None
    outside = [p for p in entries if p.is_dir() and not within(p, root)]
    scan.skipped += [(p, OUTSIDE) for p in outside]
    subdirs = [p for p in entries if p.is_dir() and p not in outside]
    if subdirs:
        stray = [p for p in entries if not p.is_dir() and p.suffix.lower() in FORMATS]
        if stray:
            raise DataError(
                f"folder.path: {root} has class sub-folders and also images directly inside it "
                f"(e.g. {stray[0].name}); move every image into its class folder"
            )
        seen |= {os.path.realpath(sub) for sub in subdirs}
        for label, sub in enumerate(subdirs):
            scan.classes.append(sub.name)
            scan.files += [(p, label) for p in _walk(sub, scan, seen, root)]
    else:
        scan.files = [(p, 0) for p in _walk(root, scan, seen, root)]
    if not scan.files:
        kinds = ", ".join(sorted({s.lstrip(".") for s in FORMATS}))
        raise DataError(f"folder.path: {root} has no images ({kinds}){_skip_note(scan.skipped)}")
    return scan


def _skip_note(skipped: list[tuple[Path, str]]) -> str:
    return f"; {len(skipped)} file(s) skipped, e.g. {skipped[0][0]}: {skipped[0][1]}" if skipped else ""


def _centre_crop(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The largest centred region of ``pixels`` with the aspect ratio of ``size``."""
    h, w = pixels.shape[:2]
    th, tw = size
    if h * tw > w * th:  # too tall
        ch, cw = max(1, round(w * th / tw)), w
    else:
        ch, cw = h, max(1, round(h * tw / th))
    top, left = (h - ch) // 2, (w - cw) // 2
    return pixels[top : top + ch, left : left + cw]


def fit_image(pixels: np.ndarray, size: tuple[int, int], fit: str) -> np.ndarray:
    """``pixels`` (H, W, C) float in [0, 1] brought to ``size`` by ``resize`` or ``crop``."""
    if fit == "crop":
        pixels = _centre_crop(pixels, size)
    return pixels if pixels.shape[:2] == tuple(size) else resize(pixels, size)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)


def split_by_class(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Seeded per-class (train, test) indices, each sorted; and the classes with one image
    (kept in the training set only). A class of n ≥ 2 images gives
    ``round(n · test_fraction)`` of them, at least 1 and at most n − 1, to the test set."""
    train, test, single = [], [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) == 1:
            train.append(idx)
            single.append(int(c))
            continue
        n_test = min(len(idx) - 1, max(1, round(len(idx) * test_fraction)))
        perm = seeds.rng(seed, Stream.FOLDER_SPLIT, int(c)).permutation(idx)
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test or [np.zeros(0, np.int64)])), single


def write_folder_dataset(cfg: FolderParams, out_dir: Path) -> dict:
    """Read the folder ``cfg.path`` into ``out_dir`` (x_train, y_train, x_test, y_test .npy
    and ``classes.json``), as :func:`cae.data.write_raw` would write them; return a summary."""
    root = Path(cfg.path or "").expanduser()
    if not cfg.path:
        raise DataError("folder.path: not set; with dataset: folder it must name a folder of images")
    scan = scan_folder(root)
    if len(scan.classes) > 256:
        raise DataError(f"folder.path: {root} has {len(scan.classes)} class folders; at most 256 are supported")
    size: tuple[int, int] | None = (cfg.size[0], cfg.size[1]) if cfg.size else None  # FolderParams: [height, width]
    skipped, converted = list(scan.skipped), 0
    labels: list[int] = []
    first: tuple[Path, tuple[int, int]] | None = None
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tmp-folder-", dir=out_dir.parent) as work:
        pixels_file = Path(work) / "pixels.u8"
        with open(pixels_file, "wb") as sink:
            for path, label in scan.files:
                try:
                    picture = read_image(
                        path, cfg.channels, convert=True, max_pixels=cfg.max_pixels, limit_name="folder.max_pixels"
                    )
                except CaeError as exc:  # ImageError: unreadable, corrupt, too large, …
                    skipped.append((path, str(exc)))
                    continue
                hw = picture.pixels.shape[:2]
                if not cfg.size:  # every image must have the first one's size
                    if first is None:
                        first = (path, hw)
                    elif hw != first[1]:
                        raise DataError(
                            f"{path}: {hw[0]}×{hw[1]} pixels, but {first[0]} has {first[1][0]}×{first[1][1]}; "
                            "images of different sizes need folder.size: [height, width] in params.yaml"
                        )
                    size = hw
                assert size is not None, "folder.size, or the first image's size"
                converted += picture.converted
                sink.write(to_uint8(fit_image(picture.pixels, size, cfg.fit)).tobytes())
                labels.append(label)
        _report(root, len(scan.files) + len(scan.skipped), skipped, converted, cfg.channels)
        if len(labels) < 2:
            raise DataError(
                f"folder.path: {root}: {len(labels)} usable image(s), at least 2 needed{_skip_note(skipped)}"
            )
        assert size is not None, "at least two images were read"
        y = np.asarray(labels, dtype=np.uint8)
        train, test, single = split_by_class(y, cfg.test_fraction, cfg.seed)
        if not len(test):
            raise DataError(f"folder.path: {root}: no test images (every class has a single image)")
        for c in single:
            log.warning("class %s has one image: it goes to the training set only", scan.classes[c])
        shape = (*size, cfg.channels)
        pixels = NpyRows.headerless(pixels_file, (len(labels), *shape), np.uint8)
        with atomic_path(out_dir, directory=True) as tmp:
            for split, idx in (("train", train), ("test", test)):
                writer = NpyWriter(tmp / f"x_{split}.npy", (len(idx), *shape), np.uint8)
                try:
                    step = chunk_rows(shape, 1)
                    for start in range(0, len(idx), step):
                        part = idx[start : start + step]
                        writer[start : start + len(part)] = pixels[part]
                finally:
                    writer.close()
                save_npy(tmp / f"y_{split}.npy", y[idx])
            summary = {
                "classes": scan.classes,
                "size": list(size),
                "channels": cfg.channels,
                "train_images": len(train),
                "test_images": len(test),
                "skipped": len(skipped),
                "converted": converted,
            }
            write_json(tmp / CLASSES_FILE, summary)
    return summary


def _kind(reason: str) -> str:
    """A skipped file's reason, as a category for the summary line."""
    for words, kind in (
        ("limit", "over folder.max_pixels"),
        ("loop", "symbolic link loop"),
        ("out of the folder", "symbolic link out of the folder"),
        ("not an image file", "not an image file"),
        ("unreadable", "unreadable or corrupt"),
        ("corrupt", "unreadable or corrupt"),
    ):
        if words in reason:
            return kind
    return reason.split(" (")[0]


def _report(root: Path, total: int, skipped: list[tuple[Path, str]], converted: int, channels: int) -> None:
    for path, reason in skipped[:_WARN_FILES]:
        log.warning("skipped %s: %s", path, reason)
    if len(skipped) > _WARN_FILES:
        log.warning("… and %d more skipped", len(skipped) - _WARN_FILES)
    if skipped:
        kinds = Counter(_kind(reason) for _, reason in skipped)
        log.warning(
            "skipped %d of %d entries under %s: %s",
            len(skipped),
            total,
            root,
            ", ".join(f"{n} {k}" for k, n in kinds.most_common()),
        )
    if converted:
        log.warning(
            "converted %d image(s) to %s (folder.channels: %d)",
            converted,
            "grayscale" if channels == 1 else "RGB",
            channels,
        )
