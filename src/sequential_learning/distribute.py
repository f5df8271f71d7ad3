"""`tf.distribute` strategies by name: TensorFlow's own engine for several devices or hosts.

On the TensorFlow backend. On JAX `mirrored` is Keras's own data parallelism
(`keras.distribution.DataParallel` over the local devices: each batch split evenly, the state
replicated, the gradients all-reduced by XLA) and the run keeps `LocalStrategy` (one replica as the
step sees it: the batch is whole there); `multi-worker` is TensorFlow's only. On PyTorch a run has
no strategy (`LocalStrategy`: one device, a scope that does nothing).

* `default`: no distribution (one device).
* `mirrored`: `tf.distribute.MirroredStrategy`, synchronous data parallelism over the local GPUs
  (or logical CPU devices).
* `multi-worker`: `tf.distribute.MultiWorkerMirroredStrategy` over the hosts named by the
  `TF_CONFIG` environment variable (each worker runs the same command).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

STRATEGIES = ("default", "mirrored", "multi-worker")
# One strategy of each kind per process: a second MirroredStrategy numbers its collective ops
# from the same keys as the first, and its all-reduces then meet the first one's ("Shape
# mismatch in the collective instance"): a comparison of several methods under `mirrored`
# failed at its second method. TensorFlow allows one MultiWorkerMirroredStrategy per process.
_MADE: dict[str, object] = {}


class LocalStrategy:
    """No distribution, on a backend without `tf.distribute`: one replica, a scope that does nothing.

    Stands where the code asks a strategy for its scope or its replicas, so that the same code runs
    on every backend.

    Example:
    ```python
    strategy = LocalStrategy()
    with strategy.scope():
        base = mlp_base((64,))
    strategy.num_replicas_in_sync    # 1
    ```
    """

    num_replicas_in_sync = 1

    def scope(self) -> contextlib.AbstractContextManager:
        """A context that does nothing.

        Returns:
            `contextlib.nullcontext()`.
        """
        return contextlib.nullcontext()


LOCAL = LocalStrategy()


def default_strategy() -> Any:
    """The strategy in force: TensorFlow's current one, or `LOCAL` on the other backends.

    Returns:
        A `tf.distribute.Strategy` on TensorFlow, else `LOCAL`.

    Example:
    ```python
    with default_strategy().scope():
        model = mlp_base((64,))
    ```
    """
    from sequential_learning import backend

    if not backend.is_tensorflow():
        return LOCAL
    import tensorflow as tf

    return tf.distribute.get_strategy()


def parse_tf_config(text: str | None = None) -> dict:
    """Parses and checks `TF_CONFIG` (the environment variable when `text` is None).

    Args:
        text: the JSON text of a `TF_CONFIG`; None reads the environment variable.

    Returns:
        The parsed config, with `cluster.worker` and `task` checked.

    Raises:
        ValueError: when it is missing, not JSON, or lacks `cluster.worker` / `task`.

    Example:
    ```python
    parse_tf_config('{"cluster": {"worker": ["host1:12345"]}, '
                    '"task": {"type": "worker", "index": 0}}')
    ```
    """
    text = os.environ.get("TF_CONFIG") if text is None else text
    if not text:
        raise ValueError(
            "strategy multi-worker needs TF_CONFIG, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON: {error}") from None
    workers = config.get("cluster", {}).get("worker") if isinstance(config, dict) else None
    task = config.get("task", {}) if isinstance(config, dict) else {}
    if not isinstance(workers, list) or not workers:
        raise ValueError("TF_CONFIG needs cluster.worker: a list of host:port addresses")
    if task.get("type") != "worker" or not isinstance(task.get("index"), int):
        raise ValueError('TF_CONFIG needs task: {"type": "worker", "index": <int>}')
    if not 0 <= task["index"] < len(workers):
        raise ValueError(
            f"TF_CONFIG task.index {task['index']} is outside 0..{len(workers) - 1} "
            f"({len(workers)} workers)"
        )
    return config


def make_strategy(name: str):
    """The strategy called `name` (see the module docstring); the same object for every call
    in a process.

    Args:
        name: `default`, `mirrored` (every local GPU) or `multi-worker` (hosts from `TF_CONFIG`).

    Returns:
        A `tf.distribute.Strategy` (on JAX and PyTorch: `LOCAL`; JAX's `mirrored` sets
        `keras.distribution.DataParallel` over the local devices).

    Raises:
        ValueError: for an unknown name, `multi-worker` on a backend other than TensorFlow, or
            `mirrored` on PyTorch.

    Example:
    ```python
    strategy = make_strategy("mirrored")
    with strategy.scope():
        base = mlp_base((64,))
    ```
    """
    from sequential_learning import backend

    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    if name == "default":
        return default_strategy()
    if name == "mirrored" and backend.name() == "jax":
        import keras

        if keras.distribution.distribution() is None:
            keras.distribution.set_distribution(keras.distribution.DataParallel())
        return LOCAL
    if not backend.is_tensorflow():
        raise ValueError(f"strategy {name} is TensorFlow's tf.distribute: it needs the "
                         f"TensorFlow backend (this runs {backend.name()}); use strategy default"
                         + (" or mirrored" if backend.name() == "jax" else ""))
    import tensorflow as tf

    if name in _MADE:
        return _MADE[name]
    if name == "mirrored":
        _MADE[name] = tf.distribute.MirroredStrategy()
        return _MADE[name]
    if name == "multi-worker":
        parse_tf_config()
        _MADE[name] = tf.distribute.MultiWorkerMirroredStrategy()
        return _MADE[name]
    raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def worker_index(strategy) -> int:
    """This process's worker index (0, the chief, when not multi-worker).

    Args:
        strategy: a `tf.distribute.Strategy` (e.g. from `make_strategy`).

    Returns:
        The worker's index as an int; 0 is the chief, which writes the run folder.

    Example:
    ```python
    if worker_index(make_strategy("multi-worker")) == 0:
        print("chief")
    ```
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return 0
    return int(resolver.task_id or 0)
