"""The plugin seam: hooks named for when they run, on the Python side and inside the train step.

A continual-learning method is one or more `Plugin`s. The manager loops over tasks and calls the
Python-side hooks; `ContinualTrainer.continual_step` calls the in-graph hooks inside the one
compiled step (they are traced once, so they use `keras.ops` and `keras.Variable`s only, never a
host sync, and run on every Keras backend). Avalanche's hook names, in the order they run:

* `build(run)`: once, before the first task, under the strategy's scope: create
  `keras.Variable`s (and `keras.random.SeedGenerator`s for random draws). Every variable the
  in-graph hooks read must be reachable from `variables()` (by default: the plugin's attributes),
  so that on JAX it is threaded through the stateless step.
* `before_training_exp(exp)`: before a task's training (reset per-task state, take a teacher).
* `adapt_dataset(dataset, exp)`: the task's training stream (e.g. the union of several tasks').
* in-graph, every step: `extra_losses(step)` inside the gradient tape (each returned value is
  logged under its own name and added to the loss that is differentiated);
  `transform_gradients(step, gradients)` after the backward pass (analytic penalty gradients,
  projections); `after_update(step)` after the optimizer update (trackers, buffer insertion).
* `after_training_epoch(exp, epoch, logs)`.
* `before_exp_evaluation(exp)`: after a task's last epoch, before every task is evaluated for
  the task's row of the accuracy matrix (a method that changes the model once its training is
  over, as BiC's bias correction, does it here).
* `after_training_exp(exp)`: after a task's training (importance, consolidation, buffer fill).
* `state()` / `load_state(state)`: NumPy arrays, checkpointed with the rest (no pickle).

What the in-graph hooks read from Python attributes is traced into the compiled step, and on JAX
one compiled step serves every task whose trainer has the same signature (the task-incremental
heads of one size: `sequential_learning.signature`): state that changes from task to task must
live in variables (`replay`'s task id is a `keras.Variable`, not a Python int).

Example:
```python
class CountSteps(Plugin):
    name = "count-steps"

    def build(self, run):
        self.steps = keras.Variable(0, dtype="int32", trainable=False)

    def after_update(self, step):
        self.steps.assign_add(1)

    def state(self):
        return {"steps": keras.ops.convert_to_numpy(self.steps)}

    def load_state(self, state):
        self.steps.assign(state["steps"])

manager = SequentialLearningManager(base, tasks, method=["fisher", CountSteps()])
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from sequential_learning import backend


@dataclass
class Run:
    """What a plugin may read when it is built: the whole stream and how it is trained.

    Attributes:
        tasks: every `SequentialTask`, in training order.
        covered: the variables a consolidation penalty covers (the shared base's).
        base_model: the shared base, or None.
        strategy: the `tf.distribute.Strategy` the run trains under.
        seed: the run's seed.
        out_dir: the run directory (None: nothing is written).
        shared_head: whether every task trains the same model (domain- and class-incremental
            streams); otherwise each task has its own head (task-incremental).
        task_type: `classification` or `regression` (from the tasks' losses).
        scenario: `task`, `domain` or `class` when known (None for hand-made task lists).
        boundaries: how task boundaries reach the plugins: `tasks` (announced: one experience
            per task), or `none` / `blurry` (a task-free stream: one experience for the whole
            stream, see `sequential_learning.online`).

    Example:
    ```python
    def check(self, run):
        if run.task_type != "classification":
            raise ValueError(f"{self.name}: needs a classification stream")
    ```
    """

    tasks: list
    covered: list
    base_model: keras.Model | None = None
    strategy: Any = None
    seed: int = 0
    out_dir: Path | None = None
    shared_head: bool = False
    task_type: str = "classification"
    scenario: str | None = None
    boundaries: str = "tasks"

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    @property
    def train_sizes(self) -> list[int]:
        """The number of training samples of each task (0 where a task streams a dataset)."""
        sizes = []
        for task in self.tasks:
            data = task.train_data
            sizes.append(len(data[0]) if isinstance(data, tuple | list) else 0)
        return sizes

    def require_arrays(self, who: str, why: str) -> None:
        """Raises ValueError when a task streams a dataset: `who` needs arrays `why`."""
        if not all(self.train_sizes):
            raise ValueError(f"{who} needs array training data ({why}); a task streams a "
                             "dataset")


@dataclass
class Experience:
    """One task of the stream, as the Python-side hooks see it.

    Attributes:
        index: the task's 0-based position in the stream.
        task: the `SequentialTask`.
        run: the `Run` (the whole stream).
        summary: what this task's hooks report; the manager records `summary["importance"]`
            in the results' importance summaries.
        matrices: rows of end-of-task matrices a plugin measures besides the accuracy matrix,
            `{name: one value per task}`; each becomes row `index` of `results.matrices[name]`
            and its ACC, BWT and forgetting are reported as `<prefix>_acc`, ... (the prefix is
            the name without `_accuracy`: `nme_accuracy` gives `nme_acc`).

    Example:
    ```python
    def after_training_exp(self, exp):
        exp.summary["my_plugin"] = {"task": exp.index + 1, "steps": int(self.steps)}
    ```
    """

    index: int
    task: Any
    run: Run
    summary: dict = field(default_factory=dict)
    matrices: dict = field(default_factory=dict)

    @property
    def model(self) -> keras.Model:
        return self.task.model


class Plugin:
    """Base class of continual-learning plugins; every hook does nothing by default.

    Class attributes a subclass may set:
        name: the plugin's name in logs and results (kebab case).
        log_names: the names of the values its in-graph hooks log (`step.log` /
            `extra_losses`); the trainer keeps a running mean of each.
        needs_old_values: `after_update` reads `step.old_values` (the covered variables'
            values before the optimizer update).
        family: `importance`, `replay`, `distillation`, `projection` or `reference` (at most
            one `importance` plugin per run; a `reference` one runs alone).
        task_types: the task types it serves (`classification`, `regression`).
        needs_boundaries: it learns at task boundaries (its `before_training_exp` /
            `after_training_exp` do the method's work: importance, a teacher, a memory fill),
            so a task-free stream (`boundaries` none or blurry), which announces none, refuses
            it; `boundary_use` says what it does there, for that message.
    """

    name: str = "plugin"
    log_names: tuple[str, ...] = ()
    needs_old_values: bool = False
    family: str = "other"
    task_types: tuple[str, ...] = ("classification", "regression")
    needs_boundaries: bool = False
    boundary_use: str = ""

    # -- Python side -------------------------------------------------------------------------
    def check(self, run: Run) -> None:
        """Raises ValueError (one line) if this plugin cannot serve `run`; called before build."""
        if run.task_type not in self.task_types:
            raise ValueError(
                f"{self.name}: needs a {' or '.join(self.task_types)} stream, this one is "
                f"{run.task_type}"
            )

    def build(self, run: Run) -> None:
        """Creates the plugin's `keras.Variable`s (called once, under the strategy's scope)."""

    def variables(self) -> list:
        """Every Keras variable the in-graph hooks read or assign (seed generators' states
        included): the trainer tracks them, so that on JAX they go in and out of the stateless
        step. Default: found among the plugin's attributes (see `find_variables`)."""
        return find_variables(vars(self))

    def routed_tasks(self, exp: Experience) -> int:
        """How many leading tasks' models this plugin's in-graph hooks send samples through.

        0 (the default) means only the training task's model. A replay plugin returns
        `exp.index + 1` (its buffer holds samples of the tasks so far), `joint` every task. With
        a head per task, the step then trains those heads too (each sample through its own).
        """
        return 0

    def routed_data(self, exp: Experience) -> bool:
        """Whether `adapt_dataset` gives batches `((x, task_ids), y)` (samples of several
        tasks with a head each, every sample trained through its own head)."""
        return False

    def before_training_exp(self, exp: Experience) -> None:
        """Called before a task's training starts."""

    def adapt_dataset(self, dataset: Any, exp: Experience) -> Any:
        """Returns the task's training stream (default: unchanged)."""
        return dataset

    def after_training_epoch(self, exp: Experience, epoch: int, logs: dict) -> None:
        """Called after each training epoch (and after every task has been evaluated)."""

    def before_exp_evaluation(self, exp: Experience) -> None:
        """Called once after a task's last training epoch, before that epoch's evaluation of
        every task (the task's row of the accuracy matrix)."""

    def after_training_exp(self, exp: Experience) -> None:
        """Called after a task's training and its row of the accuracy matrix."""

    def state(self) -> dict[str, np.ndarray]:
        """The plugin's state as NumPy arrays (for checkpoints)."""
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores what `state` returned."""

    def describe(self) -> dict:
        """Settings recorded in every result."""
        return {}

    # -- in-graph (traced once inside the compiled train step) -------------------------------
    def extra_losses(self, step: Step) -> dict[str, Any]:
        """Loss terms added inside the gradient tape, `{name: scalar}`, in the units of the task
        loss: a replica's share (a mean divided by the replicas in sync, as `step.loss` gives)."""
        return {}

    def transform_gradients(self, step: Step, gradients: list) -> list:
        """Returns the gradients of `step.variables` to apply (default: unchanged)."""
        return gradients

    def after_update(self, step: Step) -> None:
        """Called after the optimizer update."""


class Step:
    """What the in-graph hooks see of one training step (symbolic tensors, built at trace time).

    The trainer makes one per traced step; plugins only read it (and `log` / `carry`).

    Args:
        trainer: the `ContinualTrainer` running the step.
        x: the batch's inputs.
        y: the batch's labels.
        sample_weight: the batch's sample weights, or None.
        y_pred: the task model's outputs on `x` (training mode).
        task_loss: the task's loss on the batch.

    Example:
    ```python
    def extra_losses(self, step):
        return {"logit_loss": 0.01 * ops.mean(ops.square(step.y_pred))}
    ```

    Attributes:
        x, y, sample_weight: the batch (the task's own inputs and labels).
        y_pred: the task model's outputs on `x` (training mode).
        task_loss: the task's loss on the batch (a per-replica share, as Keras computes it).
        model: the training task's model.
        variables: the variables the step trains (the task model's, then those of other
            tasks' heads that routed samples reach).
        covered_indices: positions in `variables` of the covered variables, in covered order.
        gradients: the differentiated loss's gradients (set after the backward pass, before
            any `transform_gradients`; scaled by the loss scale).
        old_values: the covered variables' values before the update (when a plugin asked).
        replicas: replicas in sync.
        loss_scale: the optimizer's loss scale (a tensor; 1 without one).
        analytic_share: the factor on an analytic gradient added to `gradients` so that it is
            scaled like the task's (loss scale / replicas; the Python float 1.0 when both are 1).
        carried: what `extra_losses` handed on with `carry` (on JAX the differentiated
            function's tensors cannot be kept any other way).
    """

    def __init__(self, trainer, x, y, sample_weight, y_pred, task_loss) -> None:
        self.trainer = trainer
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.y_pred = y_pred
        self.task_loss = task_loss
        self.model = trainer.task_model
        self.variables = trainer.trained_variables
        self.covered_indices = trainer.covered_indices
        self.replicas = backend.replicas()
        self.loss_scale = trainer.optimizer.scale_loss(ops.convert_to_tensor(1.0))
        self.analytic_share: Any = 1.0
        if (isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
                or self.replicas != 1):
            self.analytic_share = self.loss_scale / self.replicas
        self.gradients: list | None = None
        self.old_values: list | None = None
        self.logged: dict[str, Any] = {}
        self.added: list[Any] = []
        self.carried: dict[str, Any] = {}

    @property
    def batch_size(self) -> Any:
        return ops.shape(keras.tree.flatten(self.x)[0])[0]

    def log(self, name: str, value: Any, counts: bool = False) -> None:
        """Logs `value` under `name` (declared in the plugin's `log_names`).

        Args:
            name: the log's name.
            value: a scalar.
            counts: the value is a loss term whose gradient a plugin added analytically (the
                consolidation penalty): it is also added to the logged total `loss`.
        """
        self.logged[name] = value
        if counts:
            self.added.append(value)

    def carry(self, name: str, value: Any) -> None:
        """Hands a tensor made in `extra_losses` on to the later hooks (`step.carried[name]`).

        Inside the differentiated function (`extra_losses`) tensors must leave through the
        step's outputs: on JAX anything kept otherwise is a leaked tracer.
        """
        self.carried[name] = value

    def tracked_gradients(self) -> list:
        """The covered variables' gradients of the differentiated loss (the task loss plus the
        plugins' `extra_losses`, without analytic terms such as the consolidation penalty and
        before any `transform_gradients`), unscaled and summed over replicas' shares: what
        per-step importance trackers (SI's ω) accumulate."""
        factor = self.replicas / self.loss_scale
        return [self.gradients[i] * factor for i in self.covered_indices]

    # -- routing: samples of earlier tasks through their own task's model --------------------
    def outputs(self, x, task_ids=None, training: bool = True) -> Any:
        """Each sample's outputs from its own task's model (`task_ids`: int32, one per sample).

        With one model for all tasks (a shared head) the ids are not needed; with a head per
        task each sample's outputs come from its own task's head.
        """
        return self.trainer.router.outputs(x, task_ids, training)

    def loss(self, x, y, task_ids=None, sample_weight=None, training: bool = True,
             outputs=None) -> Any:
        """The mean per-sample loss of a batch, each sample through its own task's model and
        loss (a per-replica mean, like the task loss; `outputs` reuses outputs already made)."""
        return self.trainer.router.loss(x, y, task_ids, sample_weight, training, outputs)


def find_variables(objects: Any, depth: int = 3) -> list:
    """The Keras variables in `objects` (attributes, lists, dicts, seed generators' states,
    objects with a `variables` list), each once, in the order found.

    Args:
        objects: a plugin's `vars(self)`, a list, a variable ...
        depth: how deep to look into containers and objects.

    Returns:
        A list of `keras.Variable`s.

    Example:
    ```python
    find_variables({"draws": keras.random.SeedGenerator(0), "n": keras.Variable(0)})
    ```
    """
    found: dict[int, Any] = {}

    def visit(obj, level):
        if isinstance(obj, keras.Variable):
            found.setdefault(id(obj), obj)
        elif isinstance(obj, keras.random.SeedGenerator):
            found.setdefault(id(obj.state), obj.state)
        elif level <= 0 or isinstance(obj, str | bytes | int | float | np.ndarray | keras.Model):
            return
        elif isinstance(obj, dict):
            for value in obj.values():
                visit(value, level - 1)
        elif isinstance(obj, list | tuple):
            for value in obj:
                visit(value, level - 1)
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            visit(vars(obj), level - 1)

    visit(objects, depth)
    return list(found.values())


def per_sample_loss(loss, y, y_pred) -> Any:
    """The unreduced loss of each sample (a Keras `Loss` object, a loss name or a function).

    Args:
        loss: a `keras.losses.Loss`, a Keras loss name (`"sparse_categorical_crossentropy"`) or a
            function `(y, y_pred) -> per-sample values`.
        y: the labels.
        y_pred: the model's outputs.

    Returns:
        One loss value per sample, `[N]`.

    Example:
    ```python
    values = per_sample_loss(task.loss, step.y, step.y_pred)
    ```
    """
    if isinstance(loss, keras.losses.Loss):
        values = loss.call(y, y_pred)
    else:
        values = keras.losses.get(loss)(y, y_pred)
    values = ops.convert_to_tensor(values)
    if len(values.shape) > 1:
        values = ops.mean(values, axis=list(range(1, len(values.shape))))
    return values


def replica_share(value: Any) -> Any:
    """`value` divided by the replicas in sync (unchanged on one): a mean's share, so that
    summing the replicas' gradients gives the global mean's, as Keras scales its losses.

    Args:
        value: a per-replica mean (a scalar tensor).

    Returns:
        `value / replicas`.

    Example:
    ```python
    return {"my_loss": replica_share(ops.mean(values))}
    ```
    """
    replicas = backend.replicas()
    return value / float(replicas) if replicas != 1 else value


def mean_over_batch(values: Any, weights: Any | None = None) -> Any:
    """Σ w·v / batch size (Keras's `sum_over_batch_size`), 0 for an empty batch.

    Args:
        values: one value per sample, `[N]`.
        weights: optional sample weights, `[N]` (None: all ones).

    Returns:
        A scalar tensor.

    Example:
    ```python
    mean_over_batch(ops.array([1.0, 3.0]), ops.array([1.0, 0.0]))   # 0.5
    ```
    """
    values = ops.cast(values, "float32")
    if weights is not None:
        values = values * ops.cast(weights, "float32")
    count = ops.cast(ops.shape(values)[0], "float32")
    return ops.divide_no_nan(ops.sum(values), count)


def check_combination(plugins: Sequence[Plugin]) -> None:
    """Raises ValueError unless the plugins can run together (one line, naming them).

    Each plugin at most once, at most one weight-importance method, and a reference point
    (`joint`, `cumulative`) alone.

    Args:
        plugins: the plugins of a run.

    Returns:
        None.

    Raises:
        ValueError: naming the plugins that cannot be combined.

    Example:
    ```python
    check_combination(make_plugins("fisher+replay"))   # fine; "fisher+mas" raises
    ```
    """
    from sequential_learning.plugins.registry import check_families

    check_families([(p.name, p.family) for p in plugins])

