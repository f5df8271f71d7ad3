"""GDumb (Prabhu, Torr & Dokania 2020, "GDumb: a simple approach that questions our progress in
continual learning").

A greedy sampler keeps a class-balanced memory of the stream, and a "dumb" learner is trained
from scratch on the memory alone, so every evaluation sees a model that has only ever seen the
memory:

* the sampler (`GreedyClassBalancedSampler`, NumPy, on the Python side) is offered every training
  sample of a task, in a seeded random order (seeded from the run's seed and the task): a sample
  is stored while the memory is not full; once it is, a sample whose class holds fewer than
  memory / (classes seen so far) samples takes the slot of a random sample of the largest
  class (ties: the first class in (task, label) order); otherwise it is dropped. A class is a
  (task, label) pair (in a class-incremental stream that is the label);
* before each task's training the models are reset to their initial weights (kept when the
  plugin is built: the shared base and every head) and trained on the memory only
  (`adapt_dataset`), with a fresh optimizer. With a head per task each memory sample goes through
  its own task's head (as `cumulative`); in a class-incremental stream the classes seen so far
  are active, which are the classes in the memory.

Where we differ: the paper (and Mammoth, with 256 epochs, SGDR and cutmix) trains the learner
once, at the end, for many epochs; here it is trained at every task, for the run's epochs, each
epoch as many batches as the task's own data has (the memory cycled through, at least once), so
it costs what the other methods cost and every row of the accuracy matrix is GDumb's.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable
from typing import Any

import numpy as np
from keras import ops

from sequential_learning.plugins.base import Experience, Plugin, Run
from sequential_learning.plugins.registry import MEMORY
from sequential_learning.plugins.replay import check_memory_fits
from sequential_learning.saved_state import kind_of, state_array


class GreedyClassBalancedSampler:
    """GDumb's greedy class-balanced sampler over slots `0 .. capacity − 1`.

    Args:
        capacity: the number of slots (>= 1).

    Example:
    ```python
    sampler = GreedyClassBalancedSampler(4)
    rng = np.random.default_rng(0)
    slots = [sampler.offer(label, rng) for label in [0, 0, 0, 0, 1, 1]]
    # [0, 1, 2, 3, s, s']: class 1 takes two of class 0's slots (two each)
    ```
    """

    def __init__(self, capacity: int) -> None:
        if int(capacity) < 1:
            raise ValueError(f"memory: {capacity!r} is not allowed; expected an integer >= 1")
        self.capacity = int(capacity)
        self.keys: list[Hashable] = []  # the class of each filled slot
        self.slots: dict[Hashable, list[int]] = {}  # each class's slots, ascending
        self.seen: set = set()

    def offer(self, key: Hashable, rng: np.random.Generator) -> int | None:
        """Offers one sample of class `key`.

        Args:
            key: its class (hashable and orderable: a label or a (task, label) pair).
            rng: the generator of the eviction draws (one integer per eviction).

        Returns:
            The slot it is stored in, or None when it is dropped.
        """
        self.seen.add(key)
        if len(self.keys) < self.capacity:
            slot = len(self.keys)
            self.keys.append(key)
            self.slots.setdefault(key, []).append(slot)
            return slot
        if len(self.slots.get(key, ())) >= self.capacity / len(self.seen):
            return None
        largest = max(sorted(self.slots), key=lambda k: len(self.slots[k]))
        slot = self.slots[largest].pop(int(rng.integers(len(self.slots[largest]))))
        if not self.slots[largest]:
            del self.slots[largest]
        self.keys[slot] = key
        bisect.insort(self.slots.setdefault(key, []), slot)
        return slot

    def restore(self, keys: list, seen: list) -> None:
        """Sets the filled slots' classes (`keys`, slot order) and the classes seen so far."""
        self.keys = list(keys)
        self.slots = {}
        for slot, key in enumerate(self.keys):
            self.slots.setdefault(key, []).append(slot)
        self.seen = set(seen) | set(self.keys)


