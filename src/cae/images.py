"""User images in and out, and whole-image inference with a fixed-size model.

The autoencoder takes images of one size (28×28×1 by default). This module reads a
user's PNG, JPEG, BMP or TIFF files as float32 arrays in [0, 1] with the model's
channel count, runs the model over images of any size, and writes the results back
at the original size, in the original format and bit depth:

- an image of the model's size goes through the model as is, batched with others;
- a larger or smaller one is cut into overlapping tiles of the model's size (stride
  half a tile, edges padded by reflection), and each output pixel is the mean of the
  tiles' predictions weighted by a sin² window: no seams (:func:`tiled_apply`);
- or, with ``resize=True``, it is resized to the model's size and back.

The model itself is only a function here (``predict``: a float32 batch → a batch of
the same shape), so this module imports neither Keras nor TensorFlow. Per-file
problems raise :class:`ImageError`; :func:`process` records them and carries on.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cae.errors import CaeError
from cae.io import atomic_path, within

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_BATCH_SIZE = 256
_PENDING_PIXELS = 1 << 26  # flush a batch early once its originals hold this many pixels
_GRAY_8 = {"1", "L"}
_GRAY_16 = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # "I": 16-bit PNG/TIFF as some readers open them
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's convert("L")

Predict = Callable[[np.ndarray], np.ndarray]


class ImageError(CaeError):
    """One input image cannot be read, processed or written; the others go on."""


@dataclass(frozen=True)
class Source:
    """An input image and the path of its output, relative to the output folder."""

    path: Path
    name: Path


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in FORMATS and not path.name.startswith(".")


def collect_inputs(args: Sequence[str], *, recursive: bool = False) -> list[Source]:
    """Expand files, folders and glob patterns into image sources, in order, without repeats.

    A folder contributes the images directly inside it (all levels with
    ``recursive``; outputs then keep the sub-folders); a file is taken whatever its
    suffix. A folder without images, a pattern matching none or a missing path
    raises :class:`CaeError`: a mistyped argument stops the command before any work.
    """
    sources: list[Source] = []
    seen: set[Path] = set()
    for arg in args:
        for src in _expand(arg, recursive):
            key = src.path.resolve()
            if key not in seen:
                seen.add(key)
                sources.append(src)
    return sources


def _expand(arg: str, recursive: bool) -> list[Source]:
    path = Path(arg)
    kinds = ", ".join(sorted({s.lstrip(".") for s in FORMATS}))
    if path.is_dir():
        files = sorted(p for p in path.glob("**/*" if recursive else "*") if _is_image(p))
        if not files:
            more = "" if recursive else "; add --recursive to look in its sub-folders"
            raise CaeError(f"{arg}: no images in this folder (looked for {kinds}){more}")
        return [Source(p, p.relative_to(path)) for p in files]
    if path.is_file():
        return [Source(path, Path(path.name))]
    if glob.has_magic(arg):
        matches = sorted(Path(m) for m in glob.glob(arg, recursive=True))
        files = [m for m in matches if _is_image(m)]
        if not files:
            raise CaeError(f"{arg}: the pattern matches no images ({kinds})")
        return [Source(m, Path(m.name)) for m in files]
    raise CaeError(f"{arg}: no such file or folder")


def prepare_output(path: Path, *, directory: bool) -> None:
    """Create ``path`` (a directory) or its parent, and prove it writable, else :class:`CaeError`."""
    folder = path if directory else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise CaeError(f"{path}: cannot write output here ({exc.strerror or exc})") from None


# --- reading and writing --------------------------------------------------------------


@dataclass
class Picture:
    """An image as the model sees it, plus what it takes to write it back as it came."""

    pixels: np.ndarray  # float32 (H, W, C) in [0, 1], C = the model's channels
    format: str  # Pillow format name: PNG, JPEG, BMP or TIFF
    bits: int = 8  # 8, or 16 for 16-bit grayscale
    alpha: np.ndarray | None = None  # the original alpha channel, uint8 (H, W), put back on write
    icc_profile: bytes | None = None
    converted: bool = False  # grayscale made RGB or the reverse (``convert``)


@contextlib.contextmanager
def _pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Make Pillow's decompression-bomb check use ``max_pixels`` (None: no check) and
    raise, not warn, over it."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def read_image(
    path: Path,
    channels: int,
    *,
    convert: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limit_name: str = "--max-pixels",
) -> Picture:
    """Read ``path`` for a model with ``channels`` (1: grayscale, 3: RGB).

    Palette images become grayscale or RGB by their palette; an alpha channel is
    set aside and put back on write; 16-bit grayscale keeps its depth. A grayscale
    image for an RGB model or the reverse is an :class:`ImageError` unless
    ``convert``, which converts it to the model's mode.
    """
    try:
        with _pixel_limit(max_pixels), Image.open(path) as im:
            if im.width * im.height > max_pixels:
                raise ImageError(_too_big(im.width * im.height, max_pixels, limit_name))
            if im.format not in FORMATS.values():
                raise ImageError(f"{im.format} images are not supported (PNG, JPEG, BMP or TIFF)")
            if (frames := getattr(im, "n_frames", 1)) > 1:
                raise ImageError(f"has {frames} frames; only single images are supported")
            im.load()
            return _to_picture(im, channels, convert)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_too_big(_header_pixels(path), max_pixels, limit_name)) from None
    except FileNotFoundError:
        raise ImageError("no longer exists") from None
    except UnidentifiedImageError:
        raise ImageError("unreadable: not an image in a known format, or corrupt") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, … for a bad file
        raise ImageError(f"unreadable or corrupt image ({type(exc).__name__}: {exc})") from None


def _header_pixels(path: Path) -> int | None:
    """The pixel count an image's header declares (nothing is decoded), or None."""
    try:
        with _pixel_limit(None), Image.open(path) as im:
            return im.width * im.height
    except Exception:
        return None


