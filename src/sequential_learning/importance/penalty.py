"""The consolidation penalty λ/2 Σ Ω (θ − θ*)², folded so its cost does not grow with tasks.

A sum of quadratics is a quadratic. After tasks t = 1..T with importances Ω_t and anchors θ*_t,

    Σ_t Ω_t (θ − θ*_t)² = Ω (θ − θ̄)² + C,   Ω = Σ_t Ω_t,   θ̄ = Σ_t Ω_t θ*_t / Ω,

with a constant C, so one importance and one anchor per variable give the same value and the same
gradient λ Ω (θ − θ̄) as the per-task sum (`separate` mode, the reference design's behaviour).

The train step evaluates it with r = √(λ Ω), cached beside Ω: e = r (θ − θ̄), value ½ Σ e², and
the task gradient plus r e, in `keras.ops` on every backend. The penalty's share of a step is
memory traffic, not arithmetic, so on TensorFlow this runs as one native kernel that reads each
array once (`sequential_learning.native`), or, where that kernel cannot be built, as
TensorFlow's subtract, multiply, `l2_loss`, multiply, add (the op order the package always had).
`online` mode (Schwarz et al. 2018) keeps Ω ← γ Ω + Ω_new and moves the anchor to the latest
weights; `latest` mode keeps Ω ← Ω_new, also anchored at the latest weights (for an estimator
whose Ω already covers every task so far: RWalk). Either way the state is one Ω and one anchor per covered variable: `keras.Variable`s
listed by `own_variables` (on JAX they go in and out of the stateless train step).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning import backend
from sequential_learning.errors import SeqlError
from sequential_learning.importance.modes import PENALTY_MODES
from sequential_learning.saved_state import state_array


class ConsolidationPenalty:
    """λ/2 Σ Ω (θ − θ*)² over the covered variables, with analytic gradients.

    Args:
        variables: the covered variables (the shared base's, or every variable more than one
            task trains).
        ewc_lambda: λ, the penalty's strength (≥ 0).
        mode: `separate` (per-task terms, folded), `online` (γ-decayed single term) or
            `latest` (the latest Ω only).
        gamma: decay of the old importance in `online` mode, in (0, 1].
        normalize: divide each task's Ω by its maximum before folding it in.

    Example:
    ```python
    penalty = ConsolidationPenalty(base.trainable_variables, ewc_lambda=100.0)
    penalty.consolidate(omega)          # after a task, with the weights at their anchor
    value = penalty.value()             # inside the train step
    grads = penalty.gradients()         # λ Ω (θ − θ̄), one per variable
    value, grads = penalty.add_to_gradients(task_grads)  # task gradients + λ Ω (θ − θ̄)
    ```
    """

    def __init__(
        self,
        variables: Sequence,
        ewc_lambda: float,
        mode: str = "separate",
        gamma: float = 1.0,
        normalize: bool = False,
    ) -> None:
        if mode not in PENALTY_MODES:
            raise ValueError(f"Unknown penalty mode {mode!r}; expected one of {PENALTY_MODES}")
        if not np.isfinite(ewc_lambda) or ewc_lambda < 0:
            raise ValueError(f"ewc_lambda must be a finite number >= 0, got {ewc_lambda}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
        self.variables = list(variables)
        self.mode = mode
        self.gamma = float(gamma)
        self.normalize = bool(normalize)
        self.num_terms = 0
        self._lambda = float(ewc_lambda)
        self.importance = [_state(np.zeros(v.shape, np.float32), f"importance_{i}")
                           for i, v in enumerate(self.variables)]
        self.anchor = [_state(_host(v).astype(np.float32), f"anchor_{i}")
                       for i, v in enumerate(self.variables)]
        # √(λ Ω), what the train step multiplies by (see the module's docstring).
        self.root = [_state(np.zeros(v.shape, np.float32), f"root_importance_{i}")
                     for i, v in enumerate(self.variables)]
        self.constant = _state(np.float32(0.0), "penalty_constant")

    @property
    def ewc_lambda(self) -> float:
        """λ, the penalty's strength (fixed at construction)."""
        return self._lambda

    def own_variables(self) -> list[keras.Variable]:
        """The penalty's state variables (Ω, anchors, √(λΩ), the constant)."""
        return [*self.importance, *self.anchor, *self.root, self.constant]

    @property
    def active(self) -> bool:
        """Whether any task has been consolidated (before that the penalty is zero)."""
        return self.num_terms > 0

    def consolidate(self, importance: Sequence, source: str = "") -> None:
        """Folds in a new term Ω_new (θ − θ_now)² anchored at the variables' current values.

        Args:
            importance: Ω_new, one array per covered variable, shaped like it, ≥ 0 and finite.
            source: where Ω_new comes from, for error messages (e.g. "task 2 ('digits 2-3'),
                method si").

        Raises:
            SeqlError: Ω_new has the wrong shapes, negative or non-finite values (the message
                names `source`, λ and what to do).
        """
        new = [np.asarray(ops.convert_to_numpy(o), np.float64) for o in importance]
        check_importance(new, self.variables, source, self._lambda)
        if self.normalize:
            peak = max(float(o.max()) if o.size else 0.0 for o in new)
            if peak > 0:
                new = [o / peak for o in new]
        constant = float(_host(self.constant))
        for i, (v, o_new) in enumerate(zip(self.variables, new)):
            theta = _host(v).astype(np.float64)
            o_old = _host(self.importance[i]).astype(np.float64)
            a_old = _host(self.anchor[i]).astype(np.float64)
            if self.mode == "online":
                o_sum = self.gamma * o_old + o_new
                a_new = theta
            elif self.mode == "latest":
                o_sum = o_new
                a_new = theta
            else:
                o_sum = o_old + o_new
                with np.errstate(invalid="ignore", divide="ignore"):
                    a_new = np.where(o_sum > 0, (o_old * a_old + o_new * theta) / o_sum, theta)
                constant += float(
                    np.sum(o_old * a_old**2 + o_new * theta**2 - o_sum * a_new**2)
                )
            self.importance[i].assign(o_sum.astype(np.float32))
            self.anchor[i].assign(a_new.astype(np.float32))
        self.constant.assign(constant if self.mode == "separate" else 0.0)
        self.num_terms += 1
        self._refresh_root()

    def _refresh_root(self) -> None:
        for r, o in zip(self.root, self.importance):
            r.assign(np.sqrt(self._lambda * _host(o).astype(np.float64)).astype(np.float32))

    def value(self) -> Any:
        """λ/2 (Σ Ω (θ − θ̄)² + C): equal to the per-task sum of penalties."""
        return self.value_and_gradients()[0]

    def gradients(self) -> list:
        """λ Ω (θ − θ̄) per covered variable: the penalty's exact gradient."""
        return self.value_and_gradients()[1]

    def value_and_gradients(self) -> tuple[Any, list]:
        """The value and the gradient λ Ω (θ − θ̄) per covered variable, sharing r (θ − θ̄)."""
        return self.add_to_gradients(None)

    def add_to_gradients(
        self, gradients: Sequence | None, scale: Any = 1.0
    ) -> tuple[Any, list]:
        """The value, and `gradients` (one per covered variable) plus `scale` λ Ω (θ − θ̄).

        What the train step calls. On TensorFlow, where the fused kernel is available
        (`native.status()`), each float32 variable takes one pass over memory; otherwise the
        same arithmetic takes five ops (TensorFlow's `l2_loss` for ½ Σ e² there).

        Args:
            gradients: the task loss's gradients of the covered variables, or None (then the
                penalty's own gradients are returned).
            scale: the factor on the penalty's gradient (a loss scale, 1 / replicas); a
                Python 1.0 costs nothing.

        Returns:
            (λ/2 Σ Ω (θ − θ̄)² + λ/2 C, the summed gradients).
        """
        tensorflow = backend.is_tensorflow()
        kernel = None
        if tensorflow and gradients is not None:
            from sequential_learning import native

            kernel = native.penalty_kernel()
        kernel_scale = ops.cast(scale, "float32") if kernel is not None else None
        half_sum_of_squares = _tf_l2_loss() if tensorflow else _half_sum_of_squares
        out = []
        total = 0.5 * self._lambda * ops.convert_to_tensor(self.constant)
        for k, (v, r, a) in enumerate(zip(self.variables, self.root, self.anchor)):
            value = ops.convert_to_tensor(v)
            gradient = None if gradients is None else gradients[k]
            if kernel is not None and _fusable(gradient, value):
                # One pass: e = r (θ − θ̄), ½ Σ e² and the gradient plus scale · r e.
                summed, part = kernel(gradient, value, a.value, r.value, kernel_scale)
                total = total + part
                out.append(summed)
                continue
            scaled = r * (value - a)  # e = √(λΩ) (θ − θ̄)
            total = total + half_sum_of_squares(scaled)  # ½ Σ e², one reduction
            grad = r * scaled
            if not (isinstance(scale, float) and scale == 1.0):
                grad = scale * grad
            out.append(grad if gradient is None else gradient + grad)
        return total, out

    def state(self) -> dict[str, np.ndarray]:
        """The penalty's state as NumPy arrays (for checkpoints)."""
        out = {f"importance_{i}": _host(o) for i, o in enumerate(self.importance)}
        out.update({f"anchor_{i}": _host(a) for i, a in enumerate(self.anchor)})
        out["constant"] = np.asarray(_host(self.constant))
        out["num_terms"] = np.asarray(self.num_terms)
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned, after checking every key.

        Raises:
            CheckpointError: a key is missing, an Ω or anchor has another shape than its
                variable, a value is not finite, Ω is negative or `num_terms` is not a count;
                nothing is assigned then.
        """
        owner = "penalty"
        importance, anchor = [], []
        for i, v in enumerate(self.variables):
            shape = tuple(v.shape)
            importance.append(state_array(owner, state, f"importance_{i}", shape, low=0.0,
                                          what="an importance is never negative"))
            anchor.append(state_array(owner, state, f"anchor_{i}", shape))
        constant = state_array(owner, state, "constant", ())
        num_terms = state_array(owner, state, "num_terms", (), "int", low=0)
        for o, a, o_new, a_new in zip(self.importance, self.anchor, importance, anchor):
            o.assign(o_new.astype(np.float32))
            a.assign(a_new.astype(np.float32))
        self.constant.assign(float(constant))
        self.num_terms = int(num_terms)
        self._refresh_root()


def _state(value: np.ndarray, name: str) -> keras.Variable:
    """A non-trainable float32 state variable of the penalty."""
    return keras.Variable(value, dtype="float32", trainable=False, name=name)


def _host(variable) -> np.ndarray:
    """A variable's value as a NumPy array."""
    return np.asarray(ops.convert_to_numpy(ops.convert_to_tensor(variable)))


