"""The ``cae`` command: run the trained autoencoder on your own images, or describe it.

    cae denoise scans/ -o clean/            # noisy images → denoised copies
    cae reconstruct digits/*.png -o out/    # the same model, for reconstruction
    cae score digits/ --csv scores.csv      # anomaly score per image
    cae info                                # architecture, training params, metrics

A thin layer over :mod:`cae.images`. Exit status: 0 when every image was done,
1 when some failed (each named on stderr, the others still written), 2 when nothing
was done (bad arguments, no model, an output that cannot be written).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cae import __version__
from cae.config import DEFAULT_PARAMS, MAX_LOCK_BYTES, read_yaml
from cae.errors import CaeError
from cae.images import DEFAULT_BATCH_SIZE, DEFAULT_MAX_PIXELS, Outcome, collect_inputs, prepare_output, process
from cae.io import check_keras_archive, write_bytes
from cae.paths import METRICS_DIR, MODEL_PATH

LOCK_PATH = Path("dvc.lock")
EVAL_PATH = METRICS_DIR / "eval.json"  # its `score_threshold` decides anomaly/normal
NO_MODEL_HINT = "run `dvc repro` (or `dvc pull`) to produce it, or pass --model"

DESCRIPTION = """\
Run the trained convolutional autoencoder on your own images.

Images of the model's size go through it as they are; larger or smaller ones are
processed in overlapping tiles of the model's size blended without seams (or, with
--resize, squeezed to the model's size and back). Outputs keep each image's size,
format and file name. Paths are relative to the current directory: run it from the
repository root, where `dvc repro` left models/autoencoder.keras."""

EXAMPLES = """\
examples:
  cae denoise noisy/ -o clean/              every image in noisy/ → clean/
  cae denoise 'scans/**/*.png' -o out/      a glob (quoted: cae expands it, ** included)
  cae reconstruct photo.jpg -o out/ --resize
  cae score digits/ --csv scores.csv        anomaly score per image
  cae info                                  the model, its training params and metrics

exit status: 0 all done; 1 some images failed (each named on stderr); 2 nothing done."""

IMAGES_EPILOG = """\
Inputs are PNG, JPEG, BMP or TIFF files, folders (the images directly inside, or
all levels with --recursive) and glob patterns. Grayscale and colour must match the
model (see `cae info`); --convert converts them. An image that fails (unreadable,
wrong mode, too large, output exists) is named on stderr and skipped; the others
are still written.

examples:
  cae {cmd} noisy/ -o out/
  cae {cmd} 'scans/**/*.png' -o out/ --convert
  cae {cmd} big.png -o out/ --resize --overwrite"""

SCORE_EPILOG = """\
The score is the mean squared error per pixel (values on a 0-1 scale) between the
image as the model sees it and the model's reconstruction: high means unusual. With
--resize it is measured at the model's size. The `decision` column (anomaly/normal)
appears for the pipeline's own model once its evaluate stage has run: an image is an
anomaly when its score exceeds metrics/eval.json's `score_threshold` (the score that
1 % of the clean validation images exceed).

