"""The input pipeline: training arrays as seeded, shuffled batches for Keras's `fit`.

On TensorFlow the batches come from a `tf.data.Dataset` (the numbers of the EWC family are those
of that pipeline, bit for bit); on JAX and PyTorch from `ArrayBatches`, a `keras.utils.PyDataset`
over the NumPy arrays with its own seeded order per epoch. A low module (NumPy, Keras and, on
TensorFlow only, TensorFlow), so the tasks and the plugins that build their own training streams
(the `reference` plugins: cumulative, joint) share it without importing each other.

Example:
```python
batches = array_dataset(x_train, y_train, batch_size=32, seed=0)
trainer.fit(batches, epochs=2, shuffle=False)
```
"""

from __future__ import annotations

import os
import sys
from typing import Any

import keras
import numpy as np

from sequential_learning import backend


def array_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    seed: int,
    task_ids: np.ndarray | None = None,
) -> Any:
    """Arrays as shuffled (seeded, a new order each epoch) batches for `fit`.

    Args:
        x: inputs (cast to float32).
        y: labels or targets.
        batch_size: the batch size.
        seed: the shuffle's seed.
        task_ids: each sample's task: batches are then `((x, task_ids), y)`, for a step that
            sends every sample through its own task's head.

    Returns:
        A prefetched `tf.data.Dataset` on TensorFlow, an `ArrayBatches` on the other backends.

    Example:
    ```python
    dataset = array_dataset(x_train, y_train, batch_size=32, seed=0)
    ```
    """
    if not backend.is_tensorflow():
        return ArrayBatches(x, y, batch_size, seed, task_ids)
    import tensorflow as tf

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


def is_tf_dataset(data: Any) -> bool:
    """Whether `data` is a `tf.data.Dataset` (TensorFlow is not imported to find out).

    Args:
        data: anything.

    Returns:
        True for a `tf.data.Dataset` (which exists only if TensorFlow was imported).

    Example:
    ```python
    is_tf_dataset((x, y))    # False
    ```
    """
    tf = sys.modules.get("tensorflow")
    data_module = getattr(tf, "data", None) if tf is not None else None
    return data_module is not None and isinstance(data, data_module.Dataset)


def check_dataset_backend(data: Any, what: str) -> None:
    """Raises ValueError (one line) for a `tf.data.Dataset` on a backend other than TensorFlow.

    Args:
        data: a task's training or validation data.
        what: what it is, for the message (e.g. `"Task 'a': training data"`).

    Returns:
        None.

    Example:
    ```python
    check_dataset_backend((x, y), "training data")    # fine on every backend
    ```
    """
    if is_tf_dataset(data) and not backend.is_tensorflow():
        raise ValueError(f"{what}: a tf.data.Dataset needs the TensorFlow backend (this runs "
                         f"{backend.name()}); pass (x, y) NumPy arrays instead")


def device_data_bytes() -> int:
    """The most bytes `ArrayBatches` keeps on the device (JAX): a task's training arrays and
    the current epoch's shuffled copy of them.

    `SEQL_DEVICE_DATA_BYTES` if set (0 keeps every batch on the host); otherwise a quarter of
    the accelerator's memory (1 GiB where JAX does not report it), and 0 on the CPU: there the
    "device" is the host's memory, and slicing each batch out of a JAX array measured slower than
    NumPy's (the permuted Fashion-MNIST fine-tuning stream: 13.7 s against 10.6 s).

    Returns:
        A number of bytes.

    Example:
    ```python
    device_data_bytes()    # 0 on a CPU
    ```
    """
    setting = os.environ.get("SEQL_DEVICE_DATA_BYTES")
    if setting not in (None, ""):
        try:
            value = int(setting)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"SEQL_DEVICE_DATA_BYTES must be a whole number of bytes >= 0 "
                             f"(0: keep training data on the host), got {setting!r}")
        return value
    if backend.name() != "jax":
        return 0
    import jax

    if jax.default_backend() == "cpu":
        return 0
    stats = jax.devices()[0].memory_stats() or {}
    return int(stats["bytes_limit"]) // 4 if stats.get("bytes_limit") else 1 << 30


def _distributed_devices() -> int:
    """The devices a `keras.distribution` splits each batch over (1 without one)."""
    distribution = keras.distribution.distribution() if backend.name() == "jax" else None
    if distribution is None:
        return 1
    return int(np.asarray(distribution.device_mesh.devices).size)


class ArrayBatches(keras.utils.PyDataset):
    """NumPy arrays as batches in a seeded order that changes every epoch (any backend).

    The order of epoch k is the k-th permutation drawn from `numpy.random.default_rng(seed)`, so
    the same seed gives the same batches; Keras calls `on_epoch_end` after every epoch of `fit`.

    Args:
        x: inputs (cast to float32).
        y: labels or targets.
        batch_size: the batch size (the last batch may be smaller; under a
            `keras.distribution`, a multiple of the devices: the remainder's last few samples
            are left out of that epoch, since a batch is split evenly over the devices).
        seed: the seed of the orders.
        task_ids: each sample's task: batches are then `((x, task_ids), y)`.

    Example:
    ```python
    batches = ArrayBatches(x, y, batch_size=32, seed=0)
    xb, yb = batches[0]       # the first batch of the first epoch's order
    ```
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                 task_ids: np.ndarray | None = None) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        self.x = np.ascontiguousarray(np.asarray(x, np.float32))
        self.y = np.asarray(y)
        self.task_ids = None if task_ids is None else np.asarray(task_ids, np.int32)
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} samples but y has {len(self.y)}")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epoch = 0
        self._rng = np.random.default_rng(self.seed)
        self._order = self._rng.permutation(len(self.x))
        self.devices = _distributed_devices()
        # JAX without a distribution: the arrays go to the device once, and each epoch's
        # shuffled copy is one gather there; a batch is then a slice of it, with no transfer
        # from the host per step. Both copies must fit `device_data_bytes`.
        self._on_device = None
        self._shuffled: tuple[int, Any] | None = None
        arrays = [a for a in (self.x, self.y, self.task_ids) if a is not None]
        if self.devices == 1 and backend.name() == "jax" \
                and 2 * sum(a.nbytes for a in arrays) <= device_data_bytes():
            self._on_device = [keras.ops.convert_to_tensor(a) for a in arrays]

    def __len__(self) -> int:
        full, rest = divmod(len(self.x), self.batch_size)
        return full + (1 if rest - rest % self.devices else 0)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        start = index * self.batch_size
        if self._on_device is not None:
            if self._shuffled is None or self._shuffled[0] != self.epoch:
                order = keras.ops.convert_to_tensor(self._order.astype(np.int32))
                self._shuffled = (self.epoch, [keras.ops.take(a, order, axis=0)
                                               for a in self._on_device])
            parts = [a[start:start + self.batch_size] for a in self._shuffled[1]]
        else:
            rows = self._order[start:start + self.batch_size]
            rows = rows[:len(rows) - len(rows) % self.devices]
            parts = [a[rows] for a in (self.x, self.y, self.task_ids) if a is not None]
        if self.task_ids is None:
            return parts[0], parts[1]
        return (parts[0], parts[2]), parts[1]

    def on_epoch_end(self) -> None:
        """Draws the next epoch's order."""
        self.epoch += 1
        self._order = self._rng.permutation(len(self.x))
