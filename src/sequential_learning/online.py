"""Online and task-free runs: one pass over the stream, evaluation points along it, and task
boundaries announced, hidden or blurred (the manager's side; the stream's order is
`sequential_learning.data.blurry`).

`OnlineStream` is what `SequentialLearningManager(..., online=True)` adds:

* **one pass**: every task trains one epoch (the command line also makes the batch size 10
  unless one is given, as the online papers: ER, MIR, ER-ACE); a method that changes a task's
  training stream (`adapt_dataset`: joint, cumulative) is refused;
* **evaluation points**: every task is evaluated after every `eval_every_samples` samples of
  each task's part of the stream (by default about ten points per task) and at its end. The
  points come from a Keras callback's `on_train_batch_begin`, which only counts batches in
  Python: no host sync in the steps between points, nothing retraced (the evaluation is each
  task's compiled one). On JAX the callback syncs the trainer's state first
  (`jax_state_sync`, as Keras's own callbacks that read weights do); the trainer's metric
  variables (which a class-incremental stream's metrics share with the task models) are put
  back after the evaluation, so the epoch's training logs are unchanged. The steps per compiled
  call are cut to a divisor of the interval (in batches), so that every point ends a call.
  The curve (`Results.stream_curve`: samples seen, each task's metric, the mean over the tasks
  seen so far and over all) goes to `results.json` and `stream_curve.png`. Measured (online
  DER++ on class-incremental split Fashion-MNIST, TensorFlow, on a shared 2-core machine): 51
  points or only the 6 at the tasks' ends give the same ACC to the last digit, the same two
  traces of the evaluation, and training times within the machine's noise (32-40 s against
  43-48 s); the 51 evaluations of 5 x 2000 validation samples take 8-10 s;
* **boundaries** (`tasks`, `none`, `blurry`): with `tasks` each task is an experience, as
  offline. With `none` or `blurry` the stream is **task-free**: the methods see one experience
  (index 0; `before_training_exp` before the first sample, `after_training_exp` and
  `after_training_epoch` after the last), one trainer and one optimizer state for the whole
  stream (never reset at a hidden boundary). The evaluation still uses every task's
  validation set, and row k of the accuracy matrix is measured where task k's samples end
  (`StreamPlan.segments`), so ACC, BWT and forgetting mean what they mean offline. `none` is
  Avalanche's online stream without access to task boundaries (`split_online_stream` with
  `access_task_boundaries=False`); `blurry` blends neighbouring tasks (a smooth drift, not
  Mammoth's MNIST-360, which rotates digits).

Methods whose learning happens at a task boundary declare it (`Plugin.needs_boundaries`: the
EWC family's importance and consolidation, LwF's teacher, A-GEM's memory fill, `replay`'s
balanced policy, joint and cumulative) and are refused in a task-free stream with one line
naming the method and why. None of them runs its boundary hook at fixed intervals instead:
that is not the published form of any of them (Aljundi et al. 2019's task-free MAS decides
when to consolidate from loss plateaus, which is not implemented here). Methods that learn in
their step (`replay` with its reservoir, `derpp`) run task-free.

Class-incremental task-free streams train without masking unseen classes (the configuration's
`class_masking` is turned off for them): the head covers every class from the first sample, as
Mammoth's general-continual setting and Avalanche's online scenarios with a fixed head do.
Masking "the classes seen so far" would need the mask updated inside the step before the loss,
per sample, which Mammoth does not do either. (Tasks built with masks keep them all off in a
task-free stream: the manager never calls `ActiveClasses.begin_task` there.)

Resume: a task-free run is checkpointed at the end of every task's segment, with the optimizer's
state (`OptimizerState`) beside the plugins'; the stream's order depends only on the seed, so a
resumed run continues from the next segment with the same numbers. The curve's points after the
checkpoint are dropped and measured again.

Example:
```python
manager = SequentialLearningManager(base, tasks, method="derpp", epochs=1, online=True,
                                    boundaries="blurry", method_options={"memory": 500})
results = manager.train_all()
results.stream_curve["samples"][:3], results.stream_curve["mean_seen"][:3]
```
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from sequential_learning import backend
from sequential_learning import services as services_module
from sequential_learning.data.blurry import (
    BOUNDARIES,
    StreamPlan,
    aligned_steps,
    default_eval_every,
)
from sequential_learning.evaluation import PeriodicEvaluation, evaluate_all
from sequential_learning.pipeline import ArrayBatches
from sequential_learning.plugins.base import Experience, Plugin
from sequential_learning.services import EpochHooks

#: What `Results.stream_curve` holds per evaluation point.
POINT_KEYS = ("samples", "segment", "tasks_seen", "values", "mean_seen", "mean_all")
#: The services that call the plugins' hooks after an epoch (task-free: once, at the end).
PLUGIN_HOOK_SERVICES = ("PluginEpochHooks", "PluginTaskEnd")

__all__ = ["AtStreamEnd", "EvaluationPoints", "OnlineStream", "OptimizerState", "StreamCurve",
           "check_plugins", "online_stream", "ordered_batches"]


def online_stream(tasks: Sequence, epochs: Sequence[int], seed: int = 0, online: bool = False,
                  boundaries: str = "tasks", eval_every_samples: int | None = None,
                  blur_window: int | None = None,
                  shared_head: bool = True) -> OnlineStream | None:
    """The manager's `OnlineStream`, or None for an offline run (its settings checked).

    Args:
        tasks: the run's `SequentialTask`s.
        epochs: each task's epochs.
        seed: the run's seed.
        online: stream every sample once, with evaluation points along the stream.
        boundaries: `tasks`, `none` or `blurry` (`none` and `blurry` need `online`).
        eval_every_samples: the evaluation points' interval (online only; None: the default).
        blur_window: a blurry stream's window (blurry only; None: the default).
        shared_head: whether every task trains one model.

    Returns:
        An `OnlineStream`, or None when `online` is false.

    Raises:
        ValueError: (one line) for a setting that does not apply or is not allowed.

    Example:
    ```python
    online_stream(tasks, [1] * len(tasks), online=True, boundaries="none")
    ```
    """
    if boundaries not in BOUNDARIES:
        raise ValueError(f"boundaries: {boundaries!r} is not allowed; expected one of "
                         f"{', '.join(BOUNDARIES)}")
    if not online:
        if boundaries != "tasks":
            raise ValueError(f"boundaries: {boundaries} needs online (a task-free stream is one "
                             "pass over the data, evaluated along it)")
        if eval_every_samples is not None:
            raise ValueError("eval_every_samples: applies to online runs only (offline ones are "
                             "evaluated after epochs: eval_every)")
        if blur_window is not None:
            raise ValueError("blur_window: applies to boundaries blurry only")
        return None
    return OnlineStream(tasks, epochs, seed, boundaries, eval_every_samples, blur_window,
                        shared_head)


def check_plugins(plugins: Sequence[Plugin], boundaries: str, online: bool = True) -> None:
    """Refuses (one line) the plugins that cannot learn from this stream.

    Args:
        plugins: the run's plugins.
        boundaries: `tasks`, `none` or `blurry`.
        online: whether every sample is streamed once.

    Returns:
        None.

    Raises:
        ValueError: a plugin needs task boundaries (`Plugin.needs_boundaries`) and the stream
            is task-free, or it changes a task's training stream in an online run.

    Example:
    ```python
    check_plugins(make_plugins("derpp"), "blurry")     # fine; "fisher" raises
    ```
    """
    for plugin in plugins:
        if boundaries != "tasks" and getattr(plugin, "needs_boundaries", False):
            use = getattr(plugin, "boundary_use", "") or "its after_training_exp hook runs at " \
                "the end of each task"
            raise ValueError(f"{plugin.name}: needs task boundaries ({use}), which a task-free "
                             f"stream (boundaries {boundaries}) does not announce; use a method "
                             "that learns in its step (replay, derpp) or boundaries tasks")
        if online and type(plugin).adapt_dataset is not Plugin.adapt_dataset:
            raise ValueError(f"{plugin.name}: changes each task's training stream "
                             "(adapt_dataset), which an online run streams once as it comes; "
                             "run it without --online")


def ordered_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
    """Arrays as batches in their own order (no shuffle): a blurry stream's segment.

    Args:
        x: inputs (cast to float32).
        y: labels or targets.
        batch_size: the batch size (the last batch may be smaller).

    Returns:
        A `tf.data.Dataset` on TensorFlow, a `pipeline.ArrayBatches` in order elsewhere.

    Example:
    ```python
    batches = ordered_batches(x, y, 10)
    ```
    """
    if not backend.is_tensorflow():
        return _InOrder(x, y, batch_size)
    import tensorflow as tf

    xs = tf.constant(np.asarray(x, np.float32))
    ys = tf.constant(np.asarray(y))
    ds = tf.data.Dataset.range(int(xs.shape[0])).batch(int(batch_size))
    ds = ds.map(lambda index: (tf.gather(xs, index), tf.gather(ys, index)),
                num_parallel_calls=2, deterministic=True)
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(2).with_options(options)


class _InOrder(ArrayBatches):
    """`ArrayBatches` in the arrays' own order, the same every epoch."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        super().__init__(x, y, batch_size, seed=0)
        self._order = np.arange(len(self.x))

    def on_epoch_end(self) -> None:
        """Keeps the order."""


