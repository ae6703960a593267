"""One typed schema for params.yaml.

Every stage calls :func:`load_params` once, before any work. An unknown key, a value
of the wrong type or an impossible value raises :class:`~cae.errors.ParamsError`
whose message names the file and the dotted key, e.g.::

    params.yaml: model.filters: must list at least one filter count (got [])

The file itself is read defensively (:func:`read_yaml`): at most
:data:`MAX_PARAMS_BYTES`, UTF-8 only, one YAML document, no anchors or aliases (an
"alias bomb" expands exponentially), at most :data:`MAX_DEPTH` levels of nesting. So
params.yaml of any content gives either valid params or one short
:class:`ParamsError` line, in bounded time and memory. Every number has the bound
its use downstream needs, and the error states it.
"""

from __future__ import annotations

import codecs
import importlib.util
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cae.errors import CaeError, ParamsError

DEFAULT_PARAMS = Path("params.yaml")

MNIST_MIRRORS = [
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
]

FASHION_MNIST_MIRRORS = [
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
]

PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]

# Upper bounds, each where a larger value would fail (or exhaust memory) downstream.
Seed = Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)]  # NumPy's legacy seeding, which Keras uses
Workers = Annotated[int, Field(strict=True, gt=0, le=256)]  # processes; results are the same for any number
Epochs = Annotated[int, Field(strict=True, gt=0, le=100_000)]
BatchSize = Annotated[int, Field(strict=True, gt=0, le=65_536)]
NoiseLevel = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]  # beyond std 100 every pixel is clipped
MAX_LEVELS = 32  # noise levels: each is a full copy of the test set on disk

# Lists of names, each defined once; the schema's choices below are derived from them.
# (cae.noise keys its corruption functions, cae.baselines its methods and cae.anomaly
# its scores by these names.)
NOISE_KINDS: tuple[str, ...] = ("gaussian", "salt_pepper", "speckle", "poisson", "masking")
BASELINE_METHODS: tuple[str, ...] = ("median", "gaussian", "tv", "nlmeans", "wavelet", "bm3d")
# the default baselines.methods: all but BM3D, whose package is an optional extra
DEFAULT_BASELINE_METHODS: tuple[str, ...] = tuple(m for m in BASELINE_METHODS if m != "bm3d")
AE_SCORES: tuple[str, ...] = ("mse", "ssim", "latent", "knn")  # per-image scores of a one-class autoencoder
DEFAULT_ENSEMBLE: tuple[str, ...] = ("ssim", "knn")  # anomaly.ensemble's default: a pixel and a code score
ENSEMBLE_SCORE = "ensemble"  # the mean of the standardised scores of anomaly.ensemble
ANOMALY_SCORES: tuple[str, ...] = (*AE_SCORES, ENSEMBLE_SCORE)  # the choices of anomaly.score

if TYPE_CHECKING:  # a type checker cannot read a Literal built from a tuple: plain strings to it
    NoiseKind: TypeAlias = str
    BaselineMethod: TypeAlias = str
    AEScore: TypeAlias = str
    AnomalyScore: TypeAlias = str
else:  # Literal[names]: the schema accepts exactly these names, and its error message lists them
    NoiseKind = Literal[NOISE_KINDS]
    BaselineMethod = Literal[BASELINE_METHODS]
    AEScore = Literal[AE_SCORES]
    AnomalyScore = Literal[ANOMALY_SCORES]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DownloadParams(Section):
    """Where the ``download`` stage looks for MNIST (and Fashion-MNIST), in order."""

    path: str | None = None
    mirrors: list[str] = Field(default_factory=lambda: list(MNIST_MIRRORS))
    fashion_mirrors: list[str] = Field(default_factory=lambda: list(FASHION_MNIST_MIRRORS))
    pypi: bool = True
    timeout: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 20.0
    retries: Annotated[int, Field(strict=True, ge=0, le=100)] = 2