def _too_big(pixels: int | None, limit: int, limit_name: str) -> str:
    size = f"{pixels:,} pixels" if pixels else "too many pixels"
    return f"image has {size}, over the limit of {limit:,} ({limit_name})"


def _to_picture(im: Image.Image, channels: int, convert: bool) -> Picture:
    fmt, icc = im.format, im.info.get("icc_profile")
    assert fmt is not None, "read_image opened the file and checked its format"
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA" if im.mode == "PA" or "transparency" in im.info else "RGB")
        rgb = np.asarray(im)[..., :3]
        if (rgb == rgb[..., :1]).all():  # a gray palette is a grayscale image
            im, icc = im.convert("LA" if im.mode == "RGBA" else "L"), None
    alpha = None
    if im.mode in ("LA", "RGBA"):
        alpha = np.asarray(im.getchannel("A")).copy()
        im = im.convert(im.mode[:-1])
    if im.mode in _GRAY_8:
        pixels, bits, have = np.asarray(im.convert("L"), dtype=np.float32) / 255, 8, 1
    elif im.mode in _GRAY_16:
        pixels, bits, have = np.clip(np.asarray(im, dtype=np.float32) / 65535, 0, 1), 16, 1
    elif im.mode == "RGB":
        pixels, bits, have = np.asarray(im, dtype=np.float32) / 255, 8, 3
    elif convert:
        pixels, bits, have = np.asarray(im.convert("RGB"), dtype=np.float32) / 255, 8, 3
        icc = None
    else:
        raise ImageError(f"{im.mode} images are not supported as they are; add --convert to convert them")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if have != channels:
        if not convert:
            have_s, want_s = _mode_name(have), _mode_name(channels)
            raise ImageError(
                f"{have_s} image, but the model takes {want_s} ({channels} channel{'s' * (channels > 1)}); "
                f"add --convert to convert it to {want_s}"
            )
        pixels = pixels @ _LUMA[:, None] if channels == 1 else np.repeat(pixels, 3, axis=-1)
        bits = 8 if channels == 3 else bits
        icc = None
    return Picture(pixels.astype(np.float32, copy=False), fmt, bits, alpha, icc, converted=have != channels)


def _mode_name(channels: int) -> str:
    return {1: "grayscale", 3: "RGB"}.get(channels, f"{channels}-channel")