class OnlineStream:
    """An online run's stream: its plan, its curve and, task-free, its training loop.

    Args:
        tasks: the run's `SequentialTask`s (array training data).
        epochs: each task's epochs (all must be 1).
        seed: the run's seed (a blurry stream's draws).
        boundaries: `tasks`, `none` or `blurry` (see `sequential_learning.data.blurry`).
        eval_every_samples: evaluate every task after every this many samples of each task's
            part of the stream (None: `data.blurry.default_eval_every`, about ten points).
        blur_window: a blurry stream's window (None: a fifth of the smallest task).
        shared_head: whether every task trains one model (a task-free stream needs it).

    Example:
    ```python
    stream = OnlineStream(tasks, [1] * len(tasks), seed=0, boundaries="none")
    stream.plan.segments
    ```
    """

    def __init__(self, tasks: Sequence, epochs: Sequence[int], seed: int = 0,
                 boundaries: str = "tasks", eval_every_samples: int | None = None,
                 blur_window: int | None = None, shared_head: bool = True) -> None:
        if boundaries not in BOUNDARIES:
            raise ValueError(f"boundaries: {boundaries!r} is not allowed; expected one of "
                             f"{', '.join(BOUNDARIES)}")
        if any(int(e) != 1 for e in epochs):
            raise ValueError(f"epochs: {list(epochs)} is not allowed with online: true; an "
                             "online run is one pass over each task's data (epochs 1)")
        if boundaries != "tasks" and not shared_head:
            raise ValueError(f"boundaries: {boundaries} needs one head for every task (scenario "
                             "domain or class): a task-free stream gives no task id to choose a "
                             "head with")
        if boundaries != "blurry" and blur_window is not None:
            raise ValueError(f"blur_window: applies to boundaries blurry only (this stream has "
                             f"boundaries {boundaries})")
        sizes = []
        for task in tasks:
            data = task.train_data
            if not isinstance(data, tuple | list):
                raise ValueError(f"online: needs array training data (it counts the samples "
                                 f"seen); task {task.name!r} streams a dataset")
            sizes.append(len(data[0]))
        self.tasks = list(tasks)
        batch = self.tasks[0].batch_size
        every = default_eval_every(sizes, batch) if eval_every_samples is None \
            else eval_every_samples
        self.plan = StreamPlan(sizes, boundaries, every, blur_window, seed)
        self.boundaries = boundaries
        for task in self.tasks:
            task.steps_per_execution = aligned_steps(task.steps_per_execution, self.plan.every,
                                                     task.batch_size)
        self.curve = StreamCurve(self)
        self.state = OptimizerState(self)
        self.experience: Experience | None = None
        self.trainer = None

    @property
    def task_free(self) -> bool:
        """Whether the methods see one experience (boundaries `none` or `blurry`)."""
        return self.boundaries != "tasks"

    def describe(self) -> dict:
        """The stream's settings for the run's config (resolved values)."""
        return {"online": True, "boundaries": self.boundaries,
                "eval_every_samples": self.plan.every, "blur_window": self.plan.blur_window}

    def adapt_services(self, services: Sequence) -> list:
        """The manager's services with this stream's: the curve right after the periodic
        evaluation (it records the end of each segment from it), and, task-free, the services
        that call the plugins' hooks after an epoch (`PluginEpochHooks`, `PluginTaskEnd`) run
        once, after the stream's last sample (`AtStreamEnd`).

        Args:
            services: the manager's services, in order.

        Returns:
            The new list.
        """
        hooks = tuple(getattr(services_module, name) for name in PLUGIN_HOOK_SERVICES
                      if hasattr(services_module, name))
        out = []
        for service in services:
            out.append(AtStreamEnd(self, service) if self.task_free
                       and isinstance(service, hooks) else service)
            if isinstance(service, PeriodicEvaluation):
                out.append(self.curve)
        if self.curve not in out:
            out.insert(0, self.curve)
        return out

    def checkpointed(self, plugins: Sequence) -> list:
        """What a checkpoint saves: the plugins, and a task-free stream's optimizer state."""
        return [*plugins, self.state] if self.task_free else list(plugins)

    # -- the task-free loop ----------------------------------------------------------------
    def train(self, manager: Any, first: int) -> None:
        """Trains the task-free stream from segment `first` (a resumed run's next one).

        Args:
            manager: the `SequentialLearningManager`.
            first: the first segment to train (0, or the finished ones of a resumed run).
        """
        self.experience = Experience(0, manager.tasks[0], manager.run)
        with manager.strategy.scope():
            for plugin in manager.plugins:
                plugin.before_training_exp(self.experience)
        for k in range(first, len(manager.tasks)):
            self._train_segment(manager, k, resumed=first > 0 and k == first)

    def _train_segment(self, manager: Any, k: int, resumed: bool) -> None:
        from sequential_learning.seeds import set_random_seed

        task = manager.tasks[k]
        manager.task_index = k
        manager.clock.begin_task(k)
        manager.experience = Experience(k, task, manager.run)  # the services' view
        set_random_seed(manager.seed + 7919 * k)  # as offline: a resumed run draws the same
        seed_offset = manager.seed * 1000 + k
        if self.trainer is None:
            self.trainer = manager.trainers.trainer_for(manager, manager.tasks[0],
                                                        self.experience)
            if resumed:
                with manager.strategy.scope():
                    self.state.restore(self.trainer)
        manager.trainer = self.trainer
        callbacks = [EpochHooks(manager), *manager.callbacks,
                     *sum(manager._call("task_callbacks"), [])]
        task.fit(self.trainer, 1, callbacks=callbacks, seed_offset=seed_offset,
                 dataset=self.segment_dataset(manager, k))
        manager.recorder.end_task(manager)
        start = time.perf_counter()
        if k == len(manager.tasks) - 1:
            for plugin in manager.plugins:
                plugin.after_training_exp(self.experience)
            manager.experience.summary.update(self.experience.summary)
        manager.recorder.record_task(manager, time.perf_counter() - start)
        manager._call("after_training_exp")

    def segment_dataset(self, manager: Any, k: int) -> Any:
        """Segment `k`'s batches: None for task k's own shuffled batches (boundaries none), a
        blurry segment's samples in the plan's order otherwise."""
        if self.plan.task is None:
            return None
        owners, index = self.plan.segment_positions(k)
        first = np.asarray(manager.tasks[0].train_data[0])
        labels = np.asarray(manager.tasks[0].train_data[1])
        x = np.empty((len(index), *first.shape[1:]), np.float32)
        y = np.empty((len(index), *labels.shape[1:]), labels.dtype)
        for t in np.unique(owners):
            rows = owners == t
            xt, yt = manager.tasks[int(t)].train_data
            x[rows] = np.asarray(xt)[index[rows]]
            y[rows] = np.asarray(yt)[index[rows]]
        return ordered_batches(x, y, manager.tasks[k].batch_size)


