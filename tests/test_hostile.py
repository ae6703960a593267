"""Every hostile input class, tabulated with its expected outcome.

Each row plants one hostile input in a scratch project (beside a folder ``outside/``
holding a private file, mode 0600) and runs the entry point that meets it in
process: a stage's ``run_stage``, ``cae`` (``cae.cli.main``), ``python -m cae.verify``
(``cae.verify.main``), or the folder scanner and image writer behind them. Every row
checks the same things: the exit status, one short ``error:`` line (or the report
line) naming the file or key, no traceback, a bounded time, and nothing lost —
every file under the scratch folder (the project and ``outside/``) has the same
bytes and mode afterwards, except what the row is meant to delete, and nothing new
appears. docs/failure-behaviour.md lists the same table.
"""

from __future__ import annotations

import importlib
import os
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cae import cli, verify
from cae.config import MAX_PARAMS_BYTES
from cae.errors import CaeError
from cae.io import write_arrays
from cae.stages import run_stage

REPO = Path(__file__).resolve().parents[1]
SECRET = b"private bytes, never to be read, changed or made readable"
TIME_LIMIT = 30.0  # seconds per row, TensorFlow start-up included


# --- building blocks ------------------------------------------------------------------


def params(root: Path, text: str | bytes) -> None:
    (root / "params.yaml").write_bytes(text.encode() if isinstance(text, str) else text)


def params_with(root: Path, **values) -> None:
    """The committed params.yaml with dotted keys (``a__b``) set."""
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in values.items():
        *parents, leaf = dotted.split("__")
        node = doc
        for p in parents:
            node = node[p]
        node[leaf] = value
    params(root, yaml.safe_dump(doc))


def prepared(root: Path, _outside: Path | None = None, **replace) -> None:
    """data/prepared as noisy_pairs writes it (8 tiny images per split), some arrays replaced."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 8, 8, 1), dtype=np.uint8)
    noisy = rng.random((8, 8, 8, 1), dtype=np.float32)
    y = np.arange(8, dtype=np.uint8) % 2
    arrays = {
        **{f"x_{s}": x for s in ("train", "val", "test")},
        **{f"x_{s}_noisy": noisy for s in ("train", "val", "test")},
        **{f"y_{s}": y for s in ("train", "val", "test")},
        "test_levels": np.array([0.4], np.float32),
        "x_test_levels": noisy[None],
    }
    write_arrays(root / "data/prepared", {**arrays, **replace})
    (root / "data/baselines").mkdir(parents=True, exist_ok=True)
    (root / "data/baselines/by_noise.csv").write_text("level,method,psnr,ssim\n0.4,median,15.0,0.5\n")


def raw(root: Path, **replace) -> None:
    x = np.zeros((10, 8, 8, 1), np.uint8)
    y = np.zeros(10, np.uint8)
    write_arrays(root / "data/raw", {"x_train": x, "y_train": y, "x_test": x, "y_test": y, **replace})


def huge_header(path: Path) -> None:
    """A .npy whose header promises 10¹² float32 rows that the file does not hold."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12, 8, 8, 1)})
        f.write(b"\0" * 64)


def image(path: Path, size=(8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size, 128, np.uint8)).save(path)


