"""SequentialLearningManager: trains tasks in order and calls the plugins' and services' hooks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras

from sequential_learning.clock import Clock
from sequential_learning.distribute import default_strategy
from sequential_learning.divergence import (
    DivergenceCheck,
    TrainingDivergedError,
    interruption_message,
)
from sequential_learning.evaluation import EvaluationSchedule, PeriodicEvaluation, evaluate_all
from sequential_learning.importance import EWCMethod, default_penalty_mode
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.method import resolve_method
from sequential_learning.online import check_plugins, online_stream
from sequential_learning.plugins.base import Experience, Plugin, Run
from sequential_learning.plugins.consolidation import Consolidation
from sequential_learning.progress import ProgressLine
from sequential_learning.recorder import ResultsRecorder
from sequential_learning.results import Results
from sequential_learning.rundir import RunDir
from sequential_learning.seeds import set_random_seed
from sequential_learning.services import EpochHooks, PluginEpochHooks, PluginTaskEnd, call_hook
from sequential_learning.tasks import (
    SequentialTask,
    covered_variables,
    same_model,
    share_evaluations,
)
from sequential_learning.tensorboard import TensorBoardLogger
from sequential_learning.trainers import TrainerCache
from sequential_learning.writer import RunWriter

__all__ = ["SequentialLearningManager", "TrainingDivergedError"]


class SequentialLearningManager:
    """Trains a stream of tasks one after another and wires in the continual-learning method.

    The manager orders the tasks and calls hooks. The method is one or more plugins
    (`sequential_learning.plugins`): their hooks run around each task, their in-graph hooks in
    the compiled train step; the EWC family is one `Consolidation` plugin whose penalty covers
    every variable trained by more than one task and the base's. The rest are services with
    named hooks (`before_training`, `after_training_epoch`, `after_training_exp`,
    `after_training`, `on_failure`), called in order: the non-finite check
    (`DivergenceCheck`), every task's evaluation after the epochs `eval_every` names
    (`PeriodicEvaluation`), the `ResultsRecorder`, TensorBoard, the progress line and the
    `RunWriter` (results, models, samples, checkpoints, at `RunDir`'s paths).

    Args:
        base_model: the shared base (its variables are always covered), or None to cover the
            variables that more than one task model shares.
        tasks: the `SequentialTask`s, in training order.
        method: an `EWCMethod`, a registered name (`"fisher"`), names joined with `+`
            (`"fisher+replay"`), a `Plugin`, a `{"name": ..., option: value}`, or a list.
        ewc_lambda: λ ≥ 0 of a weight-importance method.
        epochs: epochs per task: one int, or a list with one entry per task.
        seed: seeds Python, NumPy and the backend (`seeds.set_random_seed`).
        learning_rate: the optimizer's learning rate.
        optimizer: `"adam"` or `"sgd"` (see `sequential_learning.optimizers`), or a callable
            returning a fresh Keras optimizer; every task starts from a fresh optimizer state.
        fisher_mode: `exact`, `sampled`, `empirical` or `batch` (Fisher only).
        fisher_samples: training inputs used to estimate Ω (methods that need data).
        penalty_mode: `separate` (per-task terms, folded) or `online`; None takes the method's
            own (`online` for MAS and SI, as their papers define them; else `separate`).
        gamma: decay of old importance in `online` mode, in (0, 1].
        normalize_importance: divide each task's Ω by its maximum.
        method_options: further options of the methods (`xi`, `memory`, `lwf_alpha`, ...: see
            `seql list methods`); each method takes the ones it declares.
        strategy: a `tf.distribute.Strategy` (TensorFlow only; models must have been built under
            its scope); None: TensorFlow's current one, or no distribution (`LocalStrategy`) on
            the other backends.
        out_dir: if set, results, task models and sample images are written there after each task.
        progress: show progress on stderr (a string: its prefix): one updating line on a
            terminal, one line per epoch otherwise.
        callbacks: extra Keras callbacks for every task's `fit`.
        eval_every: evaluate every task after every `eval_every`-th epoch of a task (the last
            epoch of each task is always evaluated, so the accuracy matrix is complete);
            `Results.evaluated_epochs` lists the global epochs that were.
        eval_subset: evaluate the per-epoch curves on a fixed, seeded subset of this many
            validation samples per task (None: all); the accuracy matrix uses them all.
        tensorboard_dir: if set, TensorBoard logs go there (see `sequential_learning.tensorboard`).
        scenario: `task`, `domain` or `class` when known (recorded, and told to plugins).
        online: stream every task's samples once (every task 1 epoch) and evaluate every task
            along the stream (`Results.stream_curve`; see `sequential_learning.online`).
        boundaries: `tasks` (each task an experience), or, online, `none` / `blurry`: a
            task-free stream, one experience for the methods (see `sequential_learning.online`;
            methods that learn at boundaries are refused).
        eval_every_samples: online: evaluate every task after every this many samples of each
            task's part of the stream (None: about ten points per task).
        blur_window: boundaries `blurry`: the samples over which two tasks blend (None: a fifth
            of the smallest task; see `sequential_learning.data.blurry`).

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, method="fisher", ewc_lambda=100.0, epochs=5)
    manager = SequentialLearningManager(base, tasks, method="fisher+replay",
                                        method_options={"memory": 500})
    results = manager.train_all()
    ```
    """

    def __init__(
        self,
        base_model: keras.Model | None,
        tasks: Sequence[SequentialTask],
        method: EWCMethod | str | Plugin | Sequence = EWCMethod.NONE,
        ewc_lambda: float = 0.0,
        epochs: int | Sequence[int] = 5,
        seed: int = 0,
        learning_rate: float = 1e-3,
        optimizer: str | Callable[[], keras.optimizers.Optimizer] = "adam",
        fisher_mode: str = "exact",
        fisher_samples: int = 1000,
        penalty_mode: str | None = None,
        gamma: float = 1.0,
        normalize_importance: bool = False,
        method_options: dict | None = None,
        strategy: Any = None,
        out_dir: str | Path | None = None,
        progress: bool | str = False,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        config: dict | None = None,
        eval_every: int = 1,
        eval_subset: int | None = None,
        tensorboard_dir: str | Path | None = None,
        scenario: str | None = None,
        online: bool = False,
        boundaries: str = "tasks",
        eval_every_samples: int | None = None,
        blur_window: int | None = None,
    ) -> None:
        self.tasks = list(tasks)
        if not self.tasks:
            raise ValueError("SequentialLearningManager needs at least one task")
        for t in self.tasks:
            if not isinstance(t, SequentialTask):
                raise ValueError(f"Expected SequentialTask objects, got {type(t).__name__}")
        if not isinstance(ewc_lambda, (int, float)) or not math.isfinite(ewc_lambda):
            raise ValueError(f"ewc_lambda must be a finite number, got {ewc_lambda!r}")
        if ewc_lambda < 0:
            raise ValueError(f"ewc_lambda must be >= 0, got {ewc_lambda}")
        self.ewc_lambda = float(ewc_lambda)
        self.clock = Clock(epochs, len(self.tasks))
        self.epochs = self.clock.epochs
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.seed, self.learning_rate, self.optimizer = int(seed), float(learning_rate), optimizer
        self.strategy = strategy or default_strategy()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress, self.callbacks = progress, list(callbacks)
        self.tensorboard = TensorBoardLogger(tensorboard_dir) if tensorboard_dir else None
        schedule = EvaluationSchedule(eval_every, eval_subset)
        self.eval_every, self.eval_subset = eval_every, eval_subset
        for k, task in enumerate(self.tasks):
            task.set_evaluation_subset(eval_subset, seed=self.seed + k)
        self.base_model = base_model
        self.covered = covered_variables(self.tasks, base_model)
        self.plugins, self.method, self.method_name = resolve_method(
            method, fisher_mode=fisher_mode, fisher_samples=fisher_samples,
            ewc_lambda=self.ewc_lambda, penalty_mode=penalty_mode, gamma=gamma,
            normalize_importance=normalize_importance, **(method_options or {}))
        if penalty_mode is None and isinstance(self.method, EWCMethod):
            penalty_mode = default_penalty_mode(self.method)
        self.shared_head = all(same_model(self.tasks[0], t) for t in self.tasks[1:])
        # Online or task-free: the stream's plan, its curve and (task-free) its loop.
        self.stream = online_stream(self.tasks, self.epochs, self.seed, online, boundaries,
                                    eval_every_samples, blur_window, self.shared_head)
        if self.stream is not None:
            check_plugins(self.plugins, boundaries)
        self.run = Run(
            tasks=self.tasks, covered=self.covered, base_model=base_model,
            strategy=self.strategy, seed=self.seed, out_dir=self.out_dir,
            shared_head=self.shared_head,
            task_type="classification" if self.tasks[0]._is_classification() else "regression",
            scenario=scenario, boundaries=boundaries,
        )
        for plugin in self.plugins:
            plugin.check(self.run)
        with self.strategy.scope():
            for plugin in self.plugins:
                plugin.build(self.run)
        self.config = {
            **{k: v for p in self.plugins for k, v in p.describe().items()}, "method": self.method_name, "ewc_lambda": self.ewc_lambda,
            "epochs": self.epochs, "seed": self.seed, "learning_rate": self.learning_rate,
            "optimizer": optimizer if isinstance(optimizer, str) else "custom",
            "penalty_mode": penalty_mode, "gamma": gamma,
            "normalize_importance": normalize_importance, "batch_size": self.tasks[0].batch_size,
            "eval_every": self.eval_every, "eval_subset": self.eval_subset,
            "covered_variables": [getattr(v, "path", str(i)) for i, v in enumerate(self.covered)],
            **(config or {}),
            **(self.stream.describe() if self.stream is not None else {}),
            # What each plugin runs with (a plugin's own options win over the run's).
            "method_settings": {p.name: p.describe() for p in self.plugins},
        }
        share_evaluations(self.tasks)
        self.trainers = TrainerCache(optimizer, self.learning_rate)
        self.recorder = ResultsRecorder()
        self.progress_line = ProgressLine(progress) if progress else None
        # The services, in the order their hooks run (see `sequential_learning.services`).
        writer = RunWriter(RunDir(self.out_dir)) if self.out_dir is not None else None
        self.services: list = [s for s in (
            DivergenceCheck(), PluginTaskEnd(), PeriodicEvaluation(schedule), self.recorder,
            self.tensorboard, PluginEpochHooks(), writer, self.progress_line) if s is not None]
        if self.stream is not None:
            self.services = self.stream.adapt_services(self.services)
        self.task_index, self.evaluations, self.logs = 0, None, {}

    @property
    def results(self) -> Results | None:
        """The results so far (None before `train_all`)."""
        return self.recorder.results

    @property
    def checkpointed(self) -> list:
        """What a checkpoint saves the state of: the plugins (and a task-free stream's
        optimizer, see `sequential_learning.online`)."""
        return self.stream.checkpointed(self.plugins) if self.stream is not None else self.plugins

    @property
    def consolidation(self) -> Consolidation | None:
        """The weight-importance plugin, if the method has one."""
        return next((p for p in self.plugins if isinstance(p, Consolidation)), None)

    @property
    def penalty(self) -> ConsolidationPenalty | None:
        """The consolidation penalty, if the method has one."""
        plugin = self.consolidation
        return plugin.penalty if plugin is not None else None

    @property
    def estimator(self):
        """The importance estimator, if the method has one."""
        plugin = self.consolidation
        return plugin.estimator if plugin is not None else None

    def _reusable_trainer(self, task: SequentialTask):
        """The previous task's trainer, reset, if it computes this task's step (`TrainerCache`)."""
        return self.trainers.reusable(task)

    def _call(self, hook: str) -> list:
        return call_hook(self.services, hook, self)

    # -- the run -----------------------------------------------------------------------------------
    def train_all(self, resume: bool = False) -> Results:
        """Trains every task in order.

        Args:
            resume: continue the run in `out_dir` from its last finished task (weights,
                consolidation state and results so far are restored from its checkpoint).

        Returns:
            The `Results` (accuracy matrix, per-epoch curves of every task, metrics, timing).

        Raises:
            TrainingDivergedError: when a task's loss becomes NaN or infinite (the results of the
                tasks already finished stay on disk when `out_dir` is set).
            CheckpointError: when resuming from a missing, truncated or mismatched checkpoint.
        """
        set_random_seed(self.seed)
        start = time.perf_counter()
        first_task, self.evaluations = 0, None
        if resume:
            from sequential_learning.checkpoint import restore_run

            if self.out_dir is None:
                raise ValueError("resume=True needs out_dir: the run directory to continue")
            note = self.progress_line.note if self.progress_line else None
            with self.strategy.scope():
                first_task, results = restore_run(self.out_dir, [t.model for t in self.tasks],
                                                  self.checkpointed, self.config, len(self.tasks),
                                                  note)
            self.recorder.resume(results, self.config, self.epochs, first_task)
        else:
            self.evaluations = evaluate_all(self.tasks, full=True)
            self.recorder.start(self.config, self.tasks, self.evaluations)
        self.clock.start(first_task, start)
        self._call("before_training")
        try:
            if self.stream is not None and self.stream.task_free:
                self.stream.train(self, first_task)  # one experience, a segment per task
            else:
                for index in range(first_task, len(self.tasks)):
                    self._train_task(index, self.tasks[index])
        except KeyboardInterrupt:
            self._call("on_failure")
            raise KeyboardInterrupt(interruption_message(
                self.task_index, self.results.completed_tasks, self.out_dir)) from None
        except BaseException:
            self._call("on_failure")  # before the error is shown
            raise
        self.results.timing["total_seconds"] = (
            self.results.timing.get("total_seconds", 0.0) if first_task else 0.0
        ) + self.clock.elapsed()
        self._call("after_training")
        return self.results

    def _train_task(self, index: int, task: SequentialTask) -> None:
        self.task_index = index
        self.clock.begin_task(index)
        exp = self.experience = Experience(index, task, self.run)
        if task.active_classes is not None:
            task.active_classes.begin_task(index)
        # Each task's randomness depends only on (seed, task), so a resumed run matches.
        set_random_seed(self.seed + 7919 * index)
        with self.strategy.scope():
            for plugin in self.plugins:
                plugin.before_training_exp(exp)
        seed_offset = self.seed * 1000 + index
        own = task.training_dataset(seed_offset)
        dataset = own
        for plugin in self.plugins:
            dataset = plugin.adapt_dataset(dataset, exp)
        self.trainer = self.trainers.trainer_for(self, task, exp)
        callbacks = [EpochHooks(self), *self.callbacks, *sum(self._call("task_callbacks"), [])]
        task.fit(self.trainer, self.epochs[index], initial_epoch=0, callbacks=callbacks,
                 seed_offset=seed_offset, dataset=None if dataset is own else dataset)
        self.recorder.end_task(self)
        importance_start = time.perf_counter()
        for plugin in self.plugins:
            plugin.after_training_exp(exp)
        self.recorder.record_task(self, time.perf_counter() - importance_start)
        self._call("after_training_exp")
