"""Shared helpers of the bench scripts: quiet TensorFlow, the device line, a timer."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from sequential_learning._tf import quiet_tensorflow

quiet_tensorflow()

import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")


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
