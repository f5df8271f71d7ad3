"""The compiled train step: the task loss, the plugins' in-graph hooks, one optimizer update.

`ContinualTrainer` wraps one task's model and overrides Keras's `train_step`, so `fit` (and any
`tf.distribute` strategy under it) drives it. Inside the one compiled step:

1. the task loss and, inside the same gradient tape, every plugin's `extra_losses` (replay,
   distillation, ...); one backward pass;
2. every plugin's `transform_gradients`: the EWC family adds its penalty's *analytic* gradient
   λ Ω (θ − θ̄) to the covered variables' gradients (no second backward pass, and the loss's own
   gradients stay available for trackers); A-GEM projects;
3. the optimizer update;
4. every plugin's `after_update`: importance trackers (synaptic intelligence, sign flips, ...)
   and buffer insertion, on `keras.Variable`s.

No Python callback runs per batch. The step (`continual_step`) is written once in `keras.ops`;
`train_step` hands it to the backend's module (`sequential_learning.backend`), which takes the
gradients and, on JAX, threads every variable through the stateless step.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from sequential_learning import backend
from sequential_learning.class_incremental import ActiveClasses
from sequential_learning.importance.base import ImportanceEstimator
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.plugins.base import Plugin, Step, replica_share
from sequential_learning.plugins.routing import Router
from sequential_learning.signature import CompiledSteps, train_step_signature


class ContinualTrainer(keras.Model):
    """Trains `model` on its task loss with the plugins' in-graph hooks.

    Args:
        model: the task model (shared base + this task's head).
        penalty: a consolidation penalty (zero while nothing is consolidated), or None; with
            `estimator`, shorthand for a `Consolidation` plugin's in-graph part.
        estimator: an importance estimator whose `track_step` runs every step, or None.
        covered: the variables a penalty and trackers cover (a subset of the trained ones).
        plugins: `Plugin`s whose in-graph hooks run in the step, in this order.
        routes: the tasks whose models routed samples go through (task id k is `routes[k]`);
            their trainable variables are trained too. Default: this model alone.
        routed_data: the training batches are `((x, task_ids), y)` (every sample through its
            own task's model: joint training over tasks with a head each).

    Reports the metrics `loss` (everything the step minimises), `base_loss` (the task loss
    alone), one running mean per plugin log (`penalty`, `replay_loss`, ...) and the compiled
    metrics.

    Example:
    ```python
    trainer = ContinualTrainer(task_model, penalty, estimator, base.trainable_variables)
    trainer.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    trainer.fit(x, y, epochs=2)
    ```
    """

    def __init__(
        self,
        model: keras.Model,
        penalty: ConsolidationPenalty | None = None,
        estimator: ImportanceEstimator | None = None,
        covered: Sequence | None = None,
        plugins: Sequence[Plugin] = (),
        routes: Sequence | None = None,
        routed_data: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(name=f"{model.name}_trainer", **kwargs)
        self.task_model = model
        plugins = list(plugins)
        if penalty is not None or (estimator is not None and estimator.tracks_steps):
            from sequential_learning.plugins.consolidation import Consolidation

            plugins.insert(0, Consolidation(estimator, penalty))
        self.plugins = plugins
        self.covered = list(covered or [])
        self.routed_data = bool(routed_data)
        # Step (within the epoch, from 0) of the first non-finite loss, -1 while all are finite;
        # checked once per epoch, so the hot path has no host sync.
        self.nonfinite_step = keras.Variable(-1, dtype="int32", trainable=False,
                                             name="nonfinite_step")
        self.epoch_step = keras.Variable(0, dtype="int32", trainable=False, name="epoch_step")
        self._multi_worker = False
        if backend.is_tensorflow():
            import tensorflow as tf

            self._multi_worker = isinstance(
                tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy
            )
        self.sample_batch = None  # a non-distributed (x, y) batch; see _maybe_symbolic_build
        self.base_loss_tracker = keras.metrics.Mean(name="base_loss")
        names = []
        for plugin in self.plugins:
            names += [n for n in plugin.log_names if n not in names]
        self.plugin_trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self._router_tasks = list(routes) if routes else None
        self.router: Router | None = None
        trained = list(model.trainable_variables)
        seen = {id(v) for v in trained}
        for task in self._router_tasks or []:
            for v in task.model.trainable_variables:
                if id(v) not in seen:
                    seen.add(id(v))
                    trained.append(v)
        self.trained_variables = trained
        position = {id(v): i for i, v in enumerate(trained)}
        missing = [getattr(v, "path", "?") for v in self.covered if id(v) not in position]
        if missing:
            raise ValueError(
                f"Covered variables {missing} are not trainable variables of model {model.name!r}"
            )
        # Positions of the covered variables in the trained ones, fixed at trace time.
        self.covered_indices = [position[id(v)] for v in self.covered]
        self.needs_old_values = any(p.needs_old_values for p in self.plugins)
        # Tracked, so that they are this model's variables: on JAX every variable the step reads
        # must go in and out of the stateless step (a variable left out would be compiled in as
        # a constant). The routed tasks' heads are trained, the plugins' state is not.
        self.route_models = [t.model for t in self._router_tasks or []]
        self.plugin_variables = []
        # The run's compiled train steps by signature (JAX): set by the manager's TrainerCache.
        self.shared_steps: CompiledSteps | None = None
        if all(getattr(p, "built", True) for p in self.plugins):
            self.track_plugin_variables()

    def track_plugin_variables(self) -> None:
        """Tracks the built plugins' variables as this model's (before Keras builds the train
        function): on JAX they then go in and out of the stateless step with the weights."""
        own = {id(v) for v in self.trained_variables}
        self.plugin_variables = [v for p in self.plugins for v in p.variables()
                                 if id(v) not in own]

    def compile(self, *args, **kwargs) -> None:
        """Keras's `compile`, then tracks the variables the compiled loss reads.

        A class-incremental stream's loss reads the stream's masks (`ActiveClasses`); on JAX a
        variable the step reads but does not track is compiled in as a constant, so a later
        task's masks would never reach the step. The masks are usually tracked already through
        the masked-accuracy metrics; with other metrics they are tracked here.
        """
        super().compile(*args, **kwargs)
        given = inspect.signature(keras.Model.compile).bind_partial(self, *args, **kwargs)
        metrics = [given.arguments.get(k) or [] for k in ("metrics", "weighted_metrics")]
        tracked = {id(v) for v in [*self.trained_variables, *self.plugin_variables]}
        for metric in keras.tree.flatten(metrics):
            if isinstance(metric, keras.metrics.Metric):
                tracked.update(id(v) for v in metric.variables)
        self.loss_variables = [v for v in loss_variables(self.loss) if id(v) not in tracked]

    @property
    def penalty(self) -> ConsolidationPenalty | None:
        """The first consolidation plugin's penalty, or None."""
        return next((p.penalty for p in self.plugins if getattr(p, "penalty", None) is not None),
                    None)

    @property
    def estimator(self) -> ImportanceEstimator | None:
        """The first consolidation plugin's estimator that tracks steps, or None."""
        return next((p.tracking for p in self.plugins if getattr(p, "tracking", None) is not None),
                    None)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds a model made under a strategy from the first *distributed* batch,
        # reduced across replicas, which fails under MultiWorkerMirroredStrategy; a plain batch
        # of the task's data (`sample_batch`) builds the same thing.
        if data_batch is None and self.sample_batch is not None:
            return super()._maybe_symbolic_build(data_batch=self.sample_batch)
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def reset_epoch_step(self) -> None:
        """Restarts the within-epoch step counter (called by the manager's callback)."""
        self.epoch_step.assign(0)

    def call(self, inputs, training=None):
        if self.routed_data:
            inputs, task_ids = inputs
            return self._get_router().outputs(inputs, task_ids, training=training)
        return self.task_model(inputs, training=training)

    def _get_router(self) -> Router:
        """The router of routed samples (made on first use, when the loss is compiled)."""
        if self.router is None:
            self.router = Router(self._router_tasks or [_ModelOnly(self.task_model, self.loss)])
        return self.router

    def make_train_function(self, force: bool = False):
        if self.train_function is not None and not force:
            return self.train_function
        # JAX: one compilation per step signature in a run (`shared_steps`, given by the
        # manager's `TrainerCache`), many steps per compiled call on an accelerator (a scan);
        # elsewhere Keras's own.
        make = getattr(backend.ops(), "make_train_function", None)
        shared = None
        if make is not None and self.shared_steps is not None:
            shared = (self.shared_steps.by_signature, train_step_signature(self))
        made = None if make is None else make(self, shared)
        if made is None:
            return super().make_train_function(force)
        self.train_function = made
        return made

    def train_step(self, *args):
        # Keras's signature differs per backend (JAX: `(state, data)`); the backend module runs
        # `continual_step` in its terms.
        return backend.ops().train_step(self, *args)

    def continual_step(self, data) -> dict:
        """One training step in `keras.ops`: the loss, the plugins' hooks, one update.

        Args:
            data: one batch, `(x, y)` or `(x, y, sample_weight)`.

        Returns:
            The step's logs.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        trainable = self.trained_variables
        self._get_router()
        replicas = backend.replicas()
        kept = {}

        def forward():
            inputs = x
            if self.routed_data:
                inputs, task_ids = x
                y_pred = self.router.outputs(inputs, task_ids, training=True)
                loss = self.router.loss(inputs, y, task_ids, sample_weight, outputs=y_pred)
                if self.task_model.losses:
                    loss = loss + replica_share(_add_n(self.task_model.losses))
            else:
                y_pred = self.task_model(x, training=True)
                # Already divided by the number of replicas under a distribution strategy.
                loss = self._compute_loss(
                    x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
                )
            step = Step(self, inputs, y, sample_weight, y_pred, loss)
            kept["step"] = step
            extras = {}
            for plugin in self.plugins:
                extras.update(plugin.extra_losses(step))
            differentiated = loss
            if extras:
                differentiated = loss + _add_n(list(extras.values()))
            aux = {"y_pred": y_pred, "loss": loss, "extras": extras, "logged": step.logged,
                   "added": step.added, "carried": step.carried}
            return self.optimizer.scale_loss(differentiated), aux

        ops_module = backend.ops()
        _, aux, gradients = ops_module.value_and_grad(forward, trainable)
        step = kept["step"]
        # The differentiated function's tensors, as it returned them (on JAX its own are
        # tracers of the gradient's trace).
        y_pred, loss, extras = aux["y_pred"], aux["loss"], dict(aux["extras"])
        step.y_pred, step.task_loss = y_pred, loss
        step.logged, step.added = dict(aux["logged"]), list(aux["added"])
        step.carried = dict(aux["carried"])
        x = step.x
        step.gradients = list(gradients)
        task_loss = loss * replicas
        for plugin in self.plugins:
            # No branch on whether anything is consolidated yet: before the first task's Ω
            # is folded in, √(λΩ) is 0, so the penalty is 0 and the gradients are unchanged,
            # and one compiled step serves every task (a `cond` cost more, measured).
            gradients = plugin.transform_gradients(step, gradients)
        if self.needs_old_values:
            step.old_values = [ops.copy(ops.convert_to_tensor(v)) for v in self.covered]
        # Extra losses are replicas' shares, like `loss`: logged and totalled whole.
        extras = {name: value * replicas if replicas != 1 else value
                  for name, value in extras.items()}
        total = task_loss
        for value in [*extras.values(), *step.added]:
            total = total + value
        first_bad = ops.logical_and(
            ops.logical_not(ops.isfinite(total)), self.nonfinite_step.value < 0
        )
        self.nonfinite_step.assign(
            ops.where(first_bad, self.epoch_step.value, self.nonfinite_step.value))
        self.epoch_step.assign(self.epoch_step + 1)
        ops_module.apply_gradients(self.optimizer, gradients, trainable)
        with ops_module.no_grad():
            for plugin in self.plugins:
                plugin.after_update(step)
        batch = step.batch_size
        self.base_loss_tracker.update_state(task_loss, sample_weight=batch)
        logged = {**extras, **step.logged}
        for name, value in logged.items():
            if name not in self.plugin_trackers:
                raise ValueError(f"a plugin logged {name!r}, which no plugin declares in "
                                 "log_names")
            self.plugin_trackers[name].update_state(value, sample_weight=batch)
        self._loss_tracker.update_state(total, sample_weight=batch)
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        if self._multi_worker:
            # Keras reduces each log across workers with a MEAN over axis 0, which a scalar
            # lacks: give each log that axis (the reduction then returns the scalar).
            logs = {k: ops.reshape(v, [1]) for k, v in logs.items()}
        return logs


def loss_variables(loss: Any) -> list:
    """The Keras variables a compiled loss reads: its own, and its `ActiveClasses`' masks.

    Args:
        loss: what `compile` was given as the loss (a `keras.losses.Loss`, a name, or a
            structure of them).

    Returns:
        A list of `keras.Variable`s (empty for a plain loss).

    Example:
    ```python
    loss_variables(MaskedSparseCategoricalCrossentropy(active))   # [active.active, ...]
    ```
    """
    found: dict[int, Any] = {}
    for fn in keras.tree.flatten(loss) if loss is not None else []:
        if not isinstance(fn, keras.losses.Loss):
            continue
        for value in vars(fn).values():
            if isinstance(value, ActiveClasses):
                candidates = value.variables()
            else:
                candidates = [value] if isinstance(value, keras.Variable) else []
            for v in candidates:
                found.setdefault(id(v), v)
    return list(found.values())


def _add_n(values: list):
    """The sum of a list of tensors, in order."""
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


class _ModelOnly:
    """A model and its loss standing in for a task (a trainer used without the manager)."""

    def __init__(self, model, loss) -> None:
        self.model = model
        self.loss = loss


#: The name this class had while it only ran the EWC family's penalty.
ConsolidationTrainer = ContinualTrainer
