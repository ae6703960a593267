"""Every file and folder the pipeline reads or writes, and the hint that names the stage
producing each one; relative to the repository root (the stages run there).

The stage modules, the readers in the library (:func:`cae.anomaly.read_class`,
:func:`cae.latent.read_codes`, :func:`cae.latent.load_embedding`) and ``cae`` (the
command) all take their paths from here, so a path is spelled once.
"""

from __future__ import annotations

from pathlib import Path

# download → data/raw, noisy_pairs → data/prepared
RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
HINT_RAW = "run `dvc repro download`"
HINT_PREPARED = "run `dvc repro noisy_pairs`"

METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")

# baselines
BASELINES_DIR = Path("data/baselines")
BASELINES_BY_NOISE = BASELINES_DIR / "by_noise.csv"
BASELINES_TUNED = BASELINES_DIR / "tuned.json"
BASELINES_METRICS = METRICS_DIR / "baselines.json"
HINT_BASELINES = "run `dvc repro baselines`"

# train
MODEL_PATH = Path("models/autoencoder.keras")
HINT_MODEL = "run `dvc repro train` (or `dvc pull`) first"
TRAIN_LOG_DIR = Path("dvclive")
TRAIN_METRICS = METRICS_DIR / "train.json"
TIMING_METRICS = METRICS_DIR / "train_timing.json"  # shown by `dvc metrics show`, not a stage output
BACKUP_ROOT = Path(".cae/train-backup")  # git-ignored; not a DVC output

# evaluate, plots
EVAL_METRICS = METRICS_DIR / "eval.json"
PSNR_BY_NOISE = PLOTS_DIR / "psnr_by_noise.csv"
RECONSTRUCTIONS_PLOT = PLOTS_DIR / "reconstructions.png"
DENOISING_PLOT = PLOTS_DIR / "denoising.png"

# anomaly_models, anomaly
ANOMALY_DIR = Path("data/anomaly")
ANOMALY_METRICS = METRICS_DIR / "anomaly.json"
ANOMALY_BY_CLASS = PLOTS_DIR / "anomaly_by_class.csv"
ANOMALY_ROC = PLOTS_DIR / "anomaly_roc.csv"
ANOMALY_EXAMPLES = PLOTS_DIR / "anomaly_examples.png"


def class_dir(label: int) -> Path:
    """What `anomaly_models` writes for class ``label``: its model, scores and stats."""
    return ANOMALY_DIR / str(label)


def class_hint(label: int) -> str:
    return "run `dvc repro anomaly_models`"


# train_embedding, latent, generate
LATENT_DIR = Path("data/latent")
HINT_LATENT = "run `dvc repro latent`"
LATENT_METRICS = METRICS_DIR / "latent.json"
LATENT_PLOT = PLOTS_DIR / "latent_2d.png"
SAMPLES_PLOT = PLOTS_DIR / "samples.png"
INTERPOLATION_PLOT = PLOTS_DIR / "interpolation.png"


def embedding_path(variant: str) -> Path:
    return Path(f"models/embedding-{variant}.keras")


HINT_EMBEDDING = "run `dvc repro train_embedding`"