class StreamCurve:
    """The manager's service that measures and records the curve along the stream.

    `Results.stream_curve` holds, per evaluation point: `samples` (training samples seen),
    `segment` (the task whose part of the stream was training, from 1; 0 before training),
    `tasks_seen` (tasks that have shown a sample), `values` (each task's recorded metric),
    `mean_seen` (their mean over the tasks seen; null before any) and `mean_all`; and once:
    `metric`, `task_ends` (where each task's segment ends, the accuracy matrix's rows) and
    `windows` (a blurry stream's blend windows). Points inside a segment use the curves'
    validation subset (`eval_subset`), as the per-epoch curves do.

    Args:
        stream: the `OnlineStream`.

    Example:
    ```python
    curve = results.stream_curve
    list(zip(curve["samples"], curve["mean_seen"]))[:3]
    ```
    """

    def __init__(self, stream: OnlineStream) -> None:
        self.stream = stream

    def before_training(self, manager: Any) -> None:
        """Records the untrained point (a new run), or drops a resumed run's points past its
        checkpoint."""
        curve = manager.results.stream_curve
        done = manager.results.completed_tasks
        if done:
            if curve:
                last = self.stream.plan.segments[done - 1][1]
                keep = sum(1 for s in curve["samples"] if s <= last)
                for key in POINT_KEYS:
                    curve[key] = list(curve[key])[:keep]
            return
        evaluations = manager.evaluations
        if manager.eval_subset is not None or evaluations is None:
            evaluations = evaluate_all(manager.tasks)
        self.record(manager, 0, evaluations, segment=0)

    def task_callbacks(self, manager: Any) -> list[keras.callbacks.Callback]:
        """The evaluation points inside the segment starting."""
        return [EvaluationPoints(self, manager, manager.clock.task_index)]

    def after_training_epoch(self, manager: Any) -> None:
        """Records the point at the end of the segment (the epoch's evaluation)."""
        if manager.evaluations is None:
            return
        k = manager.clock.task_index
        self.record(manager, self.stream.plan.segments[k][1], manager.evaluations, k + 1)

    def evaluate_inside(self, manager: Any, trainer: keras.Model, position: int) -> None:
        """Evaluates every task in the middle of a segment's `fit` and records the point.

        Args:
            manager: the `SequentialLearningManager`.
            trainer: the trainer whose `fit` is running.
            position: the stream position (samples seen).
        """
        start = time.perf_counter()
        sync = getattr(trainer, "jax_state_sync", None)
        if sync is not None:
            sync()  # JAX: the variables take the step's state (the next step reads them back)
        kept = [np.array(keras.ops.convert_to_numpy(v)) for v in trainer.metrics_variables]
        evaluations = evaluate_all(manager.tasks)
        for variable, value in zip(trainer.metrics_variables, kept):
            variable.assign(value)
        self.record(manager, position, evaluations, manager.clock.task_index + 1)
        timing = manager.results.timing
        timing["evaluation_seconds"] = (timing.get("evaluation_seconds", 0.0)
                                        + time.perf_counter() - start)

    def record(self, manager: Any, position: int, evaluations: list[dict], segment: int) -> None:
        """Appends one point to `results.stream_curve`.

        Args:
            manager: the `SequentialLearningManager`.
            position: the stream position (samples seen).
            evaluations: every task's `{metric: value}`.
            segment: the task whose segment is training (from 1; 0 before training).
        """
        plan = self.stream.plan
        curve = manager.results.stream_curve
        if not curve:
            curve.update(metric=manager.recorder.metric, boundaries=plan.boundaries,
                         task_ends=[stop for _, stop in plan.segments],
                         windows=[list(w) for w in plan.windows], samples=[], segment=[],
                         tasks_seen=[], values=[], mean_seen=[], mean_all=[])
        values = [float(e[curve["metric"]]) for e in evaluations]
        seen = plan.tasks_seen(position)
        curve["samples"].append(int(position))
        curve["segment"].append(int(segment))
        curve["tasks_seen"].append(seen)
        curve["values"].append(values)
        curve["mean_seen"].append(float(np.mean(values[:seen])) if seen else float("nan"))
        curve["mean_all"].append(float(np.mean(values)))


