"""The input pipeline: training arrays as a seeded, shuffled, batched `tf.data.Dataset`.

A low module (it imports only NumPy and TensorFlow), so the tasks and the plugins that build
their own training streams (the `reference` plugins: cumulative, joint) share it without
importing each other.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def array_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    task_ids: np.ndarray | None = None,
) -> tf.data.Dataset:
    """Arrays as a shuffled (seeded, a new order each epoch), batched, prefetched dataset.

    Args:
        x: inputs (cast to float32).
        y: labels or targets.
        batch_size: the batch size.
        seed: the shuffle's seed.
        task_ids: each sample's task: batches are then `((x, task_ids), y)`, for a step that
            sends every sample through its own task's head.

    Returns:
        The `tf.data.Dataset`.

    Example:
    ```python
    dataset = array_dataset(x_train, y_train, batch_size=32, seed=0)
    ```
    """
    x = tf.constant(np.asarray(x, np.float32))
    y = tf.constant(np.asarray(y))
    ids = None if task_ids is None else tf.constant(np.asarray(task_ids, np.int32))

    def gather(index):
        if ids is None:
            return tf.gather(x, index), tf.gather(y, index)
        return (tf.gather(x, index), tf.gather(ids, index)), tf.gather(y, index)

    # Shuffle indices (cheap scalars) and gather whole batches, rather than shuffling and
    # re-batching every sample's tensor: the same seeded order, less per-sample work.
    ds = tf.data.Dataset.range(int(x.shape[0]))
    ds = ds.shuffle(int(x.shape[0]), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(batch_size)).map(gather, num_parallel_calls=2, deterministic=True)
    # Fixed parallelism, no autotuning: a gather per batch needs no tuning, and with tf.data's
    # autotuner on, releasing the iterator at the end of `fit` sometimes blocked for about
    # 2 s (on this project's 2-core machine, one epoch in two or three).
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(2).with_options(options)