class GDumb(Plugin):
    """Greedy class-balanced memory and a learner trained from scratch on it at every task.

    Args:
        memory: samples the memory holds, all tasks together.
        seed: seed of the sampler's order and evictions (None: the run's seed).

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method=GDumb(memory=500))
    ```
    """

    name = "gdumb"
    family = "replay"
    needs_boundaries = True
    boundary_use = "it retrains the model from scratch on its memory when a task starts"
    task_types = ("classification",)

    def __init__(self, memory: int = MEMORY.default, seed: int | None = None) -> None:
        MEMORY.validate(memory)
        self.memory = int(memory)
        self.seed = seed

    def check(self, run: Run) -> None:
        super().check(run)
        check_memory_fits(self.name, self.memory, run)
        run.require_arrays(self.name, "it samples each task's data into its memory")
        labels = np.asarray(run.tasks[0].train_data[1])
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{self.name} needs integer class labels, one per sample; got "
                             f"{labels.dtype} labels of shape {labels.shape[1:]}")

    def build(self, run: Run) -> None:
        self._seed = run.seed if self.seed is None else self.seed
        self.shared_head = run.shared_head
        first = run.tasks[0].train_data
        self.x = np.zeros((self.memory, *np.shape(first[0])[1:]), np.float32)
        self.y = np.zeros((self.memory,), np.int64)
        self.task = np.zeros((self.memory,), np.int32)
        self.sampler = GreedyClassBalancedSampler(self.memory)
        weights: dict[int, Any] = {}
        for task in run.tasks:
            for v in task.model.weights:
                weights.setdefault(id(v), v)
        self._weights = list(weights.values())
        self.initial = [_host(v) for v in self._weights]

    @property
    def filled(self) -> int:
        """How many slots hold a sample."""
        return len(self.sampler.keys)

    def routed_tasks(self, exp: Experience) -> int:
        return 0 if exp.run.shared_head else exp.index + 1

    def routed_data(self, exp: Experience) -> bool:
        return not exp.run.shared_head and exp.index > 0

    def before_training_exp(self, exp: Experience) -> None:
        self._sample(exp)
        for v, value in zip(self._weights, self.initial):
            v.assign(value)  # from scratch: the weights the models were built with

    def _sample(self, exp: Experience) -> None:
        """Offers the task's training samples to the sampler, in a seeded random order."""
        x, y = (np.asarray(a) for a in exp.task.train_data)
        rng = np.random.default_rng([self._seed, 1709, exp.index])
        source = np.full(self.memory, -1)
        for i in rng.permutation(len(y)):
            slot = self.sampler.offer((exp.index, int(y[i])), rng)
            if slot is not None:
                source[slot] = i
        rows = np.flatnonzero(source >= 0)
        self.x[rows] = x[source[rows]]
        self.y[rows] = y[source[rows]]
        self.task[rows] = exp.index

    def adapt_dataset(self, dataset: Any, exp: Experience) -> Any:
        from sequential_learning.pipeline import array_dataset

        n = self.filled
        steps = max(len(exp.task.train_data[0]), n)  # the task's own number of samples
        rows = np.resize(np.arange(n), steps)
        ids = self.task[rows] if self.routed_data(exp) else None
        task = exp.task
        return array_dataset(self.x[rows], self.y[rows], task.batch_size,
                             task.shuffle_seed + exp.run.seed * 1000 + exp.index, task_ids=ids)

    def after_training_exp(self, exp: Experience) -> None:
        keys, counts = np.unique(np.stack([self.task[:self.filled], self.y[:self.filled]], 1),
                                 axis=0, return_counts=True)
        exp.summary["gdumb_memory"] = {f"task_{t + 1}/class_{c}": int(n)
                                       for (t, c), n in zip(keys.tolist(), counts)}

    def state(self) -> dict[str, np.ndarray]:
        out = {"x": self.x.copy(), "y": self.y.copy(), "task": self.task.copy(),
               "filled": np.asarray(self.filled),
               "seen": np.array(sorted(self.sampler.seen), np.int64).reshape(-1, 2)}
        out.update({f"initial_{i}": value for i, value in enumerate(self.initial)})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned, after checking every key.

        Raises:
            CheckpointError: a key is missing, or has another shape, dtype or range than this
                run's memory and models give; nothing is assigned then.
        """
        owner = f"{self.name} memory"
        filled = int(state_array(owner, state, "filled", (), "int", low=0, high=self.memory,
                                 what="the memory's size"))
        x = state_array(owner, state, "x", self.x.shape)
        y = state_array(owner, state, "y", self.y.shape, "int", low=0)
        task = state_array(owner, state, "task", self.task.shape, "int", low=0)
        seen = np.asarray(state.get("seen", np.zeros((0, 2), np.int64)))
        seen = state_array(owner, state, "seen", (len(seen), 2), "int", low=0)
        initial = [state_array(owner, state, f"initial_{i}", value.shape, kind_of(value.dtype))
                   for i, value in enumerate(self.initial)]
        self.x, self.y, self.task = (np.array(a, dtype) for a, dtype in
                                     ((x, np.float32), (y, np.int64), (task, np.int32)))
        self.sampler.restore(list(zip(self.task[:filled].tolist(), self.y[:filled].tolist())),
                             [tuple(k) for k in seen.tolist()])
        self.initial = [np.array(a, value.dtype) for a, value in zip(initial, self.initial)]

    def describe(self) -> dict:
        return {"memory": self.memory, "gdumb_sampler": "greedy class-balanced",
                "gdumb_training": "from the initial weights at every task, on the memory only"}


def _host(variable) -> np.ndarray:
    """A copy of a variable's value on the host."""
    return np.array(ops.convert_to_numpy(variable))