class FolderParams(Section):
    """``dataset: folder``: a directory of PNG/JPEG/BMP/TIFF images, optionally one
    sub-folder per class (the sub-folder's name is the label)."""

    path: str | None = None
    # [height, width]; null: the images' own (common) size
    size: list[Annotated[int, Field(strict=True, gt=0, le=8192)]] | None = None
    fit: Literal["resize", "crop"] = "resize"  # how an image of another size is brought to `size`
    channels: Literal[1, 3] = 1
    test_fraction: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.2
    seed: Seed = 0  # the train / test split
    # larger images are skipped (decompression bombs)
    max_pixels: Annotated[int, Field(strict=True, gt=0, le=2**30)] = 50_000_000

    @field_validator("size", mode="before")
    @classmethod
    def _height_width(cls, v):
        if isinstance(v, list) and len(v) != 2:
            raise ValueError(f"must be [height, width] (got {_short(repr(v))})")
        return v


class SplitParams(Section):
    val_fraction: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.1


class NoiseParams(Section):
    """Synthetic corruption (see :mod:`cae.noise` for what ``factor`` means per kind)."""

    kind: NoiseKind = "gaussian"
    factor: NoiseLevel | Annotated[list[NoiseLevel], Field(max_length=MAX_LEVELS)] = 0.4
    eval_levels: Annotated[list[NoiseLevel], Field(max_length=MAX_LEVELS)] = Field(
        default_factory=lambda: [0.2, 0.4, 0.6]
    )
    block: Annotated[int, Field(strict=True, gt=0, le=4096)] = 1

    @field_validator("factor", "eval_levels")
    @classmethod
    def _levels_make_sense(cls, v, info: ValidationInfo):
        values = v if isinstance(v, list) else [v]
        if info.field_name == "factor" and not values:
            raise ValueError("must be a number or a non-empty list of numbers (got [])")
        kind = info.data.get("kind")
        if kind in ("salt_pepper", "masking") and any(x > 1 for x in values):
            raise ValueError(f"for noise.kind {kind} a level is a fraction of pixels, at most 1 (got {v})")
        if kind == "poisson" and any(0 < x < POISSON_MIN for x in values):
            # 1/level² photons: below this NumPy's Poisson sampler overflows
            raise ValueError(f"for noise.kind poisson a level is 0 or at least {POISSON_MIN} (got {v})")
        return v

    @property
    def train_levels(self) -> list[float]:
        """The level(s) training and validation pairs are corrupted at."""
        return list(self.factor) if isinstance(self.factor, list) else [self.factor]

    @property
    def test_level(self) -> float:
        """The headline test level: ``factor``, or its first entry when it is a list."""
        return self.train_levels[0]

    @property
    def levels(self) -> list[float]:
        """Every level evaluated: the headline level and ``eval_levels``, sorted, unique."""
        return sorted({self.test_level, *self.eval_levels})


POISSON_MIN = 1e-6

LossName = Literal["bce", "mse", "mae", "ssim", "psnr"]