def keras_zip(path: Path, config: bytes = b"{}", extra: int = 0) -> None:
    """A zip laid out like a .keras file (config.json, metadata.json, weights), deflated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", "{}")
        z.writestr("config.json", config)
        z.writestr("model.weights.h5", b"\0" * 64)
        for i in range(extra):
            z.writestr(f"assets/{i}", b"")


def zip_bomb_size(path: Path) -> None:
    """A .keras zip whose directory declares 4 GB uncompressed for its weights."""
    keras_zip(path)
    data = bytearray(path.read_bytes())
    entry = data.rfind(b"PK\x01\x02", 0, data.rfind(b"model.weights.h5"))
    data[entry + 24 : entry + 28] = (0xF0000000).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def lock_out(root: Path, path: str, md5: str) -> None:
    lock = {"schema": "2.0", "stages": {"train": {"cmd": "x", "outs": [{"path": path, "hash": "md5", "md5": md5}]}}}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))


CACHE = Path(".dvc/cache/files/md5")
BAD_MD5 = "ab" + "0" * 30


def cache_object(root: Path, md5: str = BAD_MD5, content: bytes = b"rotten") -> Path:
    path = root / CACHE / md5[:2] / md5[2:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    path.chmod(0o444)
    return path


# --- entry points: (exit status, stdout, stderr) ---------------------------------------


def stage(name: str, *argv: str) -> Callable[[Path], tuple[int, str]]:
    def run(root: Path) -> int:
        module = importlib.import_module(f"cae.stages.{name}")
        old = sys.argv
        sys.argv = [name, *argv]
        try:
            run_stage(module.main)
        except SystemExit as exc:
            return exc.code
        finally:
            sys.argv = old
        return 0

    return run


def cae(*args: str) -> Callable[[Path], int]:
    return lambda root: cli.main(list(args))


def verify_cmd(*args: str) -> Callable[[Path], int]:
    return lambda root: verify.main(list(args))


def scan_folder(root: Path) -> int:
    """The folder data set's reader (stage download, dataset: folder) on ``images/``; the
    files it skips are printed, as its warnings name them."""
    from cae.config import FolderParams
    from cae.folder import scan_folder, write_folder_dataset

    try:
        for path, why in scan_folder(root / "images").skipped:
            print(f"skipped {path}: {why}", file=sys.stderr)
        write_folder_dataset(FolderParams(path=str(root / "images")), root / "data/raw")
    except CaeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


# --- the table --------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    setup: Callable[[Path, Path], object]  # (project, outside folder)
    run: Callable[[Path], int]
    code: int
    expect: str  # in the one error line (or, for exit 0/1, in stdout + stderr)
    deleted: set[str] = field(default_factory=set)  # paths (relative to the scratch folder) meant to go
    created: set[str] = field(default_factory=set)  # paths meant to appear
    one_error_line: bool = True


def _deep(n: int) -> str:
    return "model:\n  filters: " + "[" * n + "]" * n + "\n"


ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


def _fifo(name: str):
    def setup(root: Path, outside: Path) -> None:
        os.mkfifo(root / name)

    return setup


def _outside_link(link: str, target: str = "secret"):
    def setup(root: Path, outside: Path) -> None:
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(outside / target, root / link)

    return setup


def _both(*setups):
    def setup(root: Path, outside: Path) -> None:
        for s in setups:
            s(root, outside)

    return setup


def _ok_model(root: Path, outside: Path) -> None:
    keras_zip(root / "models/autoencoder.keras")


PARAMS_CASES = [
    Case("params: UTF-16", lambda r, o: params(r, "epochs: 3\n".encode("utf-16")), stage("train"), 2, "not UTF-8"),
    Case(
        "params: Latin-1 byte",
        lambda r, o: params(r, "seed: 0 # caf\xe9\n".encode("latin-1")),
        stage("train"),
        2,
        "not UTF-8 text (byte 0xe9",
    ),
    Case(
        "params: binary with NUL bytes", lambda r, o: params(r, bytes(range(256)) * 4), stage("train"), 2, "not UTF-8"
    ),
    Case(
        "params: 5,000 levels of nesting",
        lambda r, o: params(r, _deep(5000)),
        stage("train"),
        2,
        "nested more than 32 levels deep",
    ),
    Case(
        "params: alias bomb (9^9 nodes)", lambda r, o: params(r, ALIAS_BOMB), stage("train"), 2, "anchors and aliases"
    ),
    Case("params: one anchor", lambda r, o: params(r, "epochs: &e 3\n"), stage("train"), 2, "anchors and aliases"),
    Case(
        "params: 100 KB value (repr cut)",
        lambda r, o: params(r, "dataset: " + "x" * 100_000 + "\n"),
        stage("train"),
        2,
        "(100,002 characters)",
    ),
    Case(
        "params: 8,000 unknown keys",
        lambda r, o: params(r, "".join(f"k{i}: {i}\n" for i in range(8_000))),
        stage("train"),
        2,
        "k0: unknown key",
    ),
    Case(
        "params: over the size cap",
        lambda r, o: params(r, "#" * (MAX_PARAMS_BYTES + 1)),
        stage("train"),
        2,
        "larger than 131,072 bytes",
    ),
    Case(
        "params: two documents",
        lambda r, o: params(r, "epochs: 1\n---\nepochs: 2\n"),
        stage("train"),
        2,
        "expected a single document",
    ),
    Case(
        "params: a list, not a mapping", lambda r, o: params(r, "- 1\n- 2\n"), stage("train"), 2, "expected a mapping"
    ),
    Case("params: a FIFO", _fifo("params.yaml"), stage("train"), 2, "params.yaml: not a regular file"),
    Case(
        "params: 5,000-digit integer",
        lambda r, o: params(r, "seed: " + "9" * 5000 + "\n"),
        stage("train"),
        2,
        "a value cannot be read",
    ),
    Case(
        "params: impossible date",
        lambda r, o: params(r, "seed: 2001-13-45\n"),
        stage("train"),
        2,
        "a value cannot be read",
    ),
    Case(
        "params: python tag",
        lambda r, o: params(r, "seed: !!python/object/apply:os.system [true]\n"),
        stage("train"),
        2,
        "the YAML tag there is not allowed",
    ),
    Case(
        "params: preset of the wrong type",
        lambda r, o: params(r, "model: {preset: [1]}\n"),
        stage("train"),
        2,
        "model.preset: Input should be",
    ),
    Case(
        "params: seed ≥ 2³²",
        lambda r, o: params_with(r, seed=2**32),
        stage("train"),
        2,
        "seed: Input should be less than or equal to 4294967295",
    ),
    Case(
        "params: folder.size 100000²",
        lambda r, o: params_with(r, folder__size=[100_000, 100_000]),
        stage("train"),
        2,
        "folder.size.0: Input should be less than or equal to 8192",
    ),
    Case(
        "params: 11 encoder levels",
        lambda r, o: params_with(r, model__filters=[4] * 11),
        stage("train"),
        2,
        "model.filters: List should have at most 10 items",
    ),
    Case(
        "params: 9 middle convolutions",
        lambda r, o: params_with(r, model__middle=[4] * 9),
        stage("train"),
        2,
        "model.middle: List should have at most 8 items",
    ),
    Case(
        "params: 8×8 images folded by 3 (space_to_depth)",
        _both(prepared, lambda r, o: params_with(r, model__space_to_depth=3)),
        stage("train"),
        2,
        "images of 8×8 do not fit model.filters with 2 levels after model.space_to_depth 3",
    ),
    Case(
        "params: 10⁶ baseline workers",
        lambda r, o: params_with(r, baselines__workers=10**6),
        stage("train"),
        2,
        "baselines.workers: Input should be less than or equal to 256",
    ),
    Case(
        "params: 100 noise levels",
        lambda r, o: params_with(r, noise__eval_levels=[0.1] * 100),
        stage("train"),
        2,
        "noise.eval_levels: List should have at most 32 items",
    ),
    Case(
        "params: Poisson level 1e-12",
        lambda r, o: params_with(r, noise__kind="poisson", noise__factor=1e-12),
        stage("train"),
        2,
        "for noise.kind poisson a level is 0 or at least 1e-06",
    ),
    Case(
        "params: timeout 1e300 s",
        lambda r, o: params_with(r, download__timeout=1e300),
        stage("train"),
        2,
        "download.timeout: Input should be less than or equal to 3600",
    ),
    Case(
        "params: latent_dim 10⁹",
        lambda r, o: params_with(r, model__latent_dim=10**9),
        stage("train"),
        2,
        "model.latent_dim: Input should be less than or equal to 16384",
    ),
    Case(
        "params: alias bomb, cae info",
        _both(_ok_model, lambda r, o: params(r, ALIAS_BOMB)),
        cae("info"),
        2,
        "anchors and aliases",
    ),
    Case(
        "params: UTF-16, cae info",
        _both(_ok_model, lambda r, o: params(r, "a: 1\n".encode("utf-16"))),
        cae("info"),
        2,
        "not UTF-8",
    ),
    Case(
        "params: 5,000 levels, cae info",
        _both(_ok_model, lambda r, o: params(r, _deep(5000))),
        cae("info"),
        2,
        "nested more than",
    ),
]


def _planted_link(root: Path, outside: Path) -> None:
    link = root / CACHE / BAD_MD5[:2] / BAD_MD5[2:]
    link.parent.mkdir(parents=True)
    os.symlink(outside / "secret", link)


def _planted_dir_link(root: Path, outside: Path) -> None:
    (root / CACHE).mkdir(parents=True)
    os.symlink(outside, root / CACHE / "ab")


def _planted_fifo(root: Path, outside: Path) -> None:
    fifo = root / CACHE / BAD_MD5[:2] / BAD_MD5[2:]
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)


def _lock_points_outside(root: Path, outside: Path) -> None:
    cache_object(root)
    lock_out(root, "../outside/secret", BAD_MD5)


def _lock_points_through_link(root: Path, outside: Path) -> None:
    cache_object(root)
    os.symlink(outside, root / "data")
    lock_out(root, "data/secret", BAD_MD5)


def _workspace_link(root: Path, outside: Path) -> None:
    cache_object(root)
    os.symlink(outside / "secret", root / "model.keras")
    lock_out(root, "model.keras", BAD_MD5)


OBJECT = str(Path("project") / CACHE / BAD_MD5[:2] / BAD_MD5[2:])
LINKS_CASES = [
    Case(
        "cache: object is a link to a private file",
        _planted_link,
        verify_cmd("--repair"),
        0,
        "a symbolic link, not a cache object",
        deleted={OBJECT},
        one_error_line=False,
    ),
    Case(
        "cache: prefix folder is a link out",
        _planted_dir_link,
        verify_cmd("--repair"),
        0,
        "a symbolic link, not a cache object",
        deleted={str(Path("project") / CACHE / "ab")},
        one_error_line=False,
    ),
    Case(
        "cache: object is a FIFO",
        _planted_fifo,
        verify_cmd("--repair"),
        0,
        "not a regular file",
        deleted={OBJECT},
        one_error_line=False,
    ),
    Case("cache: link reported, not repaired", _planted_link, verify_cmd(), 1, "a symbolic link", one_error_line=False),
    Case(
        "dvc.lock: output path ../outside",
        _lock_points_outside,
        verify_cmd("--repair"),
        0,
        "content is not",
        deleted={OBJECT},
        one_error_line=False,
    ),
    Case(
        "dvc.lock: output through a linked folder",
        _lock_points_through_link,
        verify_cmd("--repair"),
        0,
        "content is not",
        deleted={OBJECT},
        one_error_line=False,
    ),
    Case(
        "workspace output is a link to a private file",
        _workspace_link,
        verify_cmd("--repair"),
        0,
        "corrupt workspace output model.keras",
        deleted={OBJECT, "project/model.keras"},
        one_error_line=False,
    ),
    Case(
        "dvc.lock: alias bomb",
        lambda r, o: (r / "dvc.lock").write_text(ALIAS_BOMB),
        verify_cmd(),
        2,
        "dvc.lock: line 1 not valid YAML (anchors and aliases",
    ),
    Case(
        "folder: image link to a private file",
        _both(lambda r, o: [image(r / f"images/{i}.png") for i in range(4)], _outside_link("images/x.png")),
        scan_folder,
        0,
        "symbolic link out of the folder",
        created={"project/data"},
        one_error_line=False,
    ),
    Case(
        "folder: class folder link out",
        _both(lambda r, o: [image(r / f"images/a/{i}.png") for i in range(4)], _outside_link("images/b", ".")),
        scan_folder,
        0,
        "symbolic link out of the folder",
        created={"project/data"},
        one_error_line=False,
    ),
    Case(
        "folder: FIFO named .png",
        _both(lambda r, o: [image(r / f"images/{i}.png") for i in range(4)], _fifo("images/x.png")),
        scan_folder,
        0,
        "not a regular file",
        created={"project/data"},
        one_error_line=False,
    ),
]


def _images_and(setup):
    return _both(lambda r, o: image(r / "in/a.png"), setup)


MODEL = "models/autoencoder.keras"
MODEL_CASES = [
    Case(
        "model: 9 MiB config.json (deflated to KB)",
        _images_and(lambda r, o: keras_zip(r / MODEL, b" " * (9 << 20))),
        cae("denoise", "in", "-o", "out"),
        2,
        "its config.json is 9,437,184 bytes, over the limit",
    ),
    Case(
        "model: 2,000 archive entries",
        _images_and(lambda r, o: keras_zip(r / MODEL, extra=2000)),
        cae("denoise", "in", "-o", "out"),
        2,
        "too many entries",
    ),
    Case(
        "model: 4 GB declared uncompressed",
        _images_and(lambda r, o: zip_bomb_size(r / MODEL)),
        cae("score", "in"),
        2,
        "bytes uncompressed, over the limit",
    ),
    Case(
        "model: not a zip",
        _images_and(lambda r, o: (r / "models").mkdir() or (r / MODEL).write_bytes(b"x" * 99)),
        cae("denoise", "in", "-o", "out"),
        2,
        "not a Keras model file",
    ),
    Case(
        "model: output 4×4 for 8×8 input",
        _images_and(lambda r, o: _model(r, "shrink")),
        cae("denoise", "in", "-o", "out"),
        2,
        "output shape (4, 4, 1) differs from its input shape (8, 8, 1)",
        created={"project/out"},  # made empty before the model loads: proven writable
    ),
    Case(
        "model: 1 channel in, 3 out",
        _images_and(lambda r, o: _model(r, "rgb_out")),
        cae("denoise", "in", "-o", "out"),
        2,
        "output shape (8, 8, 3) differs from its input shape (8, 8, 1)",
        created={"project/out"},  # made empty before the model loads: proven writable
    ),
    Case(
        "model: two outputs",
        _images_and(lambda r, o: _model(r, "two")),
        cae("score", "in"),
        2,
        "1 inputs and 2 outputs",
    ),
    Case(
        "model: output shape differs (stage evaluate)",
        _both(prepared, lambda r, o: _model(r, "shrink")),
        stage("evaluate"),
        2,
        "differs from its input shape",
    ),
    Case(
        "model: 16×16 model for 8×8 data (stage plots)",
        _both(prepared, lambda r, o: _model(r, "big")),
        stage("plots"),
        2,
        "takes images of shape (16, 16, 1), but the data's are (8, 8, 1)",
    ),
]


def _model(root: Path, kind: str) -> None:
    import keras

    from cae.model import save_model

    shape = (16, 16, 1) if kind == "big" else (8, 8, 1)
    x = keras.Input(shape)
    if kind == "shrink":
        out = keras.layers.MaxPooling2D(2)(x)
    elif kind == "rgb_out":
        out = keras.layers.Conv2D(3, 1)(x)
    elif kind == "two":
        out = [keras.layers.Conv2D(1, 1)(x), keras.layers.Conv2D(1, 1)(x)]
    else:
        out = keras.layers.Conv2D(1, 1)(x)
    save_model(keras.Model(x, out), root / MODEL)


P = "data/prepared"
DATA_CASES = [
    Case(
        "data: NaN in x_test_noisy",
        lambda r, o: prepared(r, x_test_noisy=np.full((8, 8, 8, 1), np.nan, np.float32)),
        stage("evaluate"),
        2,
        f"{P}/x_test_noisy.npy: holds a non-finite value (nan",
    ),
    Case(
        "data: inf in x_test_levels",
        lambda r, o: prepared(r, x_test_levels=np.full((1, 8, 8, 8, 1), np.inf, np.float32)),
        stage("baselines"),
        2,
        f"{P}/x_test_levels.npy: holds a non-finite value (inf",
    ),
    Case(
        "data: x_test float64",
        lambda r, o: prepared(r, x_test=np.zeros((8, 8, 8, 1))),
        stage("evaluate"),
        2,
        f"{P}/x_test.npy: expected uint8 with 4 dimensions, got float64",
    ),
    Case(
        "data: x_test_noisy 4×4 images",
        lambda r, o: prepared(r, x_test_noisy=np.zeros((8, 4, 4, 1), np.float32)),
        stage("plots"),
        2,
        f"{P}/x_test_noisy.npy: images of shape (4, 4, 1), but x_test.npy has (8, 8, 1)",
    ),
    Case(
        "data: y_test one label short",
        lambda r, o: prepared(r, y_test=np.zeros(7, np.uint8)),
        stage("generate"),
        2,
        f"{P}/y_test.npy: 7 images or labels, but x_test.npy has 8",
    ),
    Case(
        "data: x_train 3-D",
        lambda r, o: prepared(r, x_train=np.zeros((8, 8, 8), np.uint8)),
        stage("train"),
        2,
        f"{P}/x_train.npy: expected uint8 with 4 dimensions, got uint8 (8, 8, 8)",
    ),
    Case(
        "data: NaN in x_train_noisy (streamed)",
        lambda r, o: prepared(r, x_train_noisy=np.full((8, 8, 8, 1), np.nan, np.float32)),
        stage("train"),
        2,
        f"{P}/x_train_noisy.npy: holds a non-finite value",
    ),
    Case(
        "data: structured dtype",
        lambda r, o: prepared(r, x_val=np.zeros(8, [("a", "u1"), ("b", "f4")])),
        stage("baselines"),
        2,
        f"{P}/x_val.npy: unreadable or corrupt (holds",
    ),
    Case(
        "data: header promises 10¹² rows",
        _both(prepared, lambda r, o: huge_header(r / P / "x_test_noisy.npy")),
        stage("evaluate"),
        2,
        f"{P}/x_test_noisy.npy: unreadable or corrupt (file is truncated",
    ),
    Case(
        "data: raw x_train float32",
        lambda r, o: raw(r, x_train=np.zeros((10, 8, 8, 1), np.float32)),
        stage("noisy_pairs"),
        2,
        "data/raw/x_train.npy: expected uint8 with 4 dimensions, got float32",
    ),
    Case(
        "data: raw image shapes differ",
        lambda r, o: raw(r, x_test=np.zeros((10, 4, 4, 1), np.uint8)),
        stage("noisy_pairs"),
        2,
        "data/raw/x_test.npy: images of shape (4, 4, 1), but x_train.npy has (8, 8, 1)",
    ),
    Case(
        "data: raw labels longer than images",
        lambda r, o: raw(r, y_train=np.zeros(11, np.uint8)),
        stage("noisy_pairs"),
        2,
        "data/raw/y_train.npy: 11 images or labels, but x_train.npy has 10",
    ),
]


OUTPUT_CASES = [
    Case(
        "cae output: file is a link to a private file",
        _both(lambda r, o: image(r / "in/a.png"), _outside_link("out/a.png")),
        lambda r: _process(r),
        1,
        "out/a.png already exists",
        one_error_line=False,
    ),
    Case(
        "cae output: --overwrite replaces the link itself",
        _both(lambda r, o: image(r / "in/a.png"), _outside_link("out/a.png")),
        lambda r: _process(r, overwrite=True),
        0,
        "1 written",
        deleted={"project/out/a.png"},
        created={"project/out/a.png"},
        one_error_line=False,
    ),
    Case(
        "cae output: sub-folder is a link out",
        _both(lambda r, o: image(r / "in/sub/a.png"), lambda r, o: (r / "out").mkdir() or os.symlink(o, r / "out/sub")),
        lambda r: _process(r, recursive=True),
        1,
        "is a symbolic link out of out",
        one_error_line=False,
    ),
]


def _process(root: Path, overwrite: bool = False, recursive: bool = False) -> int:
    """What `cae denoise in -o out` does once the model is loaded, with the identity as the model."""
    from cae.images import collect_inputs, process

    outcomes, _ = process(
        collect_inputs(["in"], recursive=recursive), lambda b: b, (8, 8, 1), out_dir=Path("out"), overwrite=overwrite
    )
    for o in outcomes:
        if o.error:
            print(f"error: {o.source.path}: {o.error}", file=sys.stderr)
    done = sum(o.error is None for o in outcomes)
    print(f"{done} written, {len(outcomes) - done} failed", file=sys.stderr)
    return 0 if done == len(outcomes) else 1


CASES = PARAMS_CASES + LINKS_CASES + MODEL_CASES + DATA_CASES + OUTPUT_CASES


def snapshot(top: Path) -> dict[str, tuple]:
    """Every entry under ``top``: its mode and its bytes (a file), target (a link) or kind;
    nothing is followed or opened except regular files."""
    seen = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                what = path.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(path)
            else:
                what = stat.S_IFMT(st.st_mode)
            seen[str(path.relative_to(top))] = (st.st_mode, what)
    return seen


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case, tmp_path, monkeypatch, capsys):
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(SECRET)
    (outside / "secret").chmod(0o600)
    monkeypatch.chdir(project)
    case.setup(project, outside)
    if not os.path.lexists(project / "params.yaml"):
        params_with(project, dataset="mnist_sample", epochs=1, batch_size=4)
    before = snapshot(tmp_path)
    capsys.readouterr()
    start = time.monotonic()
    code = case.run(project)
    elapsed = time.monotonic() - start
    out, err = capsys.readouterr()
    after = snapshot(tmp_path)

    assert code == case.code, err
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if case.one_error_line:
        assert len(errors) == 1 and case.expect in errors[0], err[:3000]
        assert len(errors[0]) <= 600, errors[0][:1000]
    else:
        assert case.expect in out + err, (out + err)[:3000]
    assert elapsed < TIME_LIMIT
    # nothing lost: every entry as it was, but for what the row deletes or makes
    changed = {p for p in before if p not in after or after[p] != before[p]}
    assert changed <= case.deleted, changed
    new = {p for p in after if p not in before}
    assert all(any(p == c or p.startswith(c + os.sep) for c in case.created) for p in new), new
    assert (outside / "secret").read_bytes() == SECRET
    assert stat.S_IMODE(os.lstat(outside / "secret").st_mode) == 0o600


def test_a_stage_process_refuses_an_alias_bomb_in_bounded_time_and_memory(tmp_path):
    """The real entry point, as DVC runs it, in a child limited to 1 GiB of memory."""
    params(tmp_path, ALIAS_BOMB)
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
            "import runpy; runpy.run_module('cae.stages.train', run_name='__main__')",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [
        "error: params.yaml: line 1 not valid YAML (anchors and aliases (&name, *name) are not allowed: "
        "write each value out)"
    ]
    assert time.monotonic() - start < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
