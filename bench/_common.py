"""Shared helpers of the bench scripts: quiet TensorFlow, the device line, a timer."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from sequential_learning._tf import quiet_tensorflow

quiet_tensorflow()

import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")


def mlp_and_data(samples: int, batch_size: int):
    """The MLP 784-400-400-10 and random data the step benches train: `(base, model, x, y,
    data)`, `data` a cached, batched `tf.data` set without autotuning (with it, releasing an
    iterator at the end of fit sometimes blocks for ~2 s, which would swamp a 1 s epoch; see
    `SequentialTask.training_dataset`)."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    inp = keras.Input((784,))
    h = keras.layers.Dense(400, activation="relu")(inp)
    base_out = keras.layers.Dense(400, activation="relu")(h)
    base = keras.Model(inp, base_out)
    model = keras.Model(inp, keras.layers.Dense(10)(base(inp)))
    rng = np.random.default_rng(0)
    x = rng.random((samples, 784)).astype("float32")
    y = rng.integers(0, 10, samples)
    data = batched(x, y, batch_size)
    return base, model, x, y, data


def batched(x, y, batch_size: int) -> tf.data.Dataset:
    """`(x, y)` as a cached, batched, prefetched `tf.data` set without autotuning."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return (tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).cache().prefetch(2)
            .with_options(options))


def device_line() -> str:
    """Which device TensorFlow computes on, for the printed figures."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
        return f"device: GPU ({', '.join(names)})"
    import os

    return f"device: CPU ({os.cpu_count()} cores), TensorFlow {tf.__version__}"


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """The median wall time of `repeats` calls of `fn` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def add_jit_flag(parser) -> None:
    """Adds `--jit-compile` (XLA auto-clustering of every compiled function)."""
    parser.add_argument("--jit-compile", action="store_true",
                        help="compile with XLA (tf.config.optimizer.set_jit)")


def apply_jit(args) -> None:
    """Turns XLA on for the whole process when `--jit-compile` was given, and says so."""
    if getattr(args, "jit_compile", False):
        tf.config.optimizer.set_jit("autoclustering")
        print("XLA: on (--jit-compile)")