# Named architectures. A preset fills every model key that params.yaml leaves null;
# a key set explicitly overrides the preset.
PRESETS: dict[str, dict] = {
    # the reference Keras script: Conv(16)-Pool-Conv(8)-Pool, mirrored with UpSampling
    "reference": {
        "filters": [16, 8],
        "kernel_size": 3,
        "activation": "relu",
        "downsample": "maxpool",
        "upsample": "upsampling",
        "convs_per_level": 1,
        "middle": [],
        "batch_norm": False,
        "skip": False,
        "skip_merge": "concat",
        "residual": False,
        "space_to_depth": 1,
        "head": "conv",
        "learning_rate": 1e-3,
        "schedule": "constant",
        "loss": "bce",
        "latent_dim": None,
        "variational": False,
        "kl_weight": 1.0,
    },
    # the same shape, four times the filters
    "wide": {"filters": [32, 64]},
    # strided convolutions down, transposed convolutions up
    "strided": {"filters": [32, 64], "downsample": "strided", "upsample": "transpose"},
    # a small U-Net, fast on a CPU: batch norm and skip connections
    "unet": {"filters": [8, 16], "batch_norm": True, "skip": True},
    # the same U-Net with twice the filters
    "unet_wide": {"filters": [16, 32], "batch_norm": True, "skip": True},
    # unet_wide with two convolutions of 64 filters at its bottom (a wider view), trained on
    # each image's PSNR with a cosine schedule (docs/denoising.md)
    "unet_mid": {
        "filters": [16, 32],
        "middle": [64, 64],
        "batch_norm": True,
        "skip": True,
        "learning_rate": 5e-3,
        "schedule": "cosine",
        "loss": "psnr",
    },
    # unet_mid's training on a U-Net that folds each 2×2 block of pixels into channels first
    # (space_to_depth: every convolution on a quarter of the pixels), adds its skips, and
    # spends what the fold saves on width and depth: the best denoiser here in 10 minutes of
    # CPU training (docs/denoising.md)
    "unet_fold": {
        "filters": [64],
        "middle": [128, 128, 128],
        "convs_per_level": 2,
        "space_to_depth": 2,
        "batch_norm": True,
        "skip": True,
        "skip_merge": "add",
        "learning_rate": 3e-3,
        "schedule": "cosine",
        "loss": "psnr",
    },
    # the small U-Net predicting the noise (residual output), trained on MSE
    "resunet": {"filters": [8, 16], "batch_norm": True, "skip": True, "residual": True, "loss": "mse"},
    # the classic U-Net shape: two convolutions per level, wider (for a GPU)
    "unet_deep": {"filters": [32, 64], "convs_per_level": 2, "batch_norm": True, "skip": True},
    # speed to quality on a CPU: the reference's code size (7×7×8), strided convolutions down,
    # transposed up, the last of them the output (no convolution at full resolution), a higher
    # learning rate; no skips
    "fast": {
        "filters": [32, 8],
        "downsample": "strided",
        "upsample": "transpose",
        "head": "transpose",
        "learning_rate": 5e-3,
    },
}


PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
if TYPE_CHECKING:
    PresetName: TypeAlias = str
else:
    PresetName = Literal[PRESET_NAMES]


