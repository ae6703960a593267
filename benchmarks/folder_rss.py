"""Peak memory of `noisy_pairs` and `train` on a folder of N and 4N colour images.

    python benchmarks/folder_rss.py [--n 5000] [--workdir /tmp/cae-folder-rss] [--epochs 1]

For each size (N and 4N) it writes that many 64×64 RGB PNG images (smooth random
blobs, 10 class sub-folders) under ``--workdir``, then runs the stages
`download` (dataset: folder), `noisy_pairs` and `train` (``--epochs`` epochs, the
reference architecture) as DVC would, each in its own process, and reports each
process's peak resident set size (``ru_maxrss`` of the finished child) and its wall
time. Streaming keeps the peaks nearly flat as the folder grows, where loading the
arrays whole would grow them with the data (the last column: the prepared arrays'
size on disk).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SIZE = 64


def make_images(root: Path, n: int, seed: int = 0) -> None:
    """``n`` smooth 64×64 RGB images in 10 class folders (deterministic)."""
    if root.is_dir() and sum(1 for _ in root.rglob("*.png")) == n:
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    for i in range(n):
        c = i % 10
        img = np.zeros((SIZE, SIZE, 3), np.float32)
        for _ in range(3):
            cy, cx, r = rng.random(3) * [1, 1, 0.3] + [0, 0, 0.05]
            img += rng.random(3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None]
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(folder / f"{i:06d}.png")


def run_stage(name: str, cwd: Path) -> tuple[float, float]:
    """Run one stage in a child process; return (peak RSS in MiB, wall seconds)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", f"cae.stages.{name}"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed:\n{err[-3000:]}")
    return usage.ru_maxrss / 1024, wall  # Linux: kilobytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/cae-folder-rss"))
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    rows = []
    for n in (args.n, 4 * args.n):
        images = args.workdir / f"images-{n}"
        t0 = time.perf_counter()
        make_images(images, n)
        project = args.workdir / f"project-{n}"
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir(parents=True)
        params.update(dataset="folder", epochs=args.epochs)
        params["folder"].update(path=str(images), size=[SIZE, SIZE], channels=3)
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        print(f"{n} images ready in {time.perf_counter() - t0:.0f} s", flush=True)
        for stage in ("download", "noisy_pairs", "train"):
            rss, wall = run_stage(stage, project)
            disk = sum(p.stat().st_size for p in (project / "data").rglob("*.npy")) / 2**20
            rows.append((n, stage, rss, wall, disk))
            print(
                f"  {stage:12s} peak RSS {rss:7.0f} MiB  {wall:6.1f} s  (data/*.npy so far: {disk:.0f} MiB)", flush=True
            )
        shutil.rmtree(project / "data", ignore_errors=True)
    print("\n| images | stage | peak RSS (MiB) | wall (s) | data/*.npy on disk (MiB) |\n|---|---|---|---|---|")
    for n, stage, rss, wall, disk in rows:
        print(f"| {n:,} | {stage} | {rss:.0f} | {wall:.0f} | {disk:.0f} |")
    by = {(n, s): rss for n, s, rss, _, _ in rows}
    for stage in ("download", "noisy_pairs", "train"):
        print(f"{stage}: 4N/N peak RSS ratio {by[(4 * args.n, stage)] / by[(args.n, stage)]:.2f}")
    print(
        f"(peak RSS of this process's children, resource: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