def write_image(path: Path, picture: Picture, pixels: np.ndarray, *, overwrite: bool = False) -> None:
    """Write ``pixels`` (float (H, W, C) in [0, 1]) to ``path`` atomically, in ``picture``'s
    format, bit depth and alpha; an existing file (or link) is an :class:`ImageError` unless
    ``overwrite``, which replaces the file or the link itself, never what a link points to."""
    if os.path.lexists(path) and not overwrite:
        raise ImageError(f"{path} already exists; add --overwrite to replace it")
    scale, dtype = (65535, np.uint16) if picture.bits == 16 else (255, np.uint8)
    values = np.rint(np.clip(pixels, 0, 1) * scale).astype(dtype)
    options: dict = {"quality": 95} if picture.format == "JPEG" else {}
    if picture.icc_profile:
        options["icc_profile"] = picture.icc_profile
    try:
        im = Image.fromarray(values[..., 0] if values.shape[-1] == 1 else values)
        if picture.alpha is not None:
            im.putalpha(Image.fromarray(picture.alpha))
        with atomic_path(path) as tmp:
            im.save(tmp, format=picture.format, **options)
    except CaeError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:  # Pillow: no such mode for this format, …
        raise ImageError(f"cannot write {path} ({exc})") from None


# --- inference over whole images ------------------------------------------------------


def window(n: int) -> np.ndarray:
    """A sin² (shifted Hann) window of length ``n``: positive everywhere, highest in the
    middle; copies shifted by ``n/2`` sum to exactly 1 (for even ``n``)."""
    return (np.sin(np.pi * (np.arange(n) + 0.5) / n) ** 2).astype(np.float32)


