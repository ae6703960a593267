"""``tf.distribute`` strategies chosen by the ``distribute`` param.

* ``none``: TensorFlow's default strategy (one device, as before).
* ``mirrored``: ``MirroredStrategy``, data-parallel over every GPU of this host
  (the CPU alone when there is none).
* ``multi_worker``: ``MultiWorkerMirroredStrategy`` across hosts, each process
  reading its role from the ``TF_CONFIG`` environment variable, e.g.::

      {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}

``params.batch_size`` is the global batch: each step it is split across all replicas
and the gradients are summed, so the result matches one device up to the order of
floating-point additions. Create the strategy before TensorFlow does anything else
(collective ops are configured at start-up).
"""

from __future__ import annotations

import json
import os

from cae.errors import CaeError

TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


def read_tf_config(environ=os.environ) -> dict:
    """Validate ``TF_CONFIG`` for ``distribute: multi_worker``; :class:`CaeError` if unusable."""
    raw = environ.get("TF_CONFIG")
    where = "TF_CONFIG (needed by distribute: multi_worker)"
    if not raw:
        raise CaeError(f"{where} is not set; set it on every worker, e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}'")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CaeError(f"{where} is not valid JSON ({exc.msg} at character {exc.pos})") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if (
        not isinstance(cluster, dict)
        or not cluster
        or not all(
            isinstance(v, list) and v and all(isinstance(a, str) and ":" in a for a in v) for v in cluster.values()
        )
    ):
        raise CaeError(f"{where}: 'cluster' must map job names to lists of 'host:port', e.g. {TF_CONFIG_EXAMPLE}")
    if not isinstance(task, dict) or task.get("type") not in cluster or not isinstance(task.get("index"), int):
        raise CaeError(f"{where}: 'task' must name a job of 'cluster' and an integer index (got {task!r})")
    if not 0 <= task["index"] < len(cluster[task["type"]]):
        raise CaeError(
            f"{where}: task index {task['index']} is outside the {len(cluster[task['type']])} "
            f"'{task['type']}' address(es)"
        )
    return config


def is_chief(config: dict | None) -> bool:
    """Whether this process writes the outputs: the ``chief``, else worker 0, else alone."""
    if config is None:
        return True
    task = config["task"]
    if "chief" in config["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and task["index"] == 0


def make_strategy(name: str):
    """The ``tf.distribute`` strategy for ``name`` (``none``, ``mirrored``, ``multi_worker``)."""
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        read_tf_config()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError) as exc:
            raise CaeError(f"cannot start MultiWorkerMirroredStrategy from TF_CONFIG ({exc})") from None
    raise ValueError(f"unknown distribute strategy {name!r}")
