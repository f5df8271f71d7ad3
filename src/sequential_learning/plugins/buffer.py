"""A memory of past samples in `tf.Variable`s, filled and read inside the compiled step.

`MemoryBuffer` holds up to `capacity` samples: inputs, labels, the task each came from, and, for
DER++, the logits the model gave it. Three ways to fill it:

* `reservoir_add` (in-graph, every step): reservoir sampling (Vitter 1985) over every sample the
  stream offers, so the buffer is always a uniform sample of everything seen so far;
* `fill_balanced` (Python, after a task): an equal share per (task, class), as Avalanche's
  class-balanced buffer;
* `fill_slots` (Python, after a task): a fixed block of slots per task, as A-GEM's episodic
  memory.

Random draws are TensorFlow's stateless ops seeded by (seed, a counter in a `tf.Variable`): the
same seed gives the same buffer, in the compiled step, under a strategy and after a resume.
Under a strategy with several replicas the variables take the first replica's update
(`ONLY_FIRST_REPLICA`): the buffer is a uniform sample of the batches that replica saw, which is
a uniform sample of the task's data too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from sequential_learning.checkpoint import CheckpointError
from sequential_learning.plugins.base import stateless_seed
from sequential_learning.saved_state import kind_of, state_array


class MemoryBuffer:
    """A fixed-size memory of samples (see the module docstring).

    Args:
        capacity: the number of samples it holds (≥ 1).
        input_shape: the shape of one input.
        label_shape: the shape of one label (`()` for class indices).
        label_dtype: `int32` for class indices, `float32` for regression targets.
        logits: the width of the stored logits (0: none stored).
        seed: the seed of its random draws.
        name: a prefix for its variables.
        tasks: the number of tasks of the stream (a checkpointed task id must be below it), or
            None (not checked).
        classes: the number of classes of each task's head (a checkpointed class label must be
            below its task's), or None (not checked).

    Example:
    ```python
    buffer = MemoryBuffer(500, (784,), (), tf.int32, seed=0)
    buffer.build()                          # under the strategy's scope
    batch = buffer.sample(32)               # in the step: {"x", "y", "task", "has_data"}
    buffer.reservoir_add(x, y, task_id)     # in the step, after the update
    ```
    """

    def __init__(self, capacity: int, input_shape: Sequence[int], label_shape: Sequence[int] = (),
                 label_dtype=tf.int32, logits: int = 0, seed: int = 0,
                 name: str = "memory", *, tasks: int | None = None,
                 classes: Sequence[int] | None = None) -> None:
        self.capacity = int(capacity)
        if self.capacity < 1:
            raise ValueError(f"memory: {capacity!r} is not allowed; expected an integer >= 1")
        if any(d is None for d in input_shape):
            raise ValueError(f"{name}: needs inputs of a fixed shape, got {tuple(input_shape)}")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.label_shape = tuple(int(d) for d in label_shape)
        self.label_dtype = tf.as_dtype(label_dtype)
        self.logits_width = int(logits)
        self.seed = int(seed)
        self.name = name
        self.tasks = None if tasks is None else int(tasks)
        self.classes = None if classes is None else [int(c) for c in classes]

    def build(self) -> None:
        """Creates the variables (call under the strategy's scope)."""

        def variable(shape, dtype, suffix):
            return tf.Variable(tf.zeros(shape, dtype), trainable=False,
                               name=f"{self.name}_{suffix}",
                               aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

        m = self.capacity
        self.x = variable((m, *self.input_shape), tf.float32, "x")
        self.y = variable((m, *self.label_shape), self.label_dtype, "y")
        self.task = variable((m,), tf.int32, "task")
        self.stored = {"x": self.x, "y": self.y, "task": self.task}
        if self.logits_width:
            self.logits = variable((m, self.logits_width), tf.float32, "logits")
            self.stored["logits"] = self.logits
        self.seen = variable((), tf.int64, "seen")  # samples offered so far
        self.filled = variable((), tf.int64, "filled")  # slots in use
        self.draws = variable((), tf.int64, "draws")  # random draws so far
        self.counters = {"seen": self.seen, "filled": self.filled, "draws": self.draws}

    # -- in-graph ----------------------------------------------------------------------------
    def _next_seed(self, salt: int) -> tf.Tensor:
        seed = stateless_seed(self.seed, self.draws, salt)
        self.draws.assign_add(1)
        return seed

    def sample(self, n: int) -> dict[str, tf.Tensor]:
        """`n` samples drawn uniformly (with replacement) from the filled slots.

        Returns `{"x", "y", "task", ("logits"), "has_data"}`; `has_data` is 1.0 once
        anything is stored and 0.0 before (the draws then read empty slots: multiply a loss on
        them by it).
        """
        filled = tf.convert_to_tensor(self.filled)
        index = tf.random.stateless_uniform(
            [int(n)], self._next_seed(1), minval=0, maxval=tf.maximum(filled, 1), dtype=tf.int64
        )
        out = {key: tf.gather(tf.convert_to_tensor(v), index) for key, v in self.stored.items()}
        out["has_data"] = tf.cast(filled > 0, tf.float32)
        return out

    def reservoir_add(self, x, y, task, logits=None) -> None:
        """Offers a batch to the reservoir: sample number n of the stream takes a slot with
        probability capacity / (n + 1), replacing a uniformly chosen one."""
        x = tf.convert_to_tensor(x)
        count = tf.shape(x, out_type=tf.int64)[0]
        seen = tf.convert_to_tensor(self.seen)
        position = seen + tf.range(count, dtype=tf.int64)
        draw = tf.random.stateless_uniform(tf.reshape(count, [1]), self._next_seed(2),
                                           dtype=tf.float64)
        chosen = tf.cast(tf.floor(draw * tf.cast(position + 1, tf.float64)), tf.int64)
        target = tf.where(position < self.capacity, position, chosen)
        keep = target < self.capacity
        # Two samples of one batch aimed at the same slot: the later one wins, as it would
        # one sample at a time.
        order = tf.range(count)
        later = tf.logical_and(tf.equal(target[:, None], target[None, :]),
                               order[None, :] > order[:, None])
        keep = tf.logical_and(keep, tf.logical_not(
            tf.reduce_any(tf.logical_and(later, keep[None, :]), axis=1)))
        rows = tf.where(keep)[:, 0]
        slots = tf.gather(target, rows)[:, None]
        values = {"x": x, "y": y, "task": tf.fill(tf.reshape(count, [1]), tf.cast(task, tf.int32))}
        if self.logits_width:
            values["logits"] = logits
        for key, variable in self.stored.items():
            update = tf.cast(tf.gather(values[key], rows), variable.dtype)
            if not isinstance(variable, tf.distribute.DistributedValues):
                variable.scatter_nd_update(slots, update)
            else:  # a mirrored variable has no scatter, also with one replica (one GPU)
                variable.assign(tf.tensor_scatter_nd_update(
                    tf.convert_to_tensor(variable), slots, update))
        self.seen.assign(seen + count)
        self.filled.assign(tf.minimum(seen + count, self.capacity))

    # -- Python side -------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The filled part of the buffer as NumPy arrays."""
        n = int(self.filled.numpy())
        return {key: v.numpy()[:n] for key, v in self.stored.items()}

    def composition(self) -> dict[str, int]:
        """How many samples of each task the buffer holds, `{"task_K": count}`."""
        ids, counts = np.unique(self.task.numpy()[: int(self.filled.numpy())], return_counts=True)
        return {f"task_{int(i) + 1}": int(c) for i, c in zip(ids, counts)}

    def _assign(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(arrays["x"])
        for key, variable in self.stored.items():
            full = np.zeros(variable.shape, variable.dtype.as_numpy_dtype)
            full[:n] = arrays[key]
            variable.assign(full)
        self.filled.assign(n)
        self.seen.assign(max(int(self.seen.numpy()), n))

    def fill_slots(self, first: int, x: np.ndarray, y: np.ndarray, task: int) -> None:
        """Writes `x, y` (of task `task`) into slots `first, first + 1, ...`; the buffer is then
        filled up to the last of them."""
        current = {key: v.numpy() for key, v in self.stored.items()}
        end = first + len(x)
        if end > self.capacity:
            raise ValueError(f"{self.name}: slots {first}..{end - 1} exceed its {self.capacity}")
        current["x"][first:end] = x
        current["y"][first:end] = np.asarray(y).reshape((-1, *self.label_shape))
        current["task"][first:end] = task
        self._assign({k: v[:end] for k, v in current.items()})

    def fill_balanced(self, x: np.ndarray, y: np.ndarray, task: int, seed: int) -> None:
        """Adds task `task`'s samples so that every (task, class) seen so far holds an equal
        share of the buffer (the first ones get one more when it does not divide); a class
        keeps the samples it had, up to its new share, and a new class takes a seeded random
        choice of its samples."""
        if self.logits_width:
            raise ValueError(f"{self.name}: a class-balanced buffer stores no logits")
        old = self.arrays()
        y = np.asarray(y).reshape((-1, *self.label_shape))
        old_pairs = list(zip(old["task"].tolist(), _flat(old["y"])))
        new_labels = np.asarray(_flat(y))
        held = set(old_pairs)
        keys = list(dict.fromkeys(old_pairs))
        keys += [k for k in dict.fromkeys((int(task), c) for c in new_labels.tolist())
                 if k not in keys]
        share, extra = divmod(self.capacity, len(keys))
        rng = np.random.default_rng(seed)
        parts = {"x": [], "y": [], "task": []}
        for k, key in enumerate(keys):
            quota = share + (1 if k < extra else 0)
            if key in held:  # a (task, class) already held keeps what it had
                kept = [i for i, pair in enumerate(old_pairs) if pair == key][:quota]
                source_x, source_y = old["x"][kept], old["y"][kept]
            else:
                candidates = np.flatnonzero(new_labels == key[1])
                rows = np.sort(rng.choice(candidates, min(quota, len(candidates)), replace=False))
                source_x, source_y = x[rows], y[rows]
            parts["x"].append(source_x)
            parts["y"].append(source_y)
            parts["task"].append(np.full(len(source_x), key[0], np.int32))
        self._assign({k: np.concatenate(v) for k, v in parts.items()})

    def state(self) -> dict[str, np.ndarray]:
        """Every variable as a NumPy array (for checkpoints)."""
        out = {key: v.numpy() for key, v in self.stored.items()}
        out.update({key: np.asarray(v.numpy()) for key, v in self.counters.items()})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned, after checking every key.

        Raises:
            CheckpointError: a key is missing, has another shape or dtype, holds non-finite
                values, or a counter, task id or class label is out of range (`filled` above
                the capacity, say); nothing is assigned then.
        """
        name = f"{self.name} buffer"
        filled = state_array(name, state, "filled", (), "int", low=0, high=self.capacity,
                             what="the buffer's capacity")
        counters = {
            "filled": filled,
            "seen": state_array(name, state, "seen", (), "int", low=int(filled),
                                what="at least the filled slots"),
            "draws": state_array(name, state, "draws", (), "int", low=0),
        }
        top = None if self.tasks is None else self.tasks - 1
        task = state_array(name, state, "task", tuple(self.task.shape), "int", low=0, high=top,
                           what=f"the stream's {self.tasks} tasks" if self.tasks else "")
        classification = self.label_dtype.is_integer
        stored = {
            "x": state_array(name, state, "x", tuple(self.x.shape)),
            "y": state_array(name, state, "y", tuple(self.y.shape),
                             kind_of(self.label_dtype), low=0 if classification else None),
            "task": task,
        }
        if self.logits_width:
            stored["logits"] = state_array(name, state, "logits", tuple(self.logits.shape))
        if classification and self.classes and not self.label_shape:
            n = int(filled)
            limits = np.asarray(self.classes)[np.minimum(task[:n], len(self.classes) - 1)]
            bad = np.flatnonzero(stored["y"][:n] >= limits)
            if bad.size:
                slot = int(bad[0])
                raise CheckpointError(
                    f"{name}: checkpointed state 'y' holds label {int(stored['y'][slot])} in slot "
                    f"{slot} (task {int(task[slot]) + 1}); expected a class below "
                    f"{int(limits[slot])}, that task's head's width")
        for key, value in {**stored, **counters}.items():
            variable = self.stored.get(key, self.counters.get(key))
            variable.assign(value.astype(variable.dtype.as_numpy_dtype))


def _flat(labels: np.ndarray) -> list:
    """Class labels as a list of Python ints (a regression target cannot be balanced)."""
    labels = np.asarray(labels)
    if labels.ndim > 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError("replay_policy balanced needs integer class labels")
    return [int(v) for v in labels]


def buffer_for(tasks: Sequence, capacity: int, logits: bool = False, seed: int = 0,
               name: str = "memory") -> MemoryBuffer:
    """A `MemoryBuffer` shaped for the tasks' inputs and labels (and outputs, with `logits`).

    Args:
        tasks: the run's `SequentialTask`s (their data give the shapes and dtypes).
        capacity: the samples the buffer holds.
        logits: also keep each sample's model outputs (DER++).
        seed: the seed of the buffer's random draws.
        name: the buffer's name (its variables' prefix).

    Returns:
        A `MemoryBuffer`; create it under the strategy's scope (in `Plugin.build`).

    Example:
    ```python
    def build(self, run):
        self.buffer = buffer_for(run.tasks, capacity=500, seed=run.seed)
    ```
    """
    task = tasks[0]
    input_shape = tuple(task.model.input_shape[1:])
    data = task.train_data
    if isinstance(data, tf.data.Dataset):
        label_shape = tuple(data.element_spec[1].shape[1:])
    else:
        label_shape = tuple(np.asarray(data[1]).shape[1:])
    classification = task._is_classification()
    dtype = tf.int32 if classification else tf.float32
    width = int(task.model.output_shape[-1]) if logits else 0
    classes = ([int(t.model.output_shape[-1]) for t in tasks] if classification else None)
    return MemoryBuffer(capacity, input_shape, label_shape, dtype, width, seed, name,
                        tasks=len(tasks), classes=classes)
