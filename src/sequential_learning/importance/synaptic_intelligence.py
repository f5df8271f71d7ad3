"""Synaptic intelligence (Zenke, Poole & Ganguli 2017): importance from the loss's path integral.

During a task every step adds the weight's contribution to the drop of the loss being
minimised,

    ω += −g_t · Δθ_t,

where Δθ_t = θ_t − θ_{t−1} is the update the optimizer actually made and g_t is the gradient of
the loss the step minimises *without* SI's own penalty: the task loss plus every loss another
plugin adds (replay's, DER++'s, LwF's distillation); with SI alone, the task loss. Zenke et al.
define ω_k as parameter k's share of the drop of the loss being optimised along the path the
parameters took (Σ_k ω_k = L(θ_start) − L(θ_end) for small steps), with g the gradient of that
loss without the surrogate term c Σ Ω (θ − θ̃)². With replay or distillation that loss includes
their terms: they are what moves θ (with plain SGD Δθ = −η g, so −g·Δθ = η g² ≥ 0), and a
parameter that keeps the replayed samples right is one to protect. The task loss alone would
credit each step with −g_task · Δθ for a Δθ it did not drive alone (a product of two different
gradients, of either sign). The penalty is left out as in the paper: its gradient only pulls
weights back to their anchors, which is not learning. The compiled train
step passes these gradients (`Step.tracked_gradients`: taken before any plugin transforms them;
the penalty's gradient is analytic, so this costs no second backward pass). At the task's end

    Ω_task = max(ω, 0) / ((θ_end − θ_start)² + ξ),

and Ω sums over tasks. Zenke et al. anchor the summed Ω at the weights after the latest task:
that is the penalty's `online` mode with γ = 1, SI's default (`default_penalty_mode`); the
`separate` mode instead anchors each task's term at that task's own end (on permuted-digits it
does worse: ACC 0.58-0.59 against 0.62 at the best λ). Their surrogate loss c Σ Ω (θ − θ̃)² has
no ½, so their c is λ/2 here. Zenke et al. do not clip ω; a
negative ω (the weight's moves *raised* the loss on balance, which happens with noisy or momentum
updates) would make the penalty push weights away from their anchor, so it is clipped at 0 here:
such weights are deemed unimportant. ξ (default 0.1) keeps Ω finite for weights that barely moved.

The accumulators are `keras.Variable`s created in `build` (under the strategy's scope) and reset
in `begin_task`, updated with `keras.ops` on every backend; under a `tf.distribute` strategy each
replica accumulates its own −g·Δθ (the gradient of its share of the batch, scaled to a mean) and
reading averages them, giving −ḡ·Δθ.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from keras import ops

from sequential_learning.importance.base import TaskContext
from sequential_learning.importance.trackers import StepTracker, read


class SynapticIntelligenceImportance(StepTracker):
    """Ω = max(ω, 0) / ((θ_end − θ_start)² + ξ), with ω = −Σ_t g_t · Δθ_t over the task.

    Args:
        xi: the damping ξ > 0 (Zenke et al. use 0.1 on permuted MNIST).

    Example:
    ```python
    estimator = SynapticIntelligenceImportance(xi=0.1)
    manager = SequentialLearningManager(base, tasks, method="si", ewc_lambda=1.0)
    ```
    """

    name = "si"
    slots = ("omega", "start")

    def __init__(self, xi: float = 0.1) -> None:
        try:
            xi = float(xi)
        except (TypeError, ValueError):
            raise ValueError(f"xi must be a number > 0, got {xi!r}") from None
        if not math.isfinite(xi) or xi <= 0:
            raise ValueError(f"xi must be a finite number > 0, got {xi}")
        self.xi = xi

    def begin_task(self, variables: Sequence) -> None:
        """Resets ω to zero and records θ_start."""
        for omega, start, v in zip(self._slot("omega"), self._slot("start"), self.variables):
            omega.assign(ops.zeros(omega.shape))
            start.assign(ops.copy(read(v)))  # a copy: on JAX not the same buffer

    def track_step(self, gradients: Sequence[Any], old_values: Sequence[Any]) -> None:
        if gradients is None or len(gradients) != len(self.variables):
            raise ValueError("synaptic intelligence needs the task loss's gradient per variable")
        super().track_step(gradients, old_values)

    def _update(self, index, new, old, gradient):
        self._slot("omega")[index].assign_add(-ops.cast(gradient, "float32") * (new - old))

    def path_integral(self) -> list:
        """ω so far in this task (unclipped), one tensor per covered variable."""
        return [ops.convert_to_tensor(o) for o in self._slot("omega")]

    def end_task(self, context: TaskContext) -> list:
        out = []
        for omega, start, v in zip(self._slot("omega"), self._slot("start"), self.variables):
            change = read(v) - ops.convert_to_tensor(start)
            out.append(ops.maximum(ops.convert_to_tensor(omega), 0.0)
                       / (ops.square(change) + self.xi))
        return out

    def describe(self) -> dict:
        return {"method": self.name, "xi": self.xi, "si_omega_clipped_at_zero": True}