examples:
  cae score digits/
  cae score 'scans/*.png' --csv scores.csv --overwrite"""

INFO_EPILOG = """\
Reads the model file, params.yaml, the `train` entry of dvc.lock (the params the
model was trained with and the checksums of its inputs) and metrics/*.json, all
relative to the current directory; says what is missing.

examples:
  cae info
  cae info --model experiments/wide.keras"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="cae", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"cae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    model = argparse.ArgumentParser(add_help=False)
    model.add_argument(
        "--model",
        type=Path,
        default=MODEL_PATH,
        metavar="FILE",
        help="the trained model (default: %(default)s, the pipeline's output)",
    )
    images = argparse.ArgumentParser(add_help=False, parents=[model])
    images.add_argument("inputs", nargs="+", metavar="INPUT", help="image file, folder of images or glob pattern")
    images.add_argument("-r", "--recursive", action="store_true", help="also take images in sub-folders of folders")
    images.add_argument(
        "--resize",
        action="store_true",
        help="resize each image to the model's size and back (default: overlapping tiles at full resolution)",
    )
    images.add_argument(
        "--convert",
        action="store_true",
        help="convert images to the model's mode (grayscale or RGB) instead of refusing them",
    )
    images.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help="images (or tiles) per model call (default: %(default)s)",
    )
    images.add_argument(
        "--max-pixels",
        type=_positive_int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="refuse images with more pixels than this (default: %(default)s)",
    )
    images.add_argument("--overwrite", action="store_true", help="replace output files that already exist")
    images.add_argument("-v", "--verbose", action="store_true", help="also print where the time went")

    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="OUTDIR",
        help="folder for the results (created if needed)",
    )
    for name, summary, description in (
        ("denoise", "denoise images", "Denoise images: the model maps noisy images to clean ones."),
        (
            "reconstruct",
            "reconstruct images through the autoencoder",
            "Reconstruct images through the autoencoder: the same model and code as\n"
            "`denoise`, for a model trained with task=reconstruct (clean → clean).",
        ),
    ):
        cmd = sub.add_parser(
            name,
            parents=[output, images],
            help=summary,
            description=description,
            epilog=IMAGES_EPILOG.format(cmd=name),
            formatter_class=fmt,
        )
        cmd.set_defaults(run=_run_images)

    score = sub.add_parser(
        "score",
        parents=[images],
        help="anomaly score (reconstruction error) per image",
        description="Print an anomaly score per image: its reconstruction error.",
        epilog=SCORE_EPILOG,
        formatter_class=fmt,
    )
    score.add_argument("--csv", type=Path, metavar="FILE", help="also write the scores to this CSV file")
    score.set_defaults(run=_run_images, output=None)

    info = sub.add_parser(
        "info",
        parents=[model],
        help="the model, the params it was trained with, its metrics",
        description="Describe the model: architecture, training params and checksums (dvc.lock), metrics.",
        epilog=INFO_EPILOG,
        formatter_class=fmt,
    )
    info.set_defaults(run=_run_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cae`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CaeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: files already written are complete, no partial file was left", file=sys.stderr)
        return 130


# --- denoise, reconstruct, score ------------------------------------------------------


def _run_images(args: argparse.Namespace) -> int:
    sources = collect_inputs(args.inputs, recursive=args.recursive)
    _require_model_file(args.model)
    if args.output is not None:
        prepare_output(args.output, directory=True)
    csv_path: Path | None = getattr(args, "csv", None)
    if csv_path is not None:
        if csv_path.is_dir():
            raise CaeError(f"{csv_path}: is a folder; --csv takes a file name")
        if os.path.lexists(csv_path) and not args.overwrite:
            raise CaeError(f"{csv_path}: already exists; add --overwrite to replace it")
        prepare_output(csv_path, directory=False)
    threshold = _threshold(args.model) if args.command == "score" else None
    model = _load_model(args.model, for_images=True)
    shape = _input_shape(model, args.model)

    def predict(batch):  # process() hands over at most --batch-size images (or tiles) at a time
        return model.predict_on_batch(batch)

    from tqdm import tqdm

    with tqdm(
        total=len(sources), unit="img", file=sys.stderr, leave=False, disable=None if len(sources) > 1 else True
    ) as bar:
        outcomes, timing = process(
            sources,
            predict,
            shape,
            out_dir=args.output,
            resize_to_model=args.resize,
            convert=args.convert,
            overwrite=args.overwrite,
            max_pixels=args.max_pixels,
            batch_size=args.batch_size,
            progress=bar.update,
        )
    done = [o for o in outcomes if o.error is None]
    if args.command == "score":
        _print_scores(done, threshold)
        if csv_path is not None:
            _write_csv(csv_path, done, threshold)
    for o in outcomes:
        if o.error is not None:
            print(f"error: {o.source.path}: {o.error}", file=sys.stderr)
    verb = "scored" if args.command == "score" else "written"
    print(f"{len(done)} {verb}, {len(outcomes) - len(done)} failed", file=sys.stderr)
    if args.verbose:
        print(
            f"time: reading {timing.read:.2f} s, model {timing.model:.2f} s, writing {timing.write:.2f} s",
            file=sys.stderr,
        )
    return 0 if len(done) == len(outcomes) else 1


def _decision(score: float | None, threshold: float | None) -> list[str]:
    if threshold is None or score is None:
        return []
    return ["anomaly" if score > threshold else "normal"]


def _print_scores(done: list[Outcome], threshold: float | None) -> None:
    rows = [[str(o.source.path), f"{o.score:.6f}", *_decision(o.score, threshold)] for o in done]
    header = ["file", "score"] + (["decision"] if threshold is not None else [])
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
    for row in [header, *rows]:
        cells = [
            row[0].ljust(widths[0]),
            row[1].rjust(widths[1]),
            *(c.ljust(w) for c, w in zip(row[2:], widths[2:], strict=True)),
        ]
        print("  ".join(cells).rstrip())
    if threshold is not None:
        print(f"decision: anomaly when score > {threshold:.6g} ({EVAL_PATH} score_threshold)", file=sys.stderr)


def _write_csv(path: Path, done: list[Outcome], threshold: float | None) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "score"] + (["decision"] if threshold is not None else []))
    for o in done:
        writer.writerow([str(o.source.path), repr(o.score), *_decision(o.score, threshold)])
    try:
        write_bytes(path, text.getvalue().encode())
    except OSError as exc:
        raise CaeError(f"{path}: cannot write the scores ({exc.strerror or exc})") from None


def _threshold(model_path: Path) -> float | None:
    """The pipeline's score threshold, if its evaluate stage has run and ``model_path`` is its model."""
    if not EVAL_PATH.is_file() or model_path.resolve() != MODEL_PATH.resolve():
        return None
    try:
        metrics = json.loads(EVAL_PATH.read_text())
        if isinstance(metrics, dict) and "score_threshold" not in metrics:
            return None  # written before evaluate computed one
        value = metrics["score_threshold"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CaeError(f"{EVAL_PATH}: no readable 'score_threshold' ({exc}); rerun `dvc repro`") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CaeError(f"{EVAL_PATH}: 'score_threshold' must be a finite number (got {value!r}); rerun `dvc repro`")
    return float(value)


# --- the model ------------------------------------------------------------------------


def _require_model_file(path: Path) -> None:
    """Fail fast, before TensorFlow is imported, when there is no model file or it is
    not a plausible model archive (:func:`cae.io.check_keras_archive`)."""
    if not path.is_file():
        raise CaeError(f"{path}: no trained model here; {NO_MODEL_HINT}")
    check_keras_archive(path)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Hide what TensorFlow's C++ start-up writes straight to file descriptor 2 (absl and
    CUDA-probing lines that ignore TF_CPP_MIN_LOG_LEVEL); replay it if start-up crashes."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr: nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            yield
        except CaeError:
            raise
        except BaseException:
            os.dup2(saved, 2)
            buf.seek(0)
            sys.stderr.write(buf.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _load_model(path: Path, for_images: bool = False):
    """The model (an autoencoder: output shape = input shape); ``for_images``: it must also
    take (height, width, 1 or 3 channels) images, checked before its first call."""
    with _quiet_native_stderr():
        from cae import runtime  # noqa: F401  (sets TensorFlow's environment before it loads)
        from cae.model import load_model

        model = load_model(path)
        if for_images:
            _input_shape(model, path)
        model.predict_on_batch(_zeros(model))  # device set-up happens (and logs) on the first call
    return model


def _zeros(model):
    import numpy as np

    shape = tuple(d or 8 for d in model.input_shape[1:])
    return np.zeros((1, *shape), dtype=np.float32)


def _input_shape(model, path: Path) -> tuple[int, int, int]:
    shape = tuple(model.input_shape[1:])
    if len(shape) != 3 or None in shape:
        raise CaeError(f"{path}: the model takes inputs of shape {shape}; cae needs a fixed (height, width, channels)")
    if shape[2] not in (1, 3):
        raise CaeError(f"{path}: the model takes {shape[2]} channels; cae handles 1 (grayscale) or 3 (RGB)")
    return shape


# --- info -----------------------------------------------------------------------------


def _run_info(args: argparse.Namespace) -> int:
    _require_model_file(args.model)
    params = _read_params()  # a params.yaml that cannot be read stops here, before any work
    model = _load_model(args.model)
    md5 = hashlib.md5(args.model.read_bytes()).hexdigest()
    print("\n".join(_model_lines(args.model, model, md5)))
    print()
    print("\n".join(_training_lines(args.model, md5, params)))
    print()
    print("\n".join(_metrics_lines()))
    return 0


def _model_lines(path: Path, model, md5: str) -> list[str]:
    h, w, c = model.input_shape[1:]
    mode = {1: "grayscale", 3: "RGB"}.get(c, f"{c} channels")
    lines = [
        f"model: {path} ({path.stat().st_size:,} bytes, md5 {md5})",
        f"  input {h}×{w}×{c} ({mode}), {model.count_params():,} parameters",
        "",
    ]
    rows = [("layer", "type", "output shape", "params")]
    for layer in model.layers:
        out = tuple(layer.output.shape[1:])
        rows.append((layer.name, type(layer).__name__, str(out), f"{layer.count_params():,}"))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    for r in rows:
        lines.append("  " + "  ".join(r[k].ljust(widths[k]) for k in range(3)) + "  " + r[3].rjust(widths[3]))
    return lines


def _read_params() -> tuple[Any, str | None]:
    """params.yaml's content and None, or (None, "not found"); :class:`ParamsError` if it
    cannot be read as plain YAML data (the schema is not checked: the model may be older)."""
    if not DEFAULT_PARAMS.exists() and not DEFAULT_PARAMS.is_symlink():
        return None, "not found"
    return read_yaml(DEFAULT_PARAMS), None


def _read_lock() -> tuple[Any, str | None]:
    """dvc.lock's content and None, or (None, why not)."""
    if not LOCK_PATH.exists() and not LOCK_PATH.is_symlink():
        return None, "not found"
    try:
        return read_yaml(LOCK_PATH, max_bytes=MAX_LOCK_BYTES, error=CaeError), None
    except CaeError as exc:
        return None, f"unreadable ({str(exc).removeprefix(f'{LOCK_PATH}: ')})"


def _mapping(node: Any, key: str) -> dict:
    """``node[key]`` when both are mappings, else an empty one (a hand-edited dvc.lock)."""
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, dict) else {}


def _records(node: Any, key: str) -> list[dict]:
    """The mappings in the list ``node[key]`` (dvc.lock's deps and outs)."""
    value = node.get(key) if isinstance(node, dict) else None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def _training_lines(model_path: Path, md5: str, params: tuple[Any, str | None]) -> list[str]:
    current, why = params
    now = _flatten(current) if isinstance(current, dict) else {}
    lock, lock_why = _read_lock()
    train = _mapping(lock, "stages").get("train")
    if not isinstance(train, dict):
        reason = lock_why or "has no `train` stage"
        lines = [f"trained with: unknown ({LOCK_PATH}: {reason}; `dvc repro` records it)"]
        if why:
            return [*lines, f"  {DEFAULT_PARAMS}: {why}"]
        lines.append(f"  {DEFAULT_PARAMS} now (may differ from what the model was trained with):")
        return lines + [f"    {k:<22} {v}" for k, v in now.items()]
    trained = _flatten(_mapping(train, "params").get(str(DEFAULT_PARAMS), {}))
    lines = [f"trained with ({LOCK_PATH}, stage train):"]
    differ = 0
    for key, value in trained.items():
        note = ""
        if why is None and key in now and now[key] != value:
            note, differ = f"   ({DEFAULT_PARAMS} now: {now[key]})", differ + 1
        lines.append(f"  {key:<24} {value}{note}")
    if why:
        lines.append(f"  {DEFAULT_PARAMS}: {why}")
    elif differ:
        lines.append(f"  {DEFAULT_PARAMS} has changed since: `dvc repro` would retrain the model")
    lines.append("  inputs (md5):")
    lines += [f"    {d.get('path', '?')!s:<28} {d.get('md5', '?')}" for d in _records(train, "deps")]
    outs = {o.get("path"): o.get("md5") for o in _records(train, "outs")}
    recorded = outs.get(str(MODEL_PATH))
    if recorded is None:
        lines.append(f"  {LOCK_PATH} records no md5 for {MODEL_PATH}")
    elif recorded == md5:
        lines.append(f"  model md5 {recorded}: matches {model_path}")
    else:
        lines.append(
            f"  model md5 {recorded} in {LOCK_PATH}, but {model_path} has {md5}: "
            "these params may not describe this model (see `dvc status`)"
        )
    return lines


def _metrics_lines() -> list[str]:
    files = sorted(METRICS_DIR.glob("*.json"))
    if not files:
        return [f"metrics: none in {METRICS_DIR}/ (`dvc repro` writes them)"]
    lines = [f"metrics ({METRICS_DIR}/):"]
    for path in files:
        try:
            values = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            lines.append(f"  {path.name}: unreadable ({exc})")
            continue
        lines.append(f"  {path.name}:")
        lines += [f"    {k:<22} {v}" for k, v in _flatten(values).items()]
    return lines


if __name__ == "__main__":
    sys.exit(main())
