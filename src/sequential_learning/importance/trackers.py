"""Per-step trackers: sign flips, update reversals and weight change over a task.

Each tracker counts something per weight over the training steps of a task and turns the count
into Ω with `1 / (1 + count)`: a weight that kept its sign, kept moving the same way, or hardly
moved is deemed important.

* `SignFlipImportance`: how often the weight's sign changed between consecutive steps.
* `MomentumImportance`: how often the direction of its update reversed,
  sign(Δθ_t) · sign(Δθ_{t−1}) < 0.
* `WeightChangeImportance`: the path length Σ_t |Δθ_t| (or, with `net=True`, |θ_end − θ_start|).

The counts live in `keras.Variable`s created in `build` and are updated by `track_step` inside the
compiled train step (`keras.ops`, on every backend; on JAX they are threaded through the
stateless step, listed by `own_variables`), which passes a *copy* of the values taken before the
optimizer update; the new values are read from the variables after it. (The reference design kept references to the
variables instead of copies, so every change it measured was zero and these methods silently
became weight decay.)

Under a `tf.distribute` strategy (TensorFlow) the accumulators are on-read variables with MEAN
aggregation: each replica counts on its own copy (the updates, and so the counts, are the same on every
replica) and reading them in cross-replica context gives the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning.importance.base import ImportanceEstimator, TaskContext
from sequential_learning.saved_state import state_array


def accumulator(variable, name: str) -> keras.Variable:
    """A float32 zero `keras.Variable` shaped like `variable`, for per-replica step statistics.

    Call it under the strategy's scope (as `build` is called). On-read synchronisation lets every
    replica update its own copy inside the train step; reads in cross-replica context average
    the copies.

    Args:
        variable: the model variable the statistic is kept for (its shape is taken).
        name: the accumulator's name.

    Returns:
        A non-trainable `keras.Variable` of zeros.

    Example:
    ```python
    flips = [accumulator(v, "flips") for v in base.trainable_variables]
    ```
    """
    return keras.Variable(
        np.zeros(tuple(variable.shape), np.float32),
        trainable=False,
        name=name.replace("/", "_"),
        synchronization="on_read",
        aggregation="mean",
    )


def read(variable) -> Any:
    """The current value of a (Keras or TF) variable as a float32 tensor.

    Args:
        variable: a `keras.Variable` (or a backend tensor).

    Returns:
        Its value, cast to float32, outside autodiff.

    Example:
    ```python
    start = [read(v) for v in base.trainable_variables]
    ```
    """
    # Not differentiated (on torch a variable's value is a parameter that requires grad).
    return ops.stop_gradient(ops.cast(ops.convert_to_tensor(variable), "float32"))


def inverse_count(count) -> Any:
    """Ω = 1 / (1 + count), float32.

    Args:
        count: a tensor of counts (sign flips, reversals, path length).

    Returns:
        `1 / (1 + count)` as a float32 tensor of the same shape.

    Example:
    ```python
    inverse_count(ops.convert_to_tensor([0.0, 1.0, 3.0]))   # [1.0, 0.5, 0.25]
    ```
    """
    return 1.0 / (1.0 + ops.cast(ops.convert_to_tensor(count), "float32"))


def _numpy(variable) -> np.ndarray:
    """A variable's value on the host (the replicas' mean for an on-read one)."""
    return np.asarray(ops.convert_to_numpy(ops.convert_to_tensor(variable)))


class StepTracker(ImportanceEstimator):
    """Base of the per-step trackers: one accumulator per covered variable, reset per task.

    Subclasses set `slots` (the names of their per-variable accumulators), implement
    `_update(index, new, old, gradient)` with `keras.ops` only, and `end_task`.
    """

    tracks_steps = True
    slots: tuple[str, ...] = ("count",)
    #: Slots that can never be negative (counts, path lengths): checked on `load_state`.
    nonnegative_slots: tuple[str, ...] = ("count", "path")

    def build(self, variables: Sequence) -> None:
        self.variables = list(variables)
        self._slots = {
            slot: [accumulator(v, f"{self.name}_{slot}_{i}") for i, v in enumerate(self.variables)]
            for slot in self.slots
        }

    def _slot(self, slot: str) -> list[keras.Variable]:
        if not hasattr(self, "_slots"):
            raise RuntimeError(f"{type(self).__name__}.build(variables) must be called first")
        return self._slots[slot]

    def begin_task(self, variables: Sequence) -> None:
        """Resets every accumulator to zero (with `assign`: the variables stay the same)."""
        for slot in self.slots:
            for acc in self._slot(slot):
                acc.assign(ops.zeros(acc.shape))

    def own_variables(self) -> list:
        """Every accumulator (empty before `build`)."""
        slots = getattr(self, "_slots", {})
        return [acc for slot in self.slots for acc in slots.get(slot, [])]

    def track_step(self, gradients: Sequence[Any], old_values: Sequence[Any]) -> None:
        if len(old_values) != len(self.variables):
            raise ValueError(
                f"track_step got {len(old_values)} old values for {len(self.variables)} variables"
            )
        grads = gradients if gradients is not None else [None] * len(self.variables)
        for i, (v, old, g) in enumerate(zip(self.variables, old_values, grads)):
            self._update(i, read(v), ops.cast(old, "float32"), g)

    def _update(self, index: int, new: Any, old: Any, gradient) -> None:
        raise NotImplementedError

    def counts(self, slot: str | None = None) -> list[np.ndarray]:
        """The accumulated values of `slot` (default: the first) as NumPy arrays."""
        return [_numpy(a) for a in self._slot(slot or self.slots[0])]

    def state(self) -> dict[str, np.ndarray]:
        return {
            f"{slot}_{i}": _numpy(a)
            for slot in self.slots
            for i, a in enumerate(self._slot(slot))
        }

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned, after checking every key.

        Raises:
            CheckpointError: a slot is missing, has another shape than its variable, holds
                non-finite values, or a count (`nonnegative_slots`) is negative; nothing is
                assigned then.
        """
        checked = []
        for slot in self.slots:
            low = 0.0 if slot in self.nonnegative_slots else None
            for i, acc in enumerate(self._slot(slot)):
                checked.append((acc, state_array(
                    self.name, state, f"{slot}_{i}", tuple(acc.shape), low=low,
                    what="a count or path length" if low is not None else "")))
        for acc, value in checked:
            acc.assign(value.astype(np.float32))