class EvaluationPoints(keras.callbacks.Callback):
    """Evaluates every task at the evaluation points inside one segment's `fit`.

    Only `on_train_batch_begin` is used: Keras calls it synchronously with the first step of
    the next compiled call, and it needs no logs (a batch-end hook would make Keras convert
    every step's logs on the main thread: a host sync per call). Samples seen are counted
    from the step index (every batch but the last is full).

    Args:
        curve: the `StreamCurve`.
        manager: the `SequentialLearningManager`.
        segment: the segment training (from 0).

    Example:
    ```python
    callbacks = [EvaluationPoints(curve, manager, 0)]
    ```
    """

    def __init__(self, curve: StreamCurve, manager: Any, segment: int) -> None:
        super().__init__()
        plan = curve.stream.plan
        self.curve, self.manager = curve, manager
        self.batch_size = manager.tasks[segment].batch_size
        self.offset, stop = plan.segments[segment]
        self.size = stop - self.offset
        self.points = plan.points(segment, self.batch_size)
        self.next = 0

    def on_train_batch_begin(self, batch, logs=None):
        if self.next >= len(self.points):
            return
        seen = min(int(batch) * self.batch_size, self.size)
        if seen < self.points[self.next]:
            return
        while self.next < len(self.points) and self.points[self.next] <= seen:
            self.next += 1
        self.curve.evaluate_inside(self.manager, self.model, self.offset + seen)


