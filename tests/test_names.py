"""Each list of names is defined once, and the schema, the registries and the outputs follow it."""

from typing import get_args

import pytest

from cae import baselines, config, noise
from cae.config import parse_params
from cae.errors import ParamsError


def _choices(model, field):
    annotation = model.model_fields[field].annotation
    args = get_args(annotation)
    return get_args(args[0]) if args and get_args(args[0]) else args  # list[Literal[...]] or Literal[...]


def test_the_schema_accepts_exactly_the_names_defined_once():
    assert _choices(config.ModelParams, "preset") == config.PRESET_NAMES == tuple(config.PRESETS)
    assert _choices(config.NoiseParams, "kind") == config.NOISE_KINDS
    assert _choices(config.BaselinesParams, "methods") == config.BASELINE_METHODS
    assert _choices(config.AnomalyParams, "score") == config.ANOMALY_SCORES
    assert _choices(config.AnomalyParams, "ensemble") == config.AE_SCORES
    assert parse_params({}).baselines.methods == list(config.DEFAULT_BASELINE_METHODS)  # bm3d: an optional extra
    assert tuple(m for m in config.BASELINE_METHODS if m != "bm3d") == config.DEFAULT_BASELINE_METHODS
    assert parse_params({}).anomaly.ensemble == list(config.DEFAULT_ENSEMBLE)
    assert set(config.DEFAULT_ENSEMBLE) <= set(config.AE_SCORES)


def test_the_implementations_are_keyed_by_the_same_names():
    assert tuple(noise.NOISE) == config.NOISE_KINDS
    assert all(fn.__name__ == kind for kind, fn in noise.NOISE.items())
    assert baselines.METHODS == config.BASELINE_METHODS
    assert set(baselines._REQUIRED_KEYS) == set(config.BASELINE_METHODS)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": {"preset": "huge"}}, "params.yaml: model.preset: Input should be 'reference', 'wide', "),
        ({"noise": {"kind": "blur"}}, "params.yaml: noise.kind: Input should be 'gaussian', 'salt_pepper', "),
        ({"baselines": {"methods": ["bm4d"]}}, "params.yaml: baselines.methods.0: Input should be 'median', "),
        (
            {"anomaly": {"score": "pca"}},
            "params.yaml: anomaly.score: Input should be 'mse', 'ssim', 'latent', 'knn' or ",
        ),
        (
            {"anomaly": {"ensemble": ["ensemble"]}},
            "params.yaml: anomaly.ensemble.0: Input should be 'mse', 'ssim', 'latent' or ",
        ),
    ],
)
def test_an_unknown_name_is_one_line_listing_the_choices(raw, message):
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