class ModelParams(Section):
    """The autoencoder's architecture and optimisation; ``preset`` fills unset keys."""

    preset: PresetName = "reference"
    # at most 10 levels (a 1024-fold halving) of at most 4096 filters
    filters: Annotated[list[Annotated[int, Field(strict=True, gt=0, le=4096)]], Field(max_length=10)]
    kernel_size: Annotated[int, Field(strict=True, gt=0, le=31)]
    activation: Literal["relu", "elu", "gelu", "selu", "swish", "tanh", "leaky_relu"]
    downsample: Literal["maxpool", "avgpool", "strided"]
    upsample: Literal["upsampling", "transpose"]
    convs_per_level: Annotated[int, Field(strict=True, gt=0, le=8)]
    # convolutions at the lowest resolution, after the last halving: one per entry, of that many filters
    middle: Annotated[list[Annotated[int, Field(strict=True, gt=0, le=4096)]], Field(max_length=8)]
    batch_norm: bool
    skip: bool
    # concat: the upsampled features and the encoder's are concatenated (the classic U-Net);
    # add: a 1×1 convolution at the lower resolution brings the features to the encoder's
    # width, upsampled and added to them (half the channels into the next convolution)
    skip_merge: Literal["concat", "add"]
    residual: bool
    # fold each s×s block of pixels into one pixel of s·s·C channels before the encoder and
    # unfold the output (FFDNet): s² fewer pixels for every convolution; 1: no fold
    space_to_depth: Annotated[int, Field(strict=True, gt=0, le=8)]
    # conv: a full-resolution convolution maps the decoder's features to the image (the reference);
    # transpose: the last level's doubling transposed convolution outputs the image itself
    head: Literal["conv", "transpose"]
    learning_rate: PositiveFloat
    # constant: Adam at learning_rate throughout (the reference); cosine: from learning_rate
    # down to 0 along a half cosine over the run's steps (epochs × batches per epoch)
    schedule: Literal["constant", "cosine"]
    loss: LossName | dict[LossName, PositiveFloat]
    latent_dim: Annotated[int, Field(strict=True, gt=0, le=16_384)] | None = None
    # a variational autoencoder: the dense code is sampled (reparameterised) in training
    # and a KL term of this weight pulls it towards N(0, I); 1.0 is the ELBO
    variational: bool = False
    kl_weight: NonNegativeFloat = 1.0

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return data
        preset = data.get("preset") or "reference"
        # An unknown preset (or one of the wrong type) is reported by the Literal check on `preset` alone.
        known = PRESETS.get(preset, {}) if isinstance(preset, str) else {}
        merged = {**PRESETS["reference"], **known, "preset": preset}
        merged.update({k: v for k, v in data.items() if v is not None})
        return merged

    @field_validator("filters")
    @classmethod
    def _not_empty(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("must list at least one filter count (got [])")
        return v

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd so 'same' padding is symmetric (got {v})")
        return v

    @field_validator("variational")
    @classmethod
    def _variational_needs_a_code(cls, v: bool, info: ValidationInfo) -> bool:
        if v and "latent_dim" in info.data and info.data["latent_dim"] is None:
            raise ValueError("needs a dense code: set latent_dim too (e.g. 16)")
        if v and (info.data.get("skip") or info.data.get("residual")):
            raise ValueError("cannot combine with skip or residual: the decoder must read the code alone")
        return v

    @field_validator("head")
    @classmethod
    def _transpose_head(cls, v: str, info: ValidationInfo) -> str:
        if v == "transpose" and info.data.get("upsample") not in (None, "transpose"):
            raise ValueError("transpose needs upsample: transpose (the output is the last up-convolution)")
        if v == "transpose" and (info.data.get("skip") or info.data.get("residual")):
            raise ValueError("transpose cannot combine with skip or residual: use head: conv")
        return v

    @field_validator("loss")
    @classmethod
    def _loss_mix_not_empty(cls, v):
        if isinstance(v, dict) and not v:
            raise ValueError("a loss mix needs at least one weighted term, e.g. {mse: 0.8, ssim: 0.2}")
        return v


def check_input_shape(shape: tuple[int, ...], cfg: ModelParams) -> None:
    """Raise :class:`CaeError` unless the height and width of ``shape`` (H, W, C) survive
    the model's fold (``space_to_depth``) and its halvings (one per entry of ``filters``);
    the message names the sizes nearest to the images' that do."""
    levels, fold = len(cfg.filters), cfg.space_to_depth
    factor = 2**levels * fold
    folded, or_fold = (f" after model.space_to_depth {fold}", " or a smaller space_to_depth") if fold > 1 else ("", "")
    height, width, _ = shape
    if height % factor or width % factor:

        def near(n: int) -> str:
            lo, hi = n // factor * factor, -(-n // factor) * factor
            return f"{lo} or {hi}" if lo else str(hi)

        raise CaeError(
            f"images of {height}×{width} do not fit model.filters with {levels} levels{folded}: "
            f"height and width must be multiples of {factor} (the nearest that work: height {near(height)}, "
            f"width {near(width)}); set folder.size to such a size (dataset: folder), "
            f"use fewer levels in model.filters{or_fold}, or resize the images"
        )


# BM3D comes from the `bm3d` package, licensed for non-commercial use only: an optional extra.
BM3D_MISSING = (
    "bm3d needs the optional bm3d package (licensed for non-commercial use only): "
    "install it with `pip install -e '.[bm3d]'`, or leave bm3d out"
)


def package_installed(name: str) -> bool:
    """Whether ``import name`` would find the package (without importing it)."""
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


class BaselinesParams(Section):
    """Classical denoisers scored beside the autoencoder (stage ``baselines``)."""

    methods: list[BaselineMethod] = Field(default_factory=lambda: list(DEFAULT_BASELINE_METHODS))
    subset: PositiveInt = 1000  # capped at the number of test images
    val_images: PositiveInt = 50  # capped at the number of validation images
    workers: Workers = 2

    @field_validator("methods")
    @classmethod
    def _bm3d_installed(cls, v: list[str]) -> list[str]:
        if "bm3d" in v and not package_installed("bm3d"):
            raise ValueError(BM3D_MISSING)
        return v


# The one-class models' default architecture (anomaly.model in params.yaml).
ANOMALY_MODEL: dict = {"preset": "fast", "latent_dim": 16, "loss": "mse", "batch_norm": True}


class AnomalyParams(Section):
    """One-class anomaly detection (stages ``anomaly_models`` and ``anomaly``): an
    autoencoder per class, trained on that class's images only."""

    classes: list[Annotated[int, Field(strict=True, ge=0, le=255)]] = Field(default_factory=lambda: list(range(10)))
    epochs: Epochs = 8
    batch_size: BatchSize = 128
    model: ModelParams = Field(default_factory=lambda: ModelParams(**ANOMALY_MODEL))
    noise: NoiseLevel = 0.0
    score: AnomalyScore = ENSEMBLE_SCORE
    ensemble: list[AEScore] = Field(default_factory=lambda: list(DEFAULT_ENSEMBLE))
    neighbours: Annotated[int, Field(strict=True, gt=0, le=1000)] = 5
    threshold_k: Annotated[float, Field(allow_inf_nan=False)] = 2.0
    pca_dims: PositiveInt = 32
    min_images: PositiveInt = 10
    example_class: NonNegativeInt = 0
    examples: Annotated[int, Field(strict=True, gt=0, le=100)] = 10
    roc_points: Annotated[int, Field(strict=True, ge=2)] = 200

    @field_validator("classes", "ensemble")
    @classmethod
    def _unique_not_empty(cls, v: list, info: ValidationInfo) -> list:
        if not v:
            raise ValueError("must list at least one entry (got [])")
        if len(set(v)) != len(v):
            raise ValueError(f"lists an entry twice (got {_short(repr(v))})")
        return v

    @field_validator("example_class")
    @classmethod
    def _example_in_classes(cls, v: int, info: ValidationInfo) -> int:
        classes = info.data.get("classes")
        if classes and v not in classes:
            raise ValueError(f"must be one of anomaly.classes {classes} (got {v})")
        return v


# The embedding models' default architecture (latent.model in params.yaml).
LATENT_MODEL: dict = {
    "preset": "fast",
    "filters": [32, 16],
    "kernel_size": 5,
    "batch_norm": True,
    "latent_dim": 16,
    "loss": "bce",
}


class LatentParams(Section):
    """The latent code as a product (stages ``train_embedding``, ``latent``,
    ``generate``): an autoencoder with a dense code, trained on clean images, its code
    scored as a feature against PCA, and decoded samples and interpolations."""

    epochs: Epochs = 5
    batch_size: BatchSize = 64
    # the plain embedding; train_embedding trains it and its twin with variational: true
    model: ModelParams = Field(default_factory=lambda: ModelParams(**LATENT_MODEL))
    # > 0: a denoising autoencoder (Gaussian noise of this std on its training inputs,
    # clean targets), whose code is the better feature; codes are always of clean images
    noise: NoiseLevel = 0.3
    standardise: bool = False  # kNN and retrieval on standardised codes (AE and PCA alike)
    projection: Literal["pca", "tsne"] = "tsne"  # plots/latent_2d.png when latent_dim > 2
    plot_points: PositiveInt = 1000  # test codes drawn in plots/latent_2d.png (a seeded subset)
    gmm_components: PositiveInt = 10  # the density fitted on the training codes, for sampling
    gmm_covariance: Literal["full", "diag", "tied", "spherical"] = "full"
    # decoded samples per model in plots/samples.png
    samples: Annotated[int, Field(strict=True, gt=0, le=1000)] = 20
    interpolation_pairs: Annotated[int, Field(strict=True, gt=0, le=100)] = 3  # pairs of test images
    # images per interpolation, ends included
    interpolation_steps: Annotated[int, Field(strict=True, ge=2, le=100)] = 10

    @field_validator("model")
    @classmethod
    def _decodable_code(cls, v: ModelParams) -> ModelParams:
        if v.latent_dim is None:
            raise ValueError("latent_dim must be a number: the embedding needs a dense code (e.g. 16)")
        if v.skip or v.residual:
            raise ValueError("skip and residual must be false: the decoder must read the code alone")
        if v.variational:
            raise ValueError(
                "variational must be false here: train_embedding trains the variational twin of this model too"
            )
        return v


class Params(Section):
    dataset: Literal["mnist", "mnist_sample", "fashion_mnist", "folder"] = "mnist"
    seed: Seed = 0
    epochs: Epochs = 10
    batch_size: BatchSize = 256
    task: Literal["denoise", "reconstruct"] = "denoise"
    distribute: Literal["none", "mirrored", "multi_worker"] = "none"
    # training steps per call into TensorFlow: fewer Python round trips, the same weights
    steps_per_execution: Annotated[int, Field(strict=True, gt=0, le=10_000)] = 32
    # processes that train the studies' small models side by side (anomaly_models,
    # train_embedding), each on one CPU thread: the same models for any number
    workers: Workers = 2
    download: DownloadParams = Field(default_factory=DownloadParams)
    folder: FolderParams = Field(default_factory=FolderParams, validate_default=True)
    split: SplitParams = Field(default_factory=SplitParams)
    noise: NoiseParams = Field(default_factory=NoiseParams)
    model: ModelParams = Field(default_factory=lambda: ModelParams.model_validate({}))  # the preset fills it
    baselines: BaselinesParams = Field(default_factory=BaselinesParams)
    anomaly: AnomalyParams = Field(default_factory=AnomalyParams)
    latent: LatentParams = Field(default_factory=LatentParams)

    @field_validator("folder")
    @classmethod
    def _folder_needs_path(cls, v: FolderParams, info: ValidationInfo) -> FolderParams:
        if info.data.get("dataset") == "folder" and not v.path:
            raise ValueError("folder.path must name a folder of images when dataset is folder (got null)")
        return v


@dataclass(frozen=True)
class TrainSettings:
    """How a model is trained, apart from its architecture (a :class:`ModelParams`): what
    :func:`cae.train.train_autoencoder` takes. Each stage that trains builds one from the
    params it reads (the denoiser's from the top level, a one-class model's and an
    embedding's from their own sections), so the stage's dvc.yaml entry lists exactly those."""

    seed: int
    epochs: int
    batch_size: int
    distribute: str = "none"  # see Params.distribute
    steps_per_execution: int = 1

    @classmethod
    def of(cls, params: Params) -> TrainSettings:
        """The top-level settings (the `train` stage's), for tests and benchmarks; a stage
        builds its settings field by field, so that its params are visible where it reads them."""
        return cls(params.seed, params.epochs, params.batch_size, params.distribute, params.steps_per_execution)


_TYPE_TAGS = {"int", "float", "str", "bool"}


def _is_type_tag(part: object) -> bool:
    """Pydantic adds the member type of a union to an error's location; hide it."""
    return isinstance(part, str) and ("[" in part or "-" in part or part in _TYPE_TAGS)


_REPR_LIMIT = 200  # characters of a bad value quoted in an error
_MAX_ERROR_LINES = 10  # keys listed in one ParamsError; the rest are counted


def _short(text: object, limit: int = _REPR_LIMIT) -> str:
    """``text`` on one line, cut to about ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else f"{line[:limit]} … ({len(line):,} characters)"


def _format_error(source: str, err: ValidationError) -> str:
    """One line per bad key (at most :data:`_MAX_ERROR_LINES`). A union (e.g. ``factor:
    float | list``) reports a failure for each member; keep the one from the member
    whose type matched the input."""
    groups: dict[str, list[Any]] = {}  # pydantic_core.ErrorDetails
    for e in err.errors():
        base = []
        for part in e["loc"]:
            if _is_type_tag(part):
                break
            base.append(str(part))
        groups.setdefault(".".join(base) or "(top level)", []).append(e)
    lines = []
    for errors in groups.values():
        matched = [e for e in errors if not e["type"].endswith(("_type", "_parsing"))]
        e = max(matched or errors, key=lambda err: len(err["loc"]))  # the most specific
        key = _short(".".join(str(p) for p in e["loc"] if not _is_type_tag(p)) or "(top level)", 80)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see params.yaml in the repository for every key)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif "input" in e and e["type"] not in ("missing",):
            msg = f"{msg} (got {_short(repr(e['input']))})"
        lines.append(_short(f"{source}: {key}: {msg}", 2 * _REPR_LIMIT))
    if len(lines) > _MAX_ERROR_LINES:
        lines[_MAX_ERROR_LINES:] = [f"{source}: … and {len(lines) - _MAX_ERROR_LINES} more bad keys"]
    return "\n".join(lines)


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Validate an already-parsed mapping; raise :class:`ParamsError` naming the key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of keys to values at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_error(source, err)) from None


# --- reading a YAML file defensively --------------------------------------------------

MAX_PARAMS_BYTES = 128 * 1024  # params.yaml is about 7 KB; the largest parses in about 2 s
MAX_LOCK_BYTES = 1 << 20  # dvc.lock (about 40 KB for this pipeline), read by `cae info` and cae.verify
MAX_DEPTH = 32  # levels of nesting (params.yaml has 3)


class _PlainDataLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors and aliases (``&a``, ``*a``: a few lines of
    nested aliases expand to gigabytes) and nesting deeper than :data:`MAX_DEPTH` (the
    composer recurses), both while composing, before anything is constructed."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases (&name, *name) are not allowed: write each value out",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _read_text(path: Path, max_bytes: int, error: type[CaeError]) -> str:
    """The file's text: a regular file of at most ``max_bytes`` bytes of UTF-8."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise error(f"{path}: not found (run from the repository root)") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{path}: not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{path}: larger than {max_bytes:,} bytes; not a params file")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\0" in data:
        raise error(f"{path}: not UTF-8 text (UTF-16 or binary: it holds NUL bytes); save it as UTF-8")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None


def read_yaml(
    path: str | os.PathLike, *, max_bytes: int = MAX_PARAMS_BYTES, error: type[CaeError] = ParamsError
) -> object:
    """The plain data in the YAML file ``path`` (None when empty), read defensively: a
    regular file, at most ``max_bytes``, UTF-8, a single document, no anchors or aliases,
    at most :data:`MAX_DEPTH` levels deep, only YAML's own safe types. Anything else
    raises ``error`` with one short line naming the file (and the line, where there is one)."""
    path = Path(path)
    text = _read_text(path, max_bytes, error)
    loader = None
    try:
        loader = _PlainDataLoader(text)  # its reader refuses control characters here
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        context, problem = getattr(exc, "context", None), getattr(exc, "problem", None) or exc
        problem = _short(f"{context}, {problem}" if context else problem)
        if "constructor for the tag" in problem:  # e.g. !!python/object: never constructed
            raise error(
                f"{path}:{where} the YAML tag there is not allowed: params are plain data "
                f"(safe_load), never code ({problem})"
            ) from None
        raise error(f"{path}:{where} not valid YAML ({problem})") from None
    except (ValueError, OverflowError) as exc:  # a scalar YAML's resolver accepts but Python cannot hold
        raise error(f"{path}: a value cannot be read ({_short(exc)})") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_params(path: str | os.PathLike = DEFAULT_PARAMS) -> Params:
    """Read and validate ``path`` (``params.yaml`` in the working directory by default)."""
    return parse_params(read_yaml(path), str(path))
