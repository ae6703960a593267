"""Nothing in a shared file can run code: models load in Keras safe mode, params.yaml is
parsed with yaml.safe_load. (Downloaded pickles are checked in test_data.py.)"""

import keras
import pytest
from test_stages import error_lines, run_stage

from cae.config import load_params
from cae.errors import CaeError, ParamsError
from cae.model import load_model

SENTINEL = "code-ran"


def test_model_with_a_lambda_layer_is_refused_and_its_code_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inputs = keras.Input((4, 4, 1))
    # What a malicious Lambda could do (here: leave a trace). Keras stores its bytecode.
    payload = keras.layers.Lambda(lambda x: (open(SENTINEL, "w").close(), x)[1])
    keras.Model(inputs, payload(inputs)).save(tmp_path / "shared.keras")
    (tmp_path / SENTINEL).unlink()  # the symbolic call above ran it once, here, on purpose
    with pytest.raises(CaeError) as info:
        load_model(tmp_path / "shared.keras")
    message = str(info.value)
    assert "shared.keras: not a loadable Keras model" in message and "\n" not in message
    assert "Python lambda" in message and "disallowed by default" in message
    assert not (tmp_path / SENTINEL).exists()


PAYLOADS = [
    f'!!python/object/apply:os.system ["touch {SENTINEL}"]',
    f'!!python/object/new:subprocess.Popen [["touch", "{SENTINEL}"]]',
    "!!python/name:os.system",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_python_tags_in_params_are_rejected_and_never_run(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(f"epochs: 2\nseed: {payload}\n")
    with pytest.raises(ParamsError) as info:
        load_params()
    message = str(info.value)
    assert message.startswith("params.yaml: line 2 the YAML tag there is not allowed: params are plain data")
    assert "python/" in message and "\n" not in message
    assert not (tmp_path / SENTINEL).exists()


def test_stage_with_a_python_tag_in_params_exits_with_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text(f"seed: {PAYLOADS[0]}\n")
    proc = run_stage("train", tmp_path, timeout=60)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1 and "not allowed" in error_lines(proc)[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
