"""Acceptance measurements of the `cae` command, and the figure docs/tiling.png.

Run from the repository root after `dvc repro` (or point the options elsewhere):

    python benchmarks/cli_bench.py [--model models/autoencoder.keras] [--prepared data/prepared]
                                   [--workdir DIR] [--images 1000] [--figure docs/tiling.png]

1. Throughput: writes the first ``--images`` noisy test images of ``--prepared``
   (x_test_noisy, quantised to 8-bit PNG) into a folder and times the whole
   ``cae denoise FOLDER -o OUT -v`` command (start-up included); its ``-v`` line
   gives the time spent reading, in the model and writing.
2. Tiling: builds a clean 512×512 image from an 18×18 grid of test digits (504×504,
   padded by 4 black pixels on each side), adds Gaussian noise of factor 0.4
   (``cae.noise.corrupt``, seed 0), saves it as an 8-bit PNG and denoises it with
   ``cae denoise`` (overlapping tiles) and ``cae denoise --resize``. Prints the
   PSNR / SSIM of each and of the noisy input against the clean image, and of
   side-by-side tiles without overlap (the library's ``tiled_apply`` with
   stride = tile), to show what the blending removes.
3. Draws noisy / side-by-side tiles / blended tiles / resize / clean, full size and a
   magnified crop across tile borders, into ``--figure``.

Everything it writes goes under ``--workdir`` (a new temporary folder by default),
except the figure.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cae.errors import CaeError
from cae.evaluate import psnr_ssim
from cae.io import atomic_path, read_arrays
from cae.noise import corrupt
from cae.prepare import to_float

CAE = Path(sys.executable).parent / "cae"
CROP = (slice(70, 154), slice(98, 182))  # 84×84 pixels across several tile borders


def run_cae(*args: object) -> tuple[float, str]:
    """Run the installed `cae`, return (wall seconds, stderr); fail loudly on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.run([str(CAE), *map(str, args)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"cae {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return seconds, proc.stderr


def throughput(noisy: np.ndarray, model: Path, work: Path, count: int) -> None:
    folder, out = work / "digits", work / "digits-denoised"
    folder.mkdir(parents=True)
    for i, image in enumerate(noisy[:count]):
        Image.fromarray(np.rint(image[..., 0] * 255).astype(np.uint8)).save(folder / f"{i:05d}.png")
    seconds, err = run_cae("denoise", folder, "-o", out, "--model", model, "-v")
    written = len(list(out.iterdir()))
    timing = re.search(r"reading ([\d.]+) s, model ([\d.]+) s, writing ([\d.]+) s", err)
    read, infer, write = (float(t) for t in timing.groups()) if timing else (float("nan"),) * 3
    print(
        f"1. cae denoise on {count} PNGs of 28×28: {written} written in {seconds:.2f} s wall "
        f"= {written / seconds:.0f} images/s (start-up included)"
    )
    print(
        f"   reading {read:.2f} s, model {infer:.2f} s ({written / infer:.0f} images/s), writing {write:.2f} s; "
        f"read+model+write {written / (read + infer + write):.0f} images/s"
    )


def digit_mosaic(x_test: np.ndarray) -> np.ndarray:
    """An 18×18 grid of 28×28 test digits, padded to 512×512, uint8 (512, 512)."""
    grid = x_test[: 18 * 18, ..., 0].reshape(18, 18, 28, 28).transpose(0, 2, 1, 3).reshape(504, 504)
    return np.pad(grid, 4)


def tiling(x_test: np.ndarray, model: Path, work: Path) -> dict[str, np.ndarray]:
    clean = to_float(digit_mosaic(x_test))[..., None]
    noisy = corrupt(clean[None], "gaussian", 0.4, np.random.default_rng(0))[0]
    noisy_png = work / "mosaic" / "noisy.png"
    noisy_png.parent.mkdir(parents=True)
    Image.fromarray(np.rint(noisy[..., 0] * 255).astype(np.uint8)).save(noisy_png)

    def load(path: Path) -> np.ndarray:
        with Image.open(path) as im:
            return to_float(np.asarray(im))[..., None]

    results = {"noisy": load(noisy_png)}
    for name, extra in (("tiles", []), ("resize", ["--resize"])):
        seconds, _ = run_cae("denoise", noisy_png, "-o", work / name, "--model", model, *extra)
        results[name] = load(work / name / "noisy.png")
        print(f"   cae denoise {' '.join(extra) or '(tiles)':<9} {seconds:.2f} s wall")
    results["side by side"] = side_by_side_tiles(results["noisy"], model)
    results["clean"] = clean
    print("2. 512×512 digit mosaic, Gaussian noise 0.4 (seed 0), against the clean image:")
    for name in ("noisy", "tiles", "resize", "side by side"):
        psnr, ssim = psnr_ssim(results[name][None], clean[None])
        label = {
            "noisy": "noisy input (8-bit PNG)",
            "tiles": "cae denoise (overlapping tiles)",
            "resize": "cae denoise --resize",
            "side by side": "tiles side by side, no overlap",
        }[name]
        print(f"   {label:<34} PSNR {psnr:6.2f} dB   SSIM {ssim:.3f}")
    return results


def side_by_side_tiles(noisy: np.ndarray, model_path: Path) -> np.ndarray:
    """What tiling without overlap or blending gives (8-bit, like a written file)."""
    from cae import runtime  # noqa: F401
    from cae.images import tiled_apply
    from cae.model import load_model

    model = load_model(model_path)
    h, w = model.input_shape[1:3]
    out = tiled_apply(lambda b: model.predict(b, verbose=0), noisy, (h, w), stride=(h, w))
    return np.rint(np.clip(out, 0, 1) * 255) / 255


def figure(results: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    order = [
        ("noisy", "noisy input"),
        ("side by side", "tiles side by side\n(no overlap: seams)"),
        ("tiles", "cae denoise\n(overlapping tiles, blended)"),
        ("resize", "cae denoise --resize"),
        ("clean", "clean"),
    ]
    fig, axes = plt.subplots(2, len(order), figsize=(2.6 * len(order), 5.6))
    (ys, xs) = CROP
    for col, (key, title) in enumerate(order):
        image = results[key][..., 0]
        axes[0, col].imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
        axes[0, col].add_patch(
            Rectangle(
                (xs.start, ys.start),
                xs.stop - xs.start,
                ys.stop - ys.start,
                fill=False,
                edgecolor="tab:orange",
                linewidth=1,
            )
        )
        axes[1, col].imshow(image[CROP], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if key != "clean":
            psnr, _ = psnr_ssim(results[key][None], results["clean"][None])
            title += f"\nPSNR {psnr:.2f} dB"
        axes[0, col].set_title(title, fontsize=9)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_ylabel("crop (orange box)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})
    plt.close(fig)
    print(f"3. figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/autoencoder.keras"))
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--figure", type=Path, default=Path("docs/tiling.png"))
    args = parser.parse_args()
    data = read_arrays(args.prepared, ["x_test", "x_test_noisy"], hint="run `dvc repro noisy_pairs`", mmap=True)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cae-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"model {args.model}, scratch {work}")
    throughput(data["x_test_noisy"], args.model, work, args.images)
    results = tiling(np.asarray(data["x_test"]), args.model, work)
    figure(results, args.figure)


if __name__ == "__main__":
    try:
        main()
    except CaeError as exc:
        sys.exit(f"error: {exc}")
