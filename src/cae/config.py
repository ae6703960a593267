"""One typed schema for params.yaml.

Every stage calls :func:`load_params` once, before any work. An unknown key, a value
of the wrong type or an impossible value raises :class:`~cae.errors.ParamsError`
whose message names the file and the dotted key, e.g.::

    params.yaml: model.filters: must list at least one filter count (got [])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

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

from cae.errors import ParamsError

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


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DownloadParams(Section):
    """Where the ``download`` stage looks for MNIST (and Fashion-MNIST), in order."""

    path: str | None = None
    mirrors: list[str] = Field(default_factory=lambda: list(MNIST_MIRRORS))
    fashion_mirrors: list[str] = Field(default_factory=lambda: list(FASHION_MNIST_MIRRORS))
    pypi: bool = True
    timeout: PositiveFloat = 20.0
    retries: NonNegativeInt = 2


class FolderParams(Section):
    """``dataset: folder``: a directory of PNG/JPEG/BMP/TIFF images, optionally one
    sub-folder per class (the sub-folder's name is the label)."""

    path: str | None = None
    size: list[PositiveInt] | None = None  # [height, width]; null: the images' own (common) size
    fit: Literal["resize", "crop"] = "resize"  # how an image of another size is brought to `size`
    channels: Literal[1, 3] = 1
    test_fraction: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.2
    seed: NonNegativeInt = 0  # the train / test split
    max_pixels: PositiveInt = 50_000_000  # larger images are skipped (decompression bombs)

    @field_validator("size")
    @classmethod
    def _height_width(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(v) != 2:
            raise ValueError(f"must be [height, width] (got {v})")
        return v


class SplitParams(Section):
    val_fraction: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.1


class NoiseParams(Section):
    """Synthetic corruption (see :mod:`cae.noise` for what ``factor`` means per kind)."""

    kind: Literal["gaussian", "salt_pepper", "speckle", "poisson", "masking"] = "gaussian"
    factor: NonNegativeFloat | list[NonNegativeFloat] = 0.4
    eval_levels: list[NonNegativeFloat] = Field(default_factory=lambda: [0.2, 0.4, 0.6])
    block: PositiveInt = 1

    @field_validator("factor", "eval_levels")
    @classmethod
    def _levels_make_sense(cls, v, info: ValidationInfo):
        values = v if isinstance(v, list) else [v]
        if info.field_name == "factor" and not values:
            raise ValueError("must be a number or a non-empty list of numbers (got [])")
        kind = info.data.get("kind")
        if kind in ("salt_pepper", "masking") and any(x > 1 for x in values):
            raise ValueError(f"for noise.kind {kind} a level is a fraction of pixels, at most 1 (got {v})")
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


LossName = Literal["bce", "mse", "mae", "ssim"]

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
        "batch_norm": False,
        "skip": False,
        "residual": False,
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
    # the same U-Net with twice the filters: the best denoiser that trains in minutes on 2 cores
    "unet_wide": {"filters": [16, 32], "batch_norm": True, "skip": True},
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


class ModelParams(Section):
    """The autoencoder's architecture and optimisation; ``preset`` fills unset keys."""

    preset: Literal["reference", "wide", "strided", "unet", "unet_wide", "resunet", "unet_deep", "fast"] = "reference"
    filters: list[PositiveInt]
    kernel_size: PositiveInt
    activation: Literal["relu", "elu", "gelu", "selu", "swish", "tanh", "leaky_relu"]
    downsample: Literal["maxpool", "avgpool", "strided"]
    upsample: Literal["upsampling", "transpose"]
    convs_per_level: PositiveInt
    batch_norm: bool
    skip: bool
    residual: bool
    # conv: a full-resolution convolution maps the decoder's features to the image (the reference);
    # transpose: the last level's doubling transposed convolution outputs the image itself
    head: Literal["conv", "transpose"]
    learning_rate: PositiveFloat
    # constant: Adam at learning_rate throughout (the reference); cosine: from learning_rate
    # down to 0 along a half cosine over the run's steps (epochs × batches per epoch)
    schedule: Literal["constant", "cosine"]
    loss: LossName | dict[LossName, PositiveFloat]
    latent_dim: PositiveInt | None = None
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
        # An unknown preset is reported by the Literal check on `preset` alone.
        merged = {**PRESETS["reference"], **PRESETS.get(preset, {}), "preset": preset}
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


class BaselinesParams(Section):
    """Classical denoisers scored beside the autoencoder (stage ``baselines``)."""

    methods: list[Literal["median", "gaussian", "tv", "nlmeans", "wavelet", "bm3d"]] = Field(
        default_factory=lambda: ["median", "gaussian", "tv", "nlmeans", "wavelet", "bm3d"]
    )
    subset: PositiveInt = 1000
    val_images: PositiveInt = 50
    workers: PositiveInt = 2


AnomalyScore = Literal["mse", "ssim", "latent"]

# The one-class models' default architecture (anomaly.model in params.yaml).
ANOMALY_MODEL: dict = {"preset": "fast", "latent_dim": 16, "loss": "mse", "batch_norm": True}


class AnomalyParams(Section):
    """One-class anomaly detection (stages ``anomaly_class`` and ``anomaly``): an
    autoencoder per class, trained on that class's images only."""

    classes: list[NonNegativeInt] = Field(default_factory=lambda: list(range(10)))
    epochs: PositiveInt = 6
    batch_size: PositiveInt = 64
    model: ModelParams = Field(default_factory=lambda: ModelParams(**ANOMALY_MODEL))
    noise: NonNegativeFloat = 0.0
    score: Literal["mse", "ssim", "latent", "ensemble"] = "ensemble"
    ensemble: list[AnomalyScore] = Field(default_factory=lambda: ["mse", "ssim", "latent"])
    threshold_k: Annotated[float, Field(allow_inf_nan=False)] = 2.0
    pca_dims: PositiveInt = 32
    min_images: PositiveInt = 10
    example_class: NonNegativeInt = 0
    examples: PositiveInt = 10
    roc_points: Annotated[int, Field(strict=True, ge=2)] = 200

    @field_validator("classes", "ensemble")
    @classmethod
    def _unique_not_empty(cls, v: list, info: ValidationInfo) -> list:
        if not v:
            raise ValueError("must list at least one entry (got [])")
        if len(set(v)) != len(v):
            raise ValueError(f"lists an entry twice (got {v})")
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
    """The latent code as a product (stages ``train_embedding@<variant>``, ``latent``,
    ``generate``): an autoencoder with a dense code, trained on clean images, its code
    scored as a feature against PCA, and decoded samples and interpolations."""

    epochs: PositiveInt = 3
    batch_size: PositiveInt = 64
    # the plain embedding; train_embedding@variational trains the same with variational: true
    model: ModelParams = Field(default_factory=lambda: ModelParams(**LATENT_MODEL))
    # > 0: a denoising autoencoder (Gaussian noise of this std on its training inputs,
    # clean targets), whose code is the better feature; codes are always of clean images
    noise: NonNegativeFloat = 0.3
    standardise: bool = False  # kNN and retrieval on standardised codes (AE and PCA alike)
    projection: Literal["pca", "tsne"] = "tsne"  # plots/latent_2d.png when latent_dim > 2
    plot_points: PositiveInt = 3000  # test codes drawn in plots/latent_2d.png (a seeded subset)
    gmm_components: PositiveInt = 10  # the density fitted on the training codes, for sampling
    gmm_covariance: Literal["full", "diag", "tied", "spherical"] = "full"
    samples: PositiveInt = 20  # decoded samples per model in plots/samples.png
    interpolation_pairs: PositiveInt = 3  # pairs of test images in plots/interpolation.png
    interpolation_steps: Annotated[int, Field(strict=True, ge=2)] = 10  # images per interpolation, ends included

    @field_validator("model")
    @classmethod
    def _decodable_code(cls, v: ModelParams) -> ModelParams:
        if v.latent_dim is None:
            raise ValueError("latent_dim must be a number: the embedding needs a dense code (e.g. 16)")
        if v.skip or v.residual:
            raise ValueError("skip and residual must be false: the decoder must read the code alone")
        if v.variational:
            raise ValueError(
                "variational must be false here: train_embedding@variational trains the variational twin of this model"
            )
        return v


class Params(Section):
    dataset: Literal["mnist", "mnist_sample", "fashion_mnist", "folder"] = "mnist"
    seed: NonNegativeInt = 0
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 256
    task: Literal["denoise", "reconstruct"] = "denoise"
    distribute: Literal["none", "mirrored", "multi_worker"] = "none"
    # training steps per call into TensorFlow: fewer Python round trips, the same weights
    steps_per_execution: PositiveInt = 8
    download: DownloadParams = Field(default_factory=DownloadParams)
    folder: FolderParams = Field(default_factory=FolderParams, validate_default=True)
    split: SplitParams = Field(default_factory=SplitParams)
    noise: NoiseParams = Field(default_factory=NoiseParams)
    model: ModelParams = Field(default_factory=ModelParams)
    baselines: BaselinesParams = Field(default_factory=BaselinesParams)
    anomaly: AnomalyParams = Field(default_factory=AnomalyParams)
    latent: LatentParams = Field(default_factory=LatentParams)

    @field_validator("folder")
    @classmethod
    def _folder_needs_path(cls, v: FolderParams, info: ValidationInfo) -> FolderParams:
        if info.data.get("dataset") == "folder" and not v.path:
            raise ValueError("folder.path must name a folder of images when dataset is folder (got null)")
        return v


_TYPE_TAGS = {"int", "float", "str", "bool"}


def _is_type_tag(part: object) -> bool:
    """Pydantic adds the member type of a union to an error's location; hide it."""
    return isinstance(part, str) and ("[" in part or "-" in part or part in _TYPE_TAGS)


def _format_error(source: str, err: ValidationError) -> str:
    """One line per bad key. A union (e.g. ``factor: float | list``) reports a failure
    for each member; keep the one from the member whose type matched the input."""
    groups: dict[str, list[dict]] = {}
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
        key = ".".join(str(p) for p in e["loc"] if not _is_type_tag(p)) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see params.yaml in the repository for every key)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif "input" in e and e["type"] not in ("missing",):
            msg = f"{msg} (got {e['input']!r})"
        lines.append(f"{source}: {key}: {msg}")
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


def load_params(path: str | os.PathLike = DEFAULT_PARAMS) -> Params:
    """Read and validate ``path`` (``params.yaml`` in the working directory by default)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        if isinstance(exc, yaml.constructor.ConstructorError):  # e.g. !!python/object: never constructed
            raise ParamsError(
                f"{path}:{where} the YAML tag there is not allowed: params are plain data "
                f"(safe_load), never code ({exc.problem})"
            ) from None
        raise ParamsError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_params(raw, str(path))
