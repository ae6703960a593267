"""One process of the distributed-training test (tests/test_distribute.py).

``python dist_worker.py single OUT``: train on the default strategy and on a
MirroredStrategy over two logical CPUs; ``python dist_worker.py worker OUT``: train as
one worker of ``distribute: multi_worker`` (TF_CONFIG in the environment). Each writes
its final weights and losses to ``OUT`` (.npz).
"""

import sys

import numpy as np

from cae import runtime
from cae.config import TrainSettings, parse_params

PARAMS = {"epochs": 2, "batch_size": 16, "model": {"learning_rate": 0.01}}


def data(n=64, size=8):
    rng = np.random.default_rng(0)
    clean = (rng.random((n, size, size, 1)) > 0.7).astype(np.float32)
    noisy = np.clip(clean + 0.3 * rng.standard_normal(clean.shape).astype(np.float32), 0, 1)
    return noisy[:48], clean[:48], noisy[48:], clean[48:]


def fit(distribute, strategy=None):
    from cae.train import train_autoencoder

    params = parse_params({**PARAMS, "distribute": distribute})
    runtime.make_deterministic(params.seed)
    result = train_autoencoder(params.model, TrainSettings.of(params), *data(), strategy=strategy)
    return {
        "loss": np.array(result.history["loss"]),
        "val_loss": np.array(result.history["val_loss"]),
        **{f"w{i}": w for i, w in enumerate(result.model.get_weights())},
    }


def main(mode, out):
    if mode == "worker":
        from cae.distribute import make_strategy

        strategy = make_strategy("multi_worker")  # first: collective ops are configured at start-up
        np.savez(out, replicas=strategy.num_replicas_in_sync, **fit("multi_worker", strategy))
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    single = fit("none")
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two = fit("mirrored", mirrored)
    np.savez(out, replicas=mirrored.num_replicas_in_sync, **single, **{f"mirrored_{k}": v for k, v in two.items()})


if __name__ == "__main__":
    main(*sys.argv[1:])