class AtStreamEnd:
    """A service calling the plugins' hooks after an epoch, run in a task-free stream only after
    its last segment, with the stream's one experience (a segment's end is a hidden boundary:
    the plugins must not hear of it).

    Args:
        stream: the `OnlineStream`.
        service: the service (`PluginEpochHooks`, `PluginTaskEnd`).

    Example:
    ```python
    services = [AtStreamEnd(stream, PluginEpochHooks())]
    ```
    """

    def __init__(self, stream: OnlineStream, service: Any) -> None:
        self.stream, self.service = stream, service

    def after_training_epoch(self, manager: Any) -> None:
        """Runs the service's hook after the stream's last sample."""
        if manager.clock.task_index != len(manager.tasks) - 1:
            return
        segment, manager.experience = manager.experience, self.stream.experience
        try:
            self.service.after_training_epoch(manager)
        finally:
            manager.experience = segment


class OptimizerState:
    """A task-free run's optimizer state, checkpointed beside the plugins' (one optimizer
    trains the whole stream, so a resumed run must continue it rather than start afresh).

    Args:
        stream: the `OnlineStream` (its trainer's optimizer is saved).

    Example:
    ```python
    save_checkpoint(out, models, done, stream.checkpointed(plugins), config, results)
    ```
    """

    name = "stream"

    def __init__(self, stream: OnlineStream) -> None:
        self.stream = stream
        self.saved: dict[str, np.ndarray] = {}

    def state(self) -> dict[str, np.ndarray]:
        """The optimizer's variables as NumPy arrays (`optimizer_0`, `optimizer_1`, ...)."""
        trainer = self.stream.trainer
        if trainer is None or not trainer.optimizer.built:
            return {}
        return {f"optimizer_{i}": np.array(keras.ops.convert_to_numpy(v))
                for i, v in enumerate(trainer.optimizer.variables)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Keeps the arrays until the resumed run's trainer exists (`restore`)."""
        self.saved = dict(state)

    def restore(self, trainer: keras.Model) -> None:
        """Builds the trainer's optimizer and assigns the saved state (checked).

        Args:
            trainer: the resumed run's trainer.

        Raises:
            CheckpointError: the checkpoint holds no optimizer state, or another shape of it.
        """
        from sequential_learning.checkpoint import CheckpointError
        from sequential_learning.saved_state import state_array

        optimizer = trainer.optimizer
        if not optimizer.built:
            optimizer.build(trainer.trainable_variables)
        variables = optimizer.variables
        if len(self.saved) != len(variables):
            raise CheckpointError(f"stream: the checkpoint holds {len(self.saved)} optimizer "
                                  f"variables, the optimizer has {len(variables)}; a task-free "
                                  "run resumes its optimizer (the checkpoint is damaged or "
                                  "another run's)")
        for i, variable in enumerate(variables):
            kind = "int" if "int" in str(variable.dtype) else "float"
            value = state_array("stream optimizer", self.saved, f"optimizer_{i}",
                                tuple(variable.shape), kind)
            variable.assign(value.astype(keras.backend.standardize_dtype(variable.dtype)))
