"""Faults while `train` writes its outputs: a diverging loss, an output path that cannot
be written, a full disk. Each stops the stage with one clear line (exit 2) and leaves the
previous outputs exactly as they were."""

import resource
import signal

import pytest
from test_stages import error_lines, run_stage, write_params, write_tiny_prepared

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PREVIOUS = {
    "models/autoencoder.keras": b"the previous model",
    "metrics/train.json": b'{"loss": 0.1}\n',
    "dvclive/metrics.json": b'{"step": 9}\n',
    "dvclive/plots/metrics/train/loss.tsv": b"step\tloss\n0\t0.2\n",
}


def _project(root, **params):
    """params for one tiny epoch, 64 + 16 prepared images, and the previous outputs."""
    write_params(root, epochs=1, batch_size=32, **params)
    write_tiny_prepared(root)
    for path, data in PREVIOUS.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def _assert_one_error_and_outputs_intact(proc, root, expected, removed=()):
    """Exit 2 with one line; every previous output (but those the test ``removed``
    itself) still there with its bytes."""
    assert proc.returncode == 2, proc.stderr
    assert len(error_lines(proc)) == 1 and expected in error_lines(proc)[0], proc.stderr
    assert "Traceback" not in proc.stderr
    for path, data in PREVIOUS.items():
        if path in removed:
            assert not (root / path).exists(), f"{path} appeared"
            continue
        assert (root / path).is_file(), f"{path} is gone"
        assert (root / path).read_bytes() == data, f"{path} changed"
    assert not list(root.rglob(".tmp-*")), "no temporary file is left behind"
    assert not (root / "metrics/train_timing.json").exists()


def test_diverging_loss_writes_nothing(tmp_path):
    root = _project(tmp_path, model__learning_rate=1e15)  # the weights overflow: the loss becomes NaN
    proc = run_stage("train", root)
    _assert_one_error_and_outputs_intact(proc, root, "training diverged: loss became nan")


def test_output_through_a_file_is_one_line_and_nothing_changes(tmp_path, blocker="models"):
    root = _project(tmp_path)
    removed = [path for path in PREVIOUS if path.startswith(f"{blocker}/")]
    for path in removed:
        (root / path).unlink()
    (root / blocker).rmdir()
    (root / blocker).write_bytes(b"a file where a directory should be")
    proc = run_stage("train", root)
    _assert_one_error_and_outputs_intact(proc, root, f"{blocker} is a file, not a directory", removed)
    assert (root / blocker).read_bytes() == b"a file where a directory should be"


def _file_size_limit(limit):
    def apply():  # in the child: writes past `limit` bytes fail with EFBIG instead of killing it
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_full_disk_is_one_line_naming_the_output_and_nothing_changes(tmp_path):
    root = _project(tmp_path)
    # 32 KiB: the JSON files fit, the model (~90 KB) and the epoch backup (~80 KB) do not.
    proc = run_stage("train", root, preexec_fn=_file_size_limit(32 * 1024))
    _assert_one_error_and_outputs_intact(proc, root, "no space left / file too large writing models/autoencoder.keras")
    assert "cannot back up the training state" in proc.stderr  # a warning: training went on
