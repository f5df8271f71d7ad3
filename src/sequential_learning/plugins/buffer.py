"""A memory of past samples in `keras.Variable`s, filled and read inside the compiled step.

`MemoryBuffer` holds up to `capacity` samples: inputs, labels, the task each came from, and, for
DER++ and X-DER, the logits the model gave it. Three ways to fill it (and `assign_arrays` to
replace its contents from Python):

* `reservoir_add` (in-graph, every step): reservoir sampling (Vitter 1985) over every sample the
  stream offers, so the buffer is always a uniform sample of everything seen so far;
* `fill_balanced` (Python, after a task): an equal share per (task, class), as Avalanche's
  class-balanced buffer;
* `fill_slots` (Python, after a task): a fixed block of slots per task, as A-GEM's episodic
  memory.

Everything in the step is `keras.ops` on fixed shapes (no boolean masks, no data-dependent
shapes: JAX compiles the step once), so the buffer works on every Keras backend. Random draws use
`keras.random` with a `keras.random.SeedGenerator` kept on the buffer (its state is checkpointed
with the rest): the same seed gives the same buffer on one backend, in the compiled step and after
a resume. Under a `tf.distribute` strategy with several replicas the variables take the first
replica's update (`only_first_replica`): the buffer is a uniform sample of the batches that
replica saw, which is a uniform sample of the task's data too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning.checkpoint import CheckpointError
from sequential_learning.saved_state import kind_of, state_array


class MemoryBuffer:
    """A fixed-size memory of samples (see the module docstring).

    Args:
        capacity: the number of samples it holds (>= 1).
        input_shape: the shape of one input.
        label_shape: the shape of one label (`()` for class indices).
        label_dtype: `"int32"` for class indices, `"float32"` for regression targets.
        logits: the width of the stored logits (0: none stored).
        seed: the seed of its random draws.
        name: a prefix for its variables.
        tasks: the number of tasks of the stream (a checkpointed task id must be below it), or
            None (not checked).
        classes: the number of classes of each task's head (a checkpointed class label must be
            below its task's), or None (not checked).

    Example:
    ```python
    buffer = MemoryBuffer(500, (784,), (), "int32", seed=0)
    buffer.build()                          # under the strategy's scope
    batch = buffer.sample(32)               # in the step: {"x", "y", "task", "has_data"}
    buffer.reservoir_add(x, y, task_id)     # in the step, after the update
    ```
    """

    def __init__(self, capacity: int, input_shape: Sequence[int], label_shape: Sequence[int] = (),
                 label_dtype: Any = "int32", logits: int = 0, seed: int = 0,
                 name: str = "memory", *, tasks: int | None = None,
                 classes: Sequence[int] | None = None) -> None:
        self.capacity = int(capacity)
        if self.capacity < 1:
            raise ValueError(f"memory: {capacity!r} is not allowed; expected an integer >= 1")
        if any(d is None for d in input_shape):
            raise ValueError(f"{name}: needs inputs of a fixed shape, got {tuple(input_shape)}")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.label_shape = tuple(int(d) for d in label_shape)
        self.label_dtype = keras.backend.standardize_dtype(label_dtype)
        self.logits_width = int(logits)
        self.seed = int(seed)
        self.name = name
        self.tasks = None if tasks is None else int(tasks)
        self.classes = None if classes is None else [int(c) for c in classes]

    def build(self) -> None:
        """Creates the variables and the seed generator (call under the strategy's scope)."""

        def variable(shape, dtype, suffix):
            return keras.Variable(np.zeros(shape, dtype), trainable=False, dtype=dtype,
                                  name=f"{self.name}_{suffix}",
                                  aggregation="only_first_replica")

        m = self.capacity
        self.x = variable((m, *self.input_shape), "float32", "x")
        self.y = variable((m, *self.label_shape), self.label_dtype, "y")
        self.task = variable((m,), "int32", "task")
        self.stored = {"x": self.x, "y": self.y, "task": self.task}
        if self.logits_width:
            self.logits = variable((m, self.logits_width), "float32", "logits")
            self.stored["logits"] = self.logits
        self.seen = variable((), "int32", "seen")  # samples offered so far
        self.filled = variable((), "int32", "filled")  # slots in use
        self.counters = {"seen": self.seen, "filled": self.filled}
        self.draws = keras.random.SeedGenerator(self.seed, name=f"{self.name}_draws")

    def variables(self) -> list:
        """Every variable the in-graph methods read or assign (the seed generator's included)."""
        return [*self.stored.values(), *self.counters.values(), self.draws.state]

    # -- in-graph ----------------------------------------------------------------------------
    def sample(self, n: int, with_slots: bool = False) -> dict[str, Any]:
        """`n` samples drawn uniformly (with replacement) from the filled slots.

        Args:
            n: the number of samples (a Python int).
            with_slots: also return the slot each sample was read from (`"slot"`, int32), e.g.
                to write its logits back with `update_logits`.

        Returns:
            `{"x", "y", "task", ("logits"), ("slot"), "has_data"}`; `has_data` is 1.0 once
            anything is stored and 0.0 before (the draws then read empty slots: multiply a loss
            on them by it).
        """
        filled = ops.convert_to_tensor(self.filled)
        top = ops.maximum(filled, 1)
        draw = keras.random.uniform((int(n),), seed=self.draws)
        index = ops.cast(ops.floor(draw * ops.cast(top, "float32")), "int32")
        index = ops.minimum(index, top - 1)  # u * top may round up to top
        out = self._read(index)
        if with_slots:
            out["slot"] = index
        out["has_data"] = ops.cast(filled > 0, "float32")
        return out

    def sample_distinct(self, n: int, exclude_task: Any = None) -> dict[str, Any]:
        """Up to `n` distinct filled slots drawn uniformly without replacement, optionally
        leaving out the samples of one task (MIR's candidates).

        Every eligible slot gets a uniform draw and the `n` largest are taken (`ops.top_k`:
        fixed shapes, a uniformly random subset). With fewer than `n` eligible slots the rest
        of the rows read other slots and have `valid` 0.

        Args:
            n: the number of rows (a Python int; at most the capacity is drawn).
            exclude_task: a task id (an int or a scalar tensor / variable) whose samples are
                not drawn, or None.

        Returns:
            `{"x", "y", "task", ("logits"), "slot", "valid"}` with `min(n, capacity)` rows;
            `valid` is 1.0 for a drawn eligible slot and 0.0 for a filler row.

        Example:
        ```python
        candidates = buffer.sample_distinct(50, exclude_task=current_task)
        loss = ops.sum(per_sample * candidates["valid"])
        ```
        """
        k = min(int(n), self.capacity)
        slots = ops.cast(ops.arange(self.capacity), "int32")
        eligible = slots < ops.convert_to_tensor(self.filled)
        if exclude_task is not None:
            other = ops.not_equal(ops.convert_to_tensor(self.task),
                                  ops.cast(ops.convert_to_tensor(exclude_task), "int32"))
            eligible = ops.logical_and(eligible, other)
        draw = keras.random.uniform((self.capacity,), seed=self.draws)
        score = ops.where(eligible, draw, -1.0)
        values, index = ops.top_k(score, k)
        index = ops.cast(index, "int32")
        out = self._read(index)
        out["slot"] = index
        out["valid"] = ops.cast(values >= 0.0, "float32")
        return out

    def _read(self, index) -> dict[str, Any]:
        return {key: ops.take(ops.convert_to_tensor(v), index, axis=0)
                for key, v in self.stored.items()}

    def update_logits(self, slots, logits, keep) -> None:
        """Overwrites the stored logits of `slots` where `keep` (in-graph, fixed shapes).

        Args:
            slots: int, `[n]`; the slots whose `keep` is true must be distinct.
            logits: the new logits, `[n, width]`.
            keep: bool or 0/1, `[n]`: which rows are written (the others are dropped).

        Returns:
            None.

        Example:
        ```python
        batch = buffer.sample(32, with_slots=True)
        buffer.update_logits(batch["slot"], new_logits, chosen)
        ```
        """
        if not self.logits_width:
            raise ValueError(f"{self.name}: this buffer stores no logits")
        keep = ops.cast(keep, "bool")
        target = ops.where(keep, ops.cast(slots, "int32"), self.capacity)[:, None]
        current = ops.convert_to_tensor(self.logits)
        spare = ops.zeros((1, self.logits_width), self.logits.dtype)
        update = ops.cast(logits, self.logits.dtype)
        written = ops.scatter_update(ops.concatenate([current, spare], axis=0), target, update)
        self.logits.assign(written[: self.capacity])

    def reservoir_add(self, x, y, task, logits=None) -> None:
        """Offers a batch to the reservoir: sample number n of the stream takes a slot with
        probability capacity / (n + 1), replacing a uniformly chosen one.

        Args:
            x: the batch's inputs.
            y: its labels.
            task: the task id of every sample (an int or a scalar tensor / variable).
            logits: the model's outputs on `x` (with `logits`), else None.

        Returns:
            None.
        """
        x = ops.convert_to_tensor(x)
        count = ops.shape(x)[0]
        seen = ops.convert_to_tensor(self.seen)
        position = seen + ops.cast(ops.arange(count), "int32")
        draw = keras.random.uniform((count,), seed=self.draws)
        chosen = ops.cast(ops.floor(draw * ops.cast(position + 1, "float32")), "int32")
        chosen = ops.minimum(chosen, position)  # u * (n + 1) may round up to n + 1
        target = ops.where(position < self.capacity, position, chosen)
        keep = target < self.capacity
        # Two samples of one batch aimed at the same slot: the later one wins, as it would
        # one sample at a time.
        order = ops.cast(ops.arange(count), "int32")
        later = ops.logical_and(
            ops.logical_and(ops.equal(target[:, None], target[None, :]),
                            order[None, :] > order[:, None]),
            keep[None, :])
        keep = ops.logical_and(keep, ops.logical_not(ops.any(later, axis=1)))
        # Samples not kept write a spare row past the end, which is then dropped: fixed shapes.
        slots = ops.where(keep, target, self.capacity)[:, None]
        task_ids = ops.zeros_like(position) + ops.cast(ops.convert_to_tensor(task), "int32")
        values = {"x": x, "y": y, "task": task_ids}
        if self.logits_width:
            values["logits"] = logits
        for key, variable in self.stored.items():
            current = ops.convert_to_tensor(variable)
            spare = ops.zeros((1, *current.shape[1:]), variable.dtype)
            update = ops.reshape(ops.cast(values[key], variable.dtype),
                                 (-1, *current.shape[1:]))
            written = ops.scatter_update(ops.concatenate([current, spare], axis=0), slots, update)
            variable.assign(written[: self.capacity])
        # Both from the value read before: on torch a variable's tensor changes with it.
        total = seen + ops.cast(count, "int32")
        filled = ops.minimum(total, self.capacity)
        self.filled.assign(filled)
        self.seen.assign(total)

    # -- Python side -------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """The filled part of the buffer as NumPy arrays."""
        n = int(_numpy(self.filled))
        return {key: _numpy(v)[:n] for key, v in self.stored.items()}

    def composition(self) -> dict[str, int]:
        """How many samples of each task the buffer holds, `{"task_K": count}`."""
        n = int(_numpy(self.filled))
        ids, counts = np.unique(_numpy(self.task)[:n], return_counts=True)
        return {f"task_{int(i) + 1}": int(c) for i, c in zip(ids, counts)}

    def _assign(self, arrays: dict[str, np.ndarray]) -> None:
        n = len(arrays["x"])
        for key, variable in self.stored.items():
            full = np.zeros(variable.shape, variable.dtype)
            full[:n] = arrays[key]
            variable.assign(full)
        self.filled.assign(n)
        self.seen.assign(max(int(_numpy(self.seen)), n))

    def assign_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Replaces the buffer's contents by `arrays` (Python side): the first `len(x)` slots
        hold them and the buffer is filled up to there.

        Args:
            arrays: `{"x", "y", "task", ("logits")}`, every key the buffer stores, of equal
                lengths (at most the capacity).

        Returns:
            None.

        Example:
        ```python
        held = buffer.arrays()
        buffer.assign_arrays({key: value[:10] for key, value in held.items()})
        ```
        """
        missing = sorted(set(self.stored) - set(arrays))
        if missing:
            raise ValueError(f"{self.name}: assign_arrays needs {', '.join(missing)}")
        n = len(arrays["x"])
        if n > self.capacity or any(len(arrays[key]) != n for key in self.stored):
            raise ValueError(f"{self.name}: assign_arrays needs at most {self.capacity} rows of "
                             "each stored array, all of one length")
        self._assign({key: np.asarray(arrays[key]) for key in self.stored})

    def fill_slots(self, first: int, x: np.ndarray, y: np.ndarray, task: int) -> None:
        """Writes `x, y` (of task `task`) into slots `first, first + 1, ...`; the buffer is then
        filled up to the last of them."""
        current = {key: _numpy(v) for key, v in self.stored.items()}
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
        out = {key: _numpy(v) for key, v in self.stored.items()}
        out.update({key: _numpy(v) for key, v in self.counters.items()})
        out["draws"] = _numpy(self.draws.state)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned, after checking every key.

        Raises:
            CheckpointError: a key is missing, has another shape or dtype, holds non-finite
                values, or a counter, task id or class label is out of range (`filled` above
                the capacity, say); nothing is assigned then. `draws` is the seed generator's
                state (its shape and dtype are the backend's).
        """
        name = f"{self.name} buffer"
        filled = state_array(name, state, "filled", (), "int", low=0, high=self.capacity,
                             what="the buffer's capacity")
        counters = {
            "filled": filled,
            "seen": state_array(name, state, "seen", (), "int", low=int(filled),
                                what="at least the filled slots"),
        }
        draws = state_array(name, state, "draws", tuple(self.draws.state.shape), "int")
        top = None if self.tasks is None else self.tasks - 1
        task = state_array(name, state, "task", tuple(self.task.shape), "int", low=0, high=top,
                           what=f"the stream's {self.tasks} tasks" if self.tasks else "")
        classification = kind_of(self.label_dtype) == "int"
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
            variable.assign(value.astype(variable.dtype))
        self.draws.state.assign(draws.astype(self.draws.state.dtype))


def _numpy(variable) -> np.ndarray:
    """A copy of a variable's value (on torch a CPU tensor's NumPy view changes with it)."""
    return np.array(ops.convert_to_numpy(variable))


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
    if isinstance(data, tuple | list):
        label_shape = tuple(np.asarray(data[1]).shape[1:])
    else:  # a tf.data.Dataset (TensorFlow only)
        label_shape = tuple(data.element_spec[1].shape[1:])
    classification = task._is_classification()
    dtype = "int32" if classification else "float32"
    width = int(task.model.output_shape[-1]) if logits else 0
    classes = ([int(t.model.output_shape[-1]) for t in tasks] if classification else None)
    return MemoryBuffer(capacity, input_shape, label_shape, dtype, width, seed, name,
                        tasks=len(tasks), classes=classes)
