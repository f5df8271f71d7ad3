"""The EWC family as one plugin: an importance estimator and the penalty λ/2 Σ Ω (θ − θ*)².

`Consolidation(estimator, penalty)` is every weight-importance method of `EWCMethod` on the
plugin seam, with the numbers it had before the seam existed:

* `before_training_exp`: the estimator's `begin_task` (trackers record θ_start, reset counts);
* in-graph `transform_gradients`: the penalty's analytic gradient λ Ω (θ − θ̄) added to the
  covered variables' gradients (the fused native kernel where it is built), its value logged
  as `penalty`;
* in-graph `after_update`: per-step trackers (SI, sign flips, momentum, weight change) on the
  loss's own gradients and the values before the update;
* `after_training_exp`: Ω from the task (Fisher, MAS, ... on a sample of its training data, per
  replica and all-reduced under a `tf.distribute` strategy), folded into the penalty, saved per
  task.

All of it is `keras.ops` on `keras.Variable`s and runs on every Keras backend; `variables` lists
the penalty's and the tracker's state, which the trainer threads through JAX's stateless step.
"""

from __future__ import annotations

import contextlib

import numpy as np
from keras import ops

from sequential_learning.checkpoint import CheckpointError
from sequential_learning.importance import FISHER_SAMPLES
from sequential_learning.importance.base import ImportanceEstimator, TaskContext
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.plugins.base import Experience, Plugin, Run, Step


class Consolidation(Plugin):
    """An importance estimator and its consolidation penalty, as a plugin.

    Args:
        estimator: the `ImportanceEstimator` (built by the plugin on the covered variables).
        penalty: the `ConsolidationPenalty`, or None to make one on the covered variables
            with `ewc_lambda`, `penalty_mode`, `gamma` and `normalize` when the plugin is built.
        ewc_lambda: λ ≥ 0 of the penalty made here.
        penalty_mode: `separate` or `online` (None: the estimator's method's own).
        gamma: online decay in (0, 1].
        normalize: divide each task's Ω by its maximum.
        samples: training inputs used to estimate Ω (methods that need data).

    Example:
    ```python
    plugin = Consolidation(create_estimator("fisher"), ewc_lambda=100.0)
    manager = SequentialLearningManager(base, tasks, method=[plugin, "replay"])
    ```
    """

    family = "importance"
    log_names = ("penalty",)
    needs_boundaries = True
    boundary_use = "its importance is estimated and consolidated at the end of each task"

    def __init__(
        self,
        estimator: ImportanceEstimator | None,
        penalty: ConsolidationPenalty | None = None,
        ewc_lambda: float = 0.0,
        penalty_mode: str | None = None,
        gamma: float = 1.0,
        normalize: bool = False,
        samples: int = FISHER_SAMPLES.default,
    ) -> None:
        self.estimator = estimator
        self.penalty = penalty
        self.name = getattr(estimator, "name", "consolidation")
        self._settings = (float(ewc_lambda), penalty_mode, float(gamma), bool(normalize))
        self.samples = int(samples)
        if self.samples < 1:
            raise ValueError(f"fisher_samples must be an integer >= 1, got {samples}")
        self.needs_old_values = self.tracking is not None

    @property
    def tracking(self) -> ImportanceEstimator | None:
        """The estimator when it tracks every step, else None."""
        estimator = self.estimator
        return estimator if estimator is not None and estimator.tracks_steps else None

    # -- Python side -------------------------------------------------------------------------
    def variables(self) -> list:
        """The penalty's state and the step tracker's accumulators (what the in-graph hooks
        read and assign)."""
        out = [] if self.penalty is None else list(self.penalty.own_variables())
        if self.estimator is not None:
            out += list(self.estimator.own_variables())
        return out

    def build(self, run: Run) -> None:
        if self.estimator is not None:
            self.estimator.build(run.covered)
        if self.penalty is None:
            ewc_lambda, mode, gamma, normalize = self._settings
            if mode is None:
                from sequential_learning.importance import default_penalty_mode

                try:
                    mode = default_penalty_mode(self.name)
                except ValueError:  # an estimator of the user's own: a term per task
                    mode = "separate"
            self.penalty = ConsolidationPenalty(run.covered, ewc_lambda, mode, gamma, normalize)

    def before_training_exp(self, exp: Experience) -> None:
        if self.estimator is not None:
            self.estimator.begin_task(exp.run.covered)

    def after_training_exp(self, exp: Experience) -> None:
        run = exp.run
        x, y = exp.task.sample(self.samples, seed=run.seed + exp.index)
        context = TaskContext(
            task=exp.task, model=exp.model, variables=run.covered, x=x, y=y,
            seed=run.seed, task_index=exp.index,
        )
        # Under a tf.distribute strategy Ω is computed per replica and all-reduced.
        scope = run.strategy.scope() if run.strategy is not None else contextlib.nullcontext()
        with scope:
            importance = self.estimator.end_task(context)
        self.penalty.consolidate(
            importance, f"task {exp.index + 1} ({exp.task.name!r}), method {self.name}")
        exp.summary["importance"] = _summarise(importance, run.covered)
        if run.out_dir is not None:
            from sequential_learning.checkpoint import save_importance

            save_importance(run.out_dir, exp.index + 1, importance, run.covered)

    def state(self) -> dict[str, np.ndarray]:
        out = {}
        if self.penalty is not None:
            out.update({f"penalty.{k}": v for k, v in self.penalty.state().items()})
        if self.estimator is not None:
            out.update({f"estimator.{k}": np.asarray(v) for k, v in self.estimator.state().items()})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores the penalty's and the estimator's state (each checks its own keys).

        Raises:
            CheckpointError: naming this method, the key and what was expected.
        """
        if self.penalty is not None:
            try:
                self.penalty.load_state({k[len("penalty."):]: v for k, v in state.items()
                                         if k.startswith("penalty.")})
            except CheckpointError as error:
                raise CheckpointError(f"{self.name} {error}") from None
        if self.estimator is not None:
            self.estimator.load_state({k[len("estimator."):]: v for k, v in state.items()
                                       if k.startswith("estimator.")})

    def describe(self) -> dict:
        out = dict(self.estimator.describe()) if self.estimator is not None else {}
        if self.penalty is not None:
            out.update({"ewc_lambda": self.penalty.ewc_lambda, "penalty_mode": self.penalty.mode,
                        "gamma": self.penalty.gamma,
                        "normalize_importance": self.penalty.normalize})
        return out

    # -- in-graph ----------------------------------------------------------------------------
    def transform_gradients(self, step: Step, gradients: list) -> list:
        if self.penalty is None:
            return gradients
        indices = step.covered_indices
        value, summed = self.penalty.add_to_gradients(
            [gradients[i] for i in indices], step.analytic_share
        )
        gradients = list(gradients)
        for i, g in zip(indices, summed):
            gradients[i] = g
        step.log("penalty", value, counts=True)
        return gradients

    def after_update(self, step: Step) -> None:
        if self.tracking is not None:
            self.tracking.track_step(step.tracked_gradients(), step.old_values)


def _summarise(importance, variables) -> dict:
    out = {}
    for o, v in zip(importance, variables):
        a = np.asarray(ops.convert_to_numpy(o))
        out[getattr(v, "path", "?")] = {
            "mean": float(a.mean()),
            "max": float(a.max()),
            "zero_fraction": float(np.mean(a == 0)),
        }
    return out