class SignFlipImportance(StepTracker):
    """Ω = 1 / (1 + flips): flips counts the steps where a weight's sign changed.

    A flip is a strict change of sign between the values before and after a step
    (θ_{t−1} · θ_t < 0); moving to or from exactly zero is not a flip, so a bias that starts at
    zero does not count one on its first step. (The product is taken in float32: a "flip" between
    two values both below about 1e-22 in magnitude underflows to no flip.)

    Example:
    ```python
    estimator = SignFlipImportance()
    estimator.build(base.trainable_variables)
    ```
    """

    name = "sign-flipping"

    def _update(self, index, new, old, gradient):
        flipped = old * new < 0
        self._slot("count")[index].assign_add(ops.cast(flipped, "float32"))

    def end_task(self, context: TaskContext) -> list:
        return [inverse_count(c) for c in self._slot("count")]


class MomentumImportance(StepTracker):
    """Ω = 1 / (1 + reversals): reversals counts steps whose update opposed the previous one.

    With Δθ_t = θ_t − θ_{t−1}, step t is a reversal when Δθ_t · Δθ_{t−1} < 0 (a step that does
    not move the weight is no reversal, and the next step is compared with it; updates both
    below about 1e-22 underflow to no reversal). The first step of each task has no predecessor.

    Example:
    ```python
    estimator = MomentumImportance()
    ```
    """

    name = "momentum-based"
    slots = ("count", "previous_delta")

    def _update(self, index, new, old, gradient):
        delta = new - old
        previous = self._slot("previous_delta")[index]
        reversed_ = delta * ops.convert_to_tensor(previous) < 0
        self._slot("count")[index].assign_add(ops.cast(reversed_, "float32"))
        previous.assign(delta)

    def end_task(self, context: TaskContext) -> list:
        return [inverse_count(c) for c in self._slot("count")]


class WeightChangeImportance(StepTracker):
    """Ω = 1 / (1 + Σ_t |Δθ_t|), the inverse of each weight's path length over the task.

    Args:
        net: use the net change |θ_end − θ_start| instead of the path length (no per-step
            tracking then: only θ_start is kept).

    Example:
    ```python
    estimator = WeightChangeImportance(net=True)
    ```
    """

    name = "weight-change"

    def __init__(self, net: bool = False) -> None:
        if not isinstance(net, (bool, np.bool_)):
            raise ValueError(f"net must be True or False, got {net!r}")
        self.net = bool(net)
        self.tracks_steps = not self.net
        self.slots = ("start",) if self.net else ("path",)

    def begin_task(self, variables: Sequence) -> None:
        if self.net:
            for start, v in zip(self._slot("start"), self.variables):
                start.assign(ops.copy(read(v)))  # a copy: on JAX not the same buffer
        else:
            super().begin_task(variables)

    def _update(self, index, new, old, gradient):
        self._slot("path")[index].assign_add(ops.abs(new - old))

    def end_task(self, context: TaskContext) -> list:
        if self.net:
            changes = [
                ops.abs(read(v) - ops.convert_to_tensor(s))
                for v, s in zip(self.variables, self._slot("start"))
            ]
        else:
            changes = [ops.convert_to_tensor(p) for p in self._slot("path")]
        return [inverse_count(c) for c in changes]

    def describe(self) -> dict:
        return {"method": self.name, "net": self.net}