def _half_sum_of_squares(x) -> Any:
    """½ Σ x² in `keras.ops` (JAX, torch)."""
    return 0.5 * ops.sum(ops.square(x))


def _tf_l2_loss():
    """TensorFlow's fused ½ Σ x² (`tf.nn.l2_loss`), the reduction the package always used."""
    import tensorflow as tf

    return tf.nn.l2_loss


def _fusable(gradient, value) -> bool:
    """Whether the fused kernel takes this variable: a dense float32 gradient and value (TF)."""
    import tensorflow as tf

    return (
        isinstance(gradient, tf.Tensor)
        and gradient.dtype == tf.float32
        and value.dtype == tf.float32
    )


def check_importance(importance: Sequence, variables: Sequence, source: str = "",
                     ewc_lambda: float | None = None) -> None:
    """Raises SeqlError unless Ω matches the variables' shapes and is finite and ≥ 0.

    Args:
        importance: Ω, one array per covered variable.
        variables: the covered variables.
        source: where Ω comes from (task, method), named in the message.
        ewc_lambda: the penalty's λ, named in a non-finite Ω's message (None: not named).

    Example:
    ```python
    check_importance(omega, base.trainable_variables, "task 2 ('digits 2-3'), method si", 1e4)
    ```

    Returns:
        None.
    """
    what = f"Importance of {source}" if source else "Importance"
    if len(importance) != len(variables):
        raise SeqlError(
            f"{what} has {len(importance)} tensors but {len(variables)} variables are covered"
        )
    for o, v in zip(importance, variables):
        name = getattr(v, "path", getattr(v, "name", "?"))
        if tuple(np.shape(o)) != tuple(v.shape):
            raise SeqlError(
                f"{what}: variable {name} has shape {tuple(np.shape(o))}, "
                f"expected {tuple(v.shape)}"
            )
        arr = np.asarray(o)
        if not np.all(np.isfinite(arr)):
            bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            strength = "" if ewc_lambda is None else f" (now {ewc_lambda:g})"
            raise SeqlError(
                f"{what}: variable {name} has non-finite values ({bad} of {arr.size}): the "
                f"weights diverged; lower lambda{strength} or the learning rate"
            )
        if np.any(arr < 0):
            raise SeqlError(f"{what}: variable {name} has negative values")