def _tiling(size: int, tile: int, stride: int) -> tuple[int, int, int]:
    """(pad before, pad after, tile count) along one axis, so that every pixel of the
    image gets the full overlap of tiles, the first and last ones included."""
    overlap = tile - stride
    count = max(1, -(-(size + 2 * overlap - tile) // stride) + 1)
    return overlap, stride * (count - 1) + tile - size - overlap, count


def tiled_apply(
    f: Predict,
    image: np.ndarray,
    tile: tuple[int, int],
    *,
    stride: tuple[int, int] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """Apply ``f`` (a batch of ``tile``-sized images → same shape) to ``image`` (H, W, C) of any size.

    Tiles overlap by ``tile - stride`` (half a tile by default); the image is padded
    by reflection so its borders get the same overlap as its middle; each output pixel
    is the mean of its tiles' predictions weighted by :func:`window`. ``f`` is called
    on at most ``batch_size`` tiles at a time. With ``f`` the identity the image comes
    back unchanged (to float rounding); a constant image stays constant.
    """
    (th, tw), (h, w, c) = tile, image.shape
    sh, sw = stride or (max(1, th // 2), max(1, tw // 2))
    top, bottom, rows = _tiling(h, th, sh)
    left, right, cols = _tiling(w, tw, sw)
    padded = np.pad(image.astype(np.float32, copy=False), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    tiles = np.lib.stride_tricks.sliding_window_view(padded, (th, tw, c))[::sh, ::sw, 0]
    weight = np.outer(window(th), window(tw))[..., None]
    out = np.zeros_like(padded)
    total = np.zeros((*padded.shape[:2], 1), dtype=np.float32)
    where = [(i, j) for i in range(rows) for j in range(cols)]
    for start in range(0, len(where), batch_size):
        chunk = where[start : start + batch_size]
        pred = np.asarray(f(np.stack([tiles[i, j] for i, j in chunk])), dtype=np.float32)
        for (i, j), p in zip(chunk, pred, strict=True):
            y, x = i * sh, j * sw
            out[y : y + th, x : x + tw] += p * weight
            total[y : y + th, x : x + tw] += weight
    return (out / total)[top : top + h, left : left + w]


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W, C) resized to ``size`` (bilinear, anti-aliased when shrinking)."""
    from skimage.transform import resize as sk_resize

    return sk_resize(image, (*size, image.shape[2]), order=1, preserve_range=True).astype(np.float32)


@dataclass
class Outcome:
    """What became of one input: its score, or why it failed."""

    source: Source
    score: float | None = None  # mean squared reconstruction error per pixel, [0, 1] scale
    error: str | None = None


@dataclass
class Timing:
    """Seconds spent reading, in the model (tiling included) and writing."""

    read: float = 0.0
    model: float = 0.0
    write: float = 0.0


@dataclass
class _Pending:
    index: int
    picture: Picture
    seen: np.ndarray  # what the model sees: the image, or the image resized to the model's size
    resized: bool


@dataclass
class _Run:
    predict: Predict
    model_hw: tuple[int, int]
    out_dir: Path | None
    overwrite: bool
    batch_size: int
    outcomes: list[Outcome]
    timing: Timing = field(default_factory=Timing)
    pending: list[_Pending] = field(default_factory=list)

    def model(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict(batch), dtype=np.float32)

    def finish(self, i: int, picture: Picture, seen: np.ndarray, recon: np.ndarray, full: np.ndarray) -> None:
        outcome = self.outcomes[i]
        try:
            if self.out_dir is not None:
                start = time.perf_counter()
                write_image(self.out_dir / outcome.source.name, picture, full, overwrite=self.overwrite)
                self.timing.write += time.perf_counter() - start
            outcome.score = float(np.mean((seen.astype(np.float64) - recon) ** 2))
        except CaeError as exc:
            outcome.error = str(exc)

    def flush(self) -> None:
        if not self.pending:
            return
        start = time.perf_counter()
        recon = self.model(np.stack([p.seen for p in self.pending]))
        self.timing.model += time.perf_counter() - start
        for p, r in zip(self.pending, recon, strict=True):
            full = resize(r, p.picture.pixels.shape[:2]) if p.resized else r
            self.finish(p.index, p.picture, p.seen, r, full)
        self.pending.clear()


def process(
    sources: Sequence[Source],
    predict: Predict,
    input_shape: tuple[int, int, int],
    *,
    out_dir: Path | None = None,
    resize_to_model: bool = False,
    convert: bool = False,
    overwrite: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[Outcome], Timing]:
    """Run the model over every source; write each result into ``out_dir`` (if given).

    Images of the model's size (``input_shape`` = H, W, C) are batched together,
    ``batch_size`` at a time; others are tiled (:func:`tiled_apply`) or, with
    ``resize_to_model``, resized to the model's size and back. Every outcome carries
    the image's anomaly score — the mean squared error between what the model saw
    and what it returned — or the reason it failed; one failure never stops the
    others. ``progress(n)`` is called as ``n`` more images are done.
    """
    h, w, channels = input_shape
    run = _Run(predict, (h, w), out_dir, overwrite, batch_size, [Outcome(s) for s in sources])
    claimed: dict[Path, Path] = {}
    pending_pixels = 0
    for i, src in enumerate(sources):
        outcome = run.outcomes[i]
        try:
            if out_dir is not None:
                target = out_dir / src.name
                if target in claimed:
                    raise ImageError(f"has the same output file {target} as {claimed[target]}")
                claimed[target] = src.path
                if not within(target.parent, out_dir):
                    raise ImageError(f"{target.parent} is a symbolic link out of {out_dir}: nothing is written there")
                if os.path.lexists(target) and not overwrite:
                    raise ImageError(f"{target} already exists; add --overwrite to replace it")
            start = time.perf_counter()
            picture = read_image(src.path, channels, convert=convert, max_pixels=max_pixels)
            run.timing.read += time.perf_counter() - start
            if picture.pixels.shape[:2] == (h, w) or resize_to_model:
                resized = picture.pixels.shape[:2] != (h, w)
                seen = resize(picture.pixels, (h, w)) if resized else picture.pixels
                run.pending.append(_Pending(i, picture, seen, resized))
                pending_pixels += picture.pixels.size
            else:
                start = time.perf_counter()
                recon = tiled_apply(run.model, picture.pixels, (h, w), batch_size=batch_size)
                run.timing.model += time.perf_counter() - start
                run.finish(i, picture, picture.pixels, recon, recon)
                if progress:
                    progress(1)
        except CaeError as exc:
            outcome.error = str(exc)
            if progress:
                progress(1)
        if len(run.pending) >= batch_size or pending_pixels >= _PENDING_PIXELS:
            done = len(run.pending)
            run.flush()
            pending_pixels = 0
            if progress:
                progress(done)
    done = len(run.pending)
    run.flush()
    if progress and done:
        progress(done)
    return run.outcomes, run.timing
