"""Classical denoising baselines on the prepared MNIST split (the acceptance numbers).

    .venv/bin/python benchmarks/baselines_mnist.py data/prepared [--workers 2] [--json out.json]

Reads x_val / x_val_noisy / x_test / x_test_noisy from the prepared-data directory
(read-only), tunes every method of ``cae.baselines`` on a seeded subset of validation
images and scores it on a seeded subset of test images:

* test subset: ``np.random.default_rng(0).choice(len(x_test), n_test, replace=False)``, sorted;
* validation subset: the same with ``default_rng(1)`` and ``n_val``.

Prints the noisy input's PSNR/SSIM on the test subset and one row per method: PSNR, SSIM,
chosen hyperparameters, seconds spent tuning and denoising. ``--level`` is the noise
factor the prepared data were made with (params.yaml ``noise.factor``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from cae import baselines
from cae.evaluate import psnr_ssim


def _load(directory: Path, name: str) -> np.ndarray:
    path = directory / f"{name}.npy"
    if not path.is_file():
        sys.exit(f"error: {path} not found (run `dvc repro noisy_pairs` first)")
    return np.load(path, allow_pickle=False)


def _clean(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


def _subset(n_total: int, n: int, seed: int) -> np.ndarray:
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path, help="prepared-data directory, e.g. data/prepared")
    ap.add_argument("--level", type=float, default=0.4, help="noise factor of the prepared data (default 0.4)")
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--n-val", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--methods", default=",".join(baselines.METHODS), help="comma-separated subset")
    ap.add_argument(
        "--bm3d-profile",
        default=baselines.BM3D_PROFILE,
        choices=baselines.BM3D_PROFILES,
        help="BM3D variant (default: the package's reference profile 'np')",
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    baselines.BM3D_PROFILE = args.bm3d_profile
    methods = tuple(m for m in args.methods.split(",") if m)

    x_val, x_val_noisy = _load(args.data_dir, "x_val"), _load(args.data_dir, "x_val_noisy")
    x_test, x_test_noisy = _load(args.data_dir, "x_test"), _load(args.data_dir, "x_test_noisy")
    iv = _subset(len(x_val), args.n_val, 1)
    it = _subset(len(x_test), args.n_test, 0)
    clean_val, noisy_val = _clean(x_val[iv]), x_val_noisy[iv].astype(np.float32)
    clean_test, noisy_test = _clean(x_test[it]), x_test_noisy[it].astype(np.float32)

    noisy_psnr, noisy_ssim = psnr_ssim(noisy_test, clean_test, "noisy input")
    print(
        f"MNIST {args.data_dir}: level {args.level}, {len(it)} test images (seed 0), "
        f"{len(iv)} validation images (seed 1), workers {args.workers}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(f"noise scale σ̂ (validation): {baselines.noise_scale(noisy_val):.4f}")
    print(f"noisy input: PSNR {noisy_psnr:.2f} dB, SSIM {noisy_ssim:.3f}\n")

    t0 = time.perf_counter()
    res = baselines.run_baselines(
        noisy_val, clean_val, noisy_test, clean_test, args.level, methods=methods, workers=args.workers
    )
    total = time.perf_counter() - t0

    print("| method | PSNR dB | SSIM | hyperparameters | tune s | denoise s |")
    print("|---|---|---|---|---|---|")
    print(f"| noisy input | {noisy_psnr:.2f} | {noisy_ssim:.3f} | | | |")
    for m, r in res.items():
        hyper = ", ".join(f"{k}={v}" for k, v in r["hyper"].items()) or "—"
        print(f"| {m} | {r['psnr']:.2f} | {r['ssim']:.3f} | {hyper} | {r['tune_seconds']:.1f} | {r['seconds']:.1f} |")
    print(f"\ntotal {total:.0f} s")
    if args.json:
        out = {
            "level": args.level,
            "n_test": int(len(it)),
            "n_val": int(len(iv)),
            "workers": args.workers,
            "noisy": {"psnr": noisy_psnr, "ssim": noisy_ssim},
            "methods": res,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
