"""SequentialLearningManager: trains tasks in order, evaluates every task every epoch, consolidates."""

from __future__ import annotations

import io
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sequential_learning.errors import SeqlError
from sequential_learning.importance import EWCMethod, default_penalty_mode, parse_method
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.optimizers import make_optimizer
from sequential_learning.plugins.base import Experience, Plugin, Run, check_combination
from sequential_learning.plugins.consolidation import Consolidation
from sequential_learning.results import Results, atomic_write_bytes
from sequential_learning.tasks import SequentialTask


class TrainingDivergedError(SeqlError, RuntimeError):
    """The loss became NaN or infinite during a task (a `SeqlError`: one line from `seql`)."""


class SequentialLearningManager:
    """Trains a stream of tasks one after another and wires in the continual-learning method.

    After every epoch of every task, *every* task is evaluated, so the curves of all tasks over
    all epochs (with task boundaries) are kept (`eval_every` and `eval_subset` bound that cost).
    The method is one or more plugins (`sequential_learning.plugins`) whose hooks the manager
    calls around each task and whose in-graph hooks run inside the compiled train step. The EWC
    family (`EWCMethod`) is one `Consolidation` plugin: after each task its importance Ω is
    measured and folded into the penalty λ/2 Σ Ω (θ − θ*)², which covers every variable trained
    by more than one task (the shared base; a shared head too) and, when `base_model` is given,
    the base's.

    Args:
        base_model: the shared base (its variables are always covered), or None to cover the
            variables that more than one task model shares.
        tasks: the `SequentialTask`s, in training order.
        method: the method: an `EWCMethod`, a registered name (`"fisher"`, `"replay"`), names
            joined with `+` (`"fisher+replay"`), a `Plugin`, a `{"name": ..., option: value}`
            mapping, or a list of these.
        ewc_lambda: λ ≥ 0 of a weight-importance method.
        epochs: epochs per task: one int, or a list with one entry per task.
        seed: seeds Python, NumPy and TensorFlow (`keras.utils.set_random_seed`).
        learning_rate: the optimizer's learning rate.
        optimizer: `"adam"` or `"sgd"` (Keras's formulas, run as TensorFlow's fused kernels: see
            `sequential_learning.optimizers`), or a callable returning a fresh Keras optimizer;
            every task starts from a fresh optimizer state.
        fisher_mode: `exact`, `sampled`, `empirical` or `batch` (Fisher only).
        fisher_samples: training inputs used to estimate Ω (methods that need data).
        penalty_mode: `separate` (per-task terms, folded) or `online`; None takes the method's
            own (`online` for MAS and SI, as their papers define them; else `separate`).
        gamma: decay of old importance in `online` mode, in (0, 1].
        normalize_importance: divide each task's Ω by its maximum.
        method_options: further options of the methods (`xi`, `memory`, `lwf_alpha`, ...: see
            `seql list methods`); each method takes the ones it declares.
        strategy: a `tf.distribute.Strategy` (models must have been built under its scope).
        out_dir: if set, results, task models and sample images are written there after each task.
        progress: show progress on stderr (a string: its prefix): one updating line on a
            terminal, one line per epoch otherwise.
        callbacks: extra Keras callbacks for every task's `fit`.
        eval_every: evaluate every task after every `eval_every`-th epoch of a task (the last
            epoch of each task is always evaluated, so the accuracy matrix is complete);
            `Results.evaluated_epochs` lists the global epochs that were.
        eval_subset: evaluate the per-epoch curves on a fixed, seeded subset of this many
            validation samples per task (None: all); the accuracy matrix and the baseline are
            always measured on the whole validation sets.
        tensorboard_dir: if set, TensorBoard logs go there: Keras' TensorBoard callback for each
            task's `fit` (`task_K/`) and every task's validation metrics against the global epoch
            (`validation/`, tags like `accuracy/task_1`); see `sequential_learning.tensorboard`.
        scenario: `task`, `domain` or `class` when known (recorded, and told to plugins).

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
        strategy: tf.distribute.Strategy | None = None,
        out_dir: str | Path | None = None,
        progress: bool | str = False,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        config: dict | None = None,
        eval_every: int = 1,
        eval_subset: int | None = None,
        tensorboard_dir: str | Path | None = None,
        scenario: str | None = None,
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
        if isinstance(epochs, int):
            self.epochs = [epochs] * len(self.tasks)
        else:
            self.epochs = [int(e) for e in epochs]
            if len(self.epochs) != len(self.tasks):
                raise ValueError(
                    f"epochs has {len(self.epochs)} entries but there are {len(self.tasks)} "
                    "tasks: give one int, or one entry per task"
                )
        if any(e < 1 for e in self.epochs):
            raise ValueError(f"every task needs at least one epoch, got epochs={self.epochs}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.seed = int(seed)
        self.learning_rate = float(learning_rate)
        self.optimizer = optimizer
        self.strategy = strategy or tf.distribute.get_strategy()
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.progress = progress
        self.callbacks = list(callbacks)
        self.tensorboard = None
        if tensorboard_dir is not None:
            from sequential_learning.tensorboard import TensorBoardLogger

            self.tensorboard = TensorBoardLogger(tensorboard_dir)
        if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 1:
            raise ValueError(f"eval_every must be an integer >= 1, got {eval_every!r}")
        if eval_subset is not None and (
            isinstance(eval_subset, bool) or not isinstance(eval_subset, int) or eval_subset < 1
        ):
            raise ValueError(f"eval_subset must be an integer >= 1 or None, got {eval_subset!r}")
        self.eval_every = eval_every
        self.eval_subset = eval_subset
        for k, task in enumerate(self.tasks):
            task.set_evaluation_subset(eval_subset, seed=self.seed + k)
        self.base_model = base_model
        self.covered = self._covered_variables(base_model)
        from sequential_learning.plugins import make_plugins

        options = {"fisher_mode": fisher_mode, "fisher_samples": fisher_samples,
                   "ewc_lambda": self.ewc_lambda, "penalty_mode": penalty_mode, "gamma": gamma,
                   "normalize_importance": normalize_importance}
        options.update(method_options or {})
        self.plugins: list[Plugin] = make_plugins(method, **options)
        check_combination(self.plugins)
        self.method = _method_of(method, self.plugins)
        self.method_name = "+".join(p.name for p in self.plugins) or "none"
        if penalty_mode is None and isinstance(self.method, EWCMethod):
            penalty_mode = default_penalty_mode(self.method)
        self.shared_head = all(_same_model(self.tasks[0], t) for t in self.tasks[1:])
        self.run = Run(
            tasks=self.tasks, covered=self.covered, base_model=base_model,
            strategy=self.strategy, seed=self.seed, out_dir=self.out_dir,
            shared_head=self.shared_head,
            task_type="classification" if self.tasks[0]._is_classification() else "regression",
            scenario=scenario,
        )
        for plugin in self.plugins:
            plugin.check(self.run)
        with self.strategy.scope():
            for plugin in self.plugins:
                plugin.build(self.run)
        described = {}
        for plugin in self.plugins:
            described.update(plugin.describe())
        self.config = {
            **described,
            "method": self.method_name,
            "ewc_lambda": self.ewc_lambda,
            "epochs": self.epochs,
            "seed": self.seed,
            "learning_rate": self.learning_rate,
            "optimizer": optimizer if isinstance(optimizer, str) else "custom",
            "penalty_mode": penalty_mode,
            "gamma": gamma,
            "normalize_importance": normalize_importance,
            "batch_size": self.tasks[0].batch_size,
            "eval_every": self.eval_every,
            "eval_subset": self.eval_subset,
            "covered_variables": [getattr(v, "path", str(i)) for i, v in enumerate(self.covered)],
            **(config or {}),
            # What each plugin runs with (a plugin's own options win over the run's).
            "method_settings": {p.name: p.describe() for p in self.plugins},
        }
        self.results: Results | None = None
        # Tasks whose models are the same layers, loss and metrics share one compiled
        # evaluation (one trace instead of one per task).
        for k, task in enumerate(self.tasks):
            same = next((t for t in self.tasks[:k] if _same_step(t, task)), None)
            if same is not None:
                task.share_evaluation(same)
        self._previous: tuple[SequentialTask, keras.Model] | None = None  # see _reusable_trainer

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

    # -- set-up ------------------------------------------------------------------------------------
    def _covered_variables(self, base_model) -> list:
        """Variables of the base, plus every variable that more than one task model trains."""
        counts: dict[int, int] = {}
        order: dict[int, object] = {}
        for task in self.tasks:
            for v in task.model.trainable_variables:
                counts[id(v)] = counts.get(id(v), 0) + 1
                order.setdefault(id(v), v)
        covered = {i for i, c in counts.items() if c > 1}
        if base_model is not None:
            base_ids = {id(v) for v in base_model.trainable_variables}
            for task in self.tasks:
                ids = {id(v) for v in task.model.trainable_variables}
                if not base_ids <= ids:
                    raise ValueError(
                        f"Task {task.name!r}: its model does not contain the base model "
                        f"{base_model.name!r} (build task models on the shared base)"
                    )
            covered |= base_ids
        return [v for i, v in order.items() if i in covered]

    def _reusable_trainer(self, task: SequentialTask):
        """The previous task's trainer, its optimizer reset, if it computes this task's step.

        Tasks whose models are the same layers (one head for all: the domain- and
        class-incremental streams) and have the same loss and metrics share one compiled train
        step (the penalty is switched on inside it), so tracing (about 2 s for an MLP
        784-400-400-10) happens once per run, not once per task. Only with the built-in
        optimizers: resetting their state (the step count and the slots, to zero; the learning
        rate kept) is exactly a fresh optimizer, while a user's factory gets a new one.
        """
        if self._previous is None or callable(self.optimizer):
            return None
        previous, trainer = self._previous
        if not _same_step(previous, task):
            return None
        optimizer = trainer.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return None  # its loss scale is state that must not be zeroed
        kept = {id(v) for v in _learning_rate_variables(optimizer)}
        for variable in optimizer.variables:
            if id(variable) not in kept:
                variable.assign(tf.zeros(variable.shape, variable.dtype))
        return trainer

    def _make_optimizer(self) -> keras.optimizers.Optimizer:
        if callable(self.optimizer):
            return self.optimizer()
        return make_optimizer(self.optimizer, self.learning_rate)

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
        keras.utils.set_random_seed(self.seed)
        n = len(self.tasks)
        start = time.perf_counter()
        if resume:
            return self._resume(start)
        first = [t.evaluate(full=True) for t in self.tasks]
        self._metric = _pick_metric(first[0])
        if self.tensorboard is not None:
            self.tensorboard.log_epoch(0, first)  # step 0: the untrained model
        self.results = Results(
            config=self.config,
            task_names=[t.name for t in self.tasks],
            accuracy_matrix=np.full((n, n), np.nan),
            baseline=np.array([r[self._metric] for r in first]),
            history={k: np.zeros((0, n)) for k in first[0]},
            metric=self._metric,
            higher_is_better=self.tasks[0].higher_is_better,
            timing={"task_seconds": [], "importance_seconds": [], "total_seconds": 0.0},
            # Masked unseen classes score 0 before their task: no forward transfer to measure.
            forward_transfer=all(t.active_classes is None for t in self.tasks),
        )
        self._rows: dict[str, list] = {k: [] for k in first[0]}
        self._train_rows: dict[str, list] = {}
        return self._run_tasks(0, start)

    def _resume(self, start: float) -> Results:
        from sequential_learning.checkpoint import (
            CheckpointError,
            checkpoint_results_path,
            load_checkpoint,
        )
        from sequential_learning.rundir import remove_temporary_files

        if self.out_dir is None:
            raise ValueError("resume=True needs out_dir: the run directory to continue")
        models = [t.model for t in self.tasks]
        with self.strategy.scope():
            done = load_checkpoint(self.out_dir, models, self.plugins, self.config)
        remove_temporary_files(self.out_dir)  # what a kill during a write left
        self.results = Results.load(checkpoint_results_path(self.out_dir) or self.out_dir)
        recorded = _completed_in(self.out_dir / "results.json")
        if recorded is not None and recorded > done and self.progress:
            sys.stderr.write(
                f"note: {self.out_dir / 'results.json'} records {recorded} finished tasks, the "
                f"checkpoint {done} (the run stopped while saving task {done + 1}); task "
                f"{done + 1} is trained again\n")
        if self.results.completed_tasks != done or self.results.num_tasks != len(self.tasks):
            raise CheckpointError(
                f"{self.out_dir}: results.json records {self.results.completed_tasks} finished "
                f"tasks of {self.results.num_tasks}, the checkpoint {done} of {len(self.tasks)}"
            )
        self.results.config = self.config
        self._metric = self.results.metric
        # Keep only the epochs of finished tasks (an interrupted task restarts from its start).
        keep = sum(self.epochs[:done])
        self.results.epoch_task = self.results.epoch_task[:keep]
        rows = sum(1 for e in self.results.history_epochs if e <= keep)
        self.results.evaluated_epochs = self.results.history_epochs[:rows]
        self._rows = {k: [list(r) for r in v[:rows]] for k, v in self.results.history.items()}
        self._train_rows = {k: list(v[:keep]) for k, v in self.results.train_history.items()}
        for key in ("task_seconds", "importance_seconds"):
            self.results.timing[key] = list(self.results.timing.get(key, []))[:done]
        self.results.importance_summary = self.results.importance_summary[:done]
        self.results.task_summaries = self.results.task_summaries[:done]
        self.results.timing["resumed_after_task"] = done
        return self._run_tasks(done, start)

    def _run_tasks(self, first_task: int, start: float) -> Results:
        self._epochs_done = sum(self.epochs[:first_task])
        self._total_epochs = sum(self.epochs)
        self._start = start
        try:
            for index in range(first_task, len(self.tasks)):
                self._train_task(index, self.tasks[index])
        except KeyboardInterrupt:
            self._end_progress()
            done = self.results.completed_tasks
            where = f" in {self.out_dir}" if self.out_dir is not None else ""
            saved = (f"the {done} finished task(s) are saved{where}"
                     + (f"; resume with: seql run --resume {self.out_dir}" if self.out_dir else "")
                     if done else "no task had finished")
            raise KeyboardInterrupt(
                f"interrupted during task {self._task_index + 1}; {saved}") from None
        except BaseException:
            self._end_progress()  # before the error is shown
            raise
        self.results.timing["total_seconds"] = (
            self.results.timing.get("total_seconds", 0.0) if first_task else 0.0
        ) + time.perf_counter() - start
        if self.tensorboard is not None:
            self.tensorboard.close()
        self._write(final=True)
        self._end_progress()
        return self.results

    def _train_task(self, index: int, task: SequentialTask) -> None:
        task_start = time.perf_counter()
        self._task_index = index
        exp = Experience(index, task, self.run)
        self._experience = exp
        if task.active_classes is not None:
            task.active_classes.begin_task(index)
        # Each task's randomness depends only on (seed, task), so a resumed run matches.
        keras.utils.set_random_seed(self.seed + 7919 * index)
        with self.strategy.scope():
            for plugin in self.plugins:
                plugin.before_training_exp(exp)
        seed_offset = self.seed * 1000 + index
        own = task.training_dataset(seed_offset)
        dataset = own
        for plugin in self.plugins:
            dataset = plugin.adapt_dataset(dataset, exp)
        trainer = self._trainer_for(task, exp)
        callbacks = [_EndOfEpoch(self, index)] + self.callbacks
        if self.tensorboard is not None:
            callbacks.append(self.tensorboard.task_callback(index))
        task.fit(
            trainer,
            self.epochs[index],
            initial_epoch=0,
            callbacks=callbacks,
            seed_offset=seed_offset,
            dataset=None if dataset is own else dataset,
        )
        # Row `index` of R: the evaluation at the end of this task's last epoch (on the whole
        # validation sets when the curves use a subset).
        if self.eval_subset is None:
            last = {name: rows[-1] for name, rows in self._rows.items()}
        else:
            full = [t.evaluate(full=True) for t in self.tasks]
            last = {name: [e[name] for e in full] for name in full[0]}
        self.results.accuracy_matrix[index] = last[self._metric]
        for name, row in last.items():
            if name in _OTHER_MATRICES:
                matrix = self.results.matrices.setdefault(
                    name, np.full(self.results.accuracy_matrix.shape, np.nan))
                matrix[index] = row
        importance_start = time.perf_counter()
        for plugin in self.plugins:
            plugin.after_training_exp(exp)
        importance_seconds = time.perf_counter() - importance_start
        self.results.importance_summary.append(exp.summary.pop("importance", {}))
        self.results.task_summaries.append(exp.summary)
        self.results.timing["importance_seconds"].append(importance_seconds)
        self.results.timing["task_seconds"].append(time.perf_counter() - task_start)
        self.results.completed_tasks = index + 1
        self._write(final=False)

    def _trainer_for(self, task: SequentialTask, exp: Experience) -> keras.Model:
        """The task's compiled trainer: the previous one reused where the step is the same."""
        routes = max((p.routed_tasks(exp) for p in self.plugins), default=0)
        routed_data = any(p.routed_data(exp) for p in self.plugins)
        route_tasks = None if self.shared_head or routes == 0 else self.tasks[:routes]
        with self.strategy.scope():
            trainer = self._reusable_trainer(task)
            if trainer is None:
                optimizer = self._make_optimizer()
                trainer = task.make_trainer(optimizer, covered=self.covered,
                                            plugins=self.plugins, routes=route_tasks,
                                            routed_data=routed_data)
            self._previous = (task, trainer)
        self._trainer = trainer
        return trainer

    def _end_of_epoch(self, index: int, epoch: int, logs: dict) -> None:
        loss = (logs or {}).get("loss")
        bad_step = int(self._trainer.nonfinite_step.numpy())
        if bad_step >= 0 or (loss is not None and not math.isfinite(float(loss))):
            where = f", step {bad_step + 1}" if bad_step >= 0 else ""
            raise TrainingDivergedError(
                f"Task {self.tasks[index].name!r} (task {index + 1}), epoch {epoch + 1}{where}: "
                f"the loss became {'non-finite' if loss is None else loss}. Lower the learning "
                f"rate (now {self.learning_rate:g})"
                + (f" or lambda (now {self.ewc_lambda:g})" if self.penalty is not None else "")
                + ". "
                + (f"The {index} finished task(s) are kept in {self.out_dir}."
                   if self.out_dir is not None and index else "No task had finished.")
            )
        global_epoch = len(self.results.epoch_task) + 1
        due = epoch + 1 == self.epochs[index] or (epoch + 1) % self.eval_every == 0
        eval_start = time.perf_counter()
        evaluations = [t.evaluate() for t in self.tasks] if due else None
        timing = self.results.timing
        timing["evaluation_seconds"] = (
            timing.get("evaluation_seconds", 0.0) + time.perf_counter() - eval_start
        )
        if due:
            for name in self._rows:
                self._rows[name].append([e[name] for e in evaluations])
            self.results.evaluated_epochs.append(global_epoch)
            if self.tensorboard is not None:
                self.tensorboard.log_epoch(global_epoch, evaluations, training_task=index)
        done = len(self.results.epoch_task)  # epochs before this one
        for name, value in (logs or {}).items():
            # A log that appears later (a penalty) is NaN in the epochs before it.
            self._train_rows.setdefault(name, [math.nan] * done).append(float(value))
        self.results.history = {k: np.array(v) for k, v in self._rows.items()}
        self.results.train_history = {k: np.array(v) for k, v in self._train_rows.items()}
        self.results.epoch_task.append(index)
        self._epochs_done += 1
        for plugin in self.plugins:
            plugin.after_training_epoch(self._experience, epoch, logs or {})
        if self.progress:
            self._show_progress(index, epoch, evaluations)

    def _show_progress(self, index: int, epoch: int, evaluations) -> None:
        elapsed = time.perf_counter() - self._start
        left = elapsed / self._epochs_done * (self._total_epochs - self._epochs_done)
        if evaluations is None:
            current = self._rows[self._metric][-1][index] if self._rows[self._metric] else math.nan
        else:
            current = evaluations[index][self._metric]
        prefix = f"{self.progress}  " if isinstance(self.progress, str) else ""
        line = (
            f"{prefix}task {index + 1}/{len(self.tasks)}  epoch {epoch + 1}/{self.epochs[index]}  "
            f"{self._metric} {current:.3f}  elapsed {elapsed:5.1f}s  left ~{left:5.1f}s"
        )
        # One updating line on a terminal; one line per epoch into a file or a pipe.
        sys.stderr.write(f"\r{line} " if _terminal() else f"{line}\n")
        sys.stderr.flush()

    def _end_progress(self) -> None:
        """Ends the updating progress line (on a terminal) before anything else is printed."""
        if self.progress and _terminal():
            sys.stderr.write("\n")

    # -- outputs -----------------------------------------------------------------------------------
    def _write(self, final: bool) -> None:
        if self.out_dir is None:
            return
        try:
            self._write_files(final)
        except OSError as error:
            from sequential_learning.errors import disk_error

            done = self.results.completed_tasks - (0 if final else 1)
            saved = (f"the checkpoint after task {done} is intact; resume with: seql run "
                     f"--resume {self.out_dir}" if done else "no task was saved")
            raise disk_error(error, self.out_dir, saved) from None

    def _write_files(self, final: bool) -> None:
        self.results.save(self.out_dir)
        models = self.out_dir / "models"
        samples = self.out_dir / "samples"
        models.mkdir(parents=True, exist_ok=True)
        samples.mkdir(parents=True, exist_ok=True)
        done = self.results.completed_tasks
        for k, task in enumerate(self.tasks[:done], start=1):
            target = models / f"task_{k}.keras"
            tmp = models / f".task_{k}.tmp.keras"
            task.model.save(tmp)
            tmp.replace(target)
            sample_path = samples / f"task_{k}.npz"
            if not sample_path.exists():
                x, y = _validation_sample(task, 64)
                buffer = io.BytesIO()
                np.savez(buffer, x=x, y=y)
                atomic_write_bytes(sample_path, buffer.getvalue())
        if not final and done:
            from sequential_learning.checkpoint import save_checkpoint

            save_checkpoint(self.out_dir, [t.model for t in self.tasks], done, self.plugins,
                            self.config, self.results)


class _EndOfEpoch(keras.callbacks.Callback):
    """Evaluates every task at the end of every epoch of the task in training."""

    def __init__(self, manager: SequentialLearningManager, index: int) -> None:
        super().__init__()
        self.manager = manager
        self.index = index

    def on_epoch_begin(self, epoch, logs=None):
        self.manager._trainer.reset_epoch_step()

    def on_epoch_end(self, epoch, logs=None):
        self.manager._end_of_epoch(self.index, epoch, logs or {})


#: Metrics besides the recorded one whose end-of-task values form a matrix of their own: the
#: task-incremental accuracy of a class-incremental stream.
_OTHER_MATRICES = ("task_accuracy",)


def _method_of(method, plugins: Sequence[Plugin]) -> EWCMethod | str:
    """The `EWCMethod` when the method is exactly one of them (or none), else its name."""
    if isinstance(method, EWCMethod):
        return method
    if isinstance(method, str) and "+" not in method:
        try:
            return parse_method(method)
        except ValueError:
            pass
    return "+".join(p.name for p in plugins) or EWCMethod.NONE


def _completed_in(path: Path) -> int | None:
    """The finished tasks a results.json records (None when it cannot be read)."""
    import json

    try:
        return int(json.loads(path.read_text())["completed_tasks"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same_model(a: SequentialTask, b: SequentialTask) -> bool:
    """Whether two tasks train the same model: the same layer objects and shapes."""
    if a.model is b.model:
        return True

    def layers(model):
        return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]

    la, lb = layers(a.model), layers(b.model)
    return (len(la) == len(lb) and all(x is y for x, y in zip(la, lb))
            and _shapes(a.model.inputs) == _shapes(b.model.inputs)
            and _shapes(a.model.outputs) == _shapes(b.model.outputs))


def _same_step(a: SequentialTask, b: SequentialTask) -> bool:
    """Whether the two tasks' train steps are the same computation: the same layer objects in
    the same order, input and output shapes, loss and metrics."""
    return (
        _same_model(a, b)
        and _describe(a.loss) == _describe(b.loss)
        and [_describe(m) for m in a.metrics] == [_describe(m) for m in b.metrics]
    )


def _shapes(tensors) -> list:
    return [tuple(t.shape) for t in tensors or []]


def _describe(obj) -> object:
    """A comparable description of a loss or metric: the string, or the class and config."""
    if isinstance(obj, str) or obj is None:
        return obj
    try:
        return (type(obj).__qualname__, repr(sorted(obj.get_config().items())))
    except Exception:  # noqa: BLE001 - an object without a config: only itself is the same
        return ("id", id(obj))


def _learning_rate_variables(optimizer) -> list:
    """The optimizer's learning-rate variable (a setting, not state), if it has one."""
    rate = getattr(optimizer, "_learning_rate", None)
    return [rate] if isinstance(rate, keras.Variable | tf.Variable) else []


def _terminal() -> bool:
    """Whether stderr is a terminal (where a progress line can update in place)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _pick_metric(evaluation: dict) -> str:
    for name in ("accuracy", "sparse_categorical_accuracy", "compile_metrics"):
        if name in evaluation:
            return name
    names = [k for k in evaluation if k != "loss"]
    return names[0] if names else "loss"


def _validation_sample(task: SequentialTask, n: int) -> tuple[np.ndarray, np.ndarray]:
    data = task.validation_data
    if isinstance(data, tf.data.Dataset):
        xs, ys = [], []
        for xb, yb in data:
            xs.append(np.asarray(xb))
            ys.append(np.asarray(yb))
            if sum(len(a) for a in xs) >= n:
                break
        return np.concatenate(xs)[:n], np.concatenate(ys)[:n]
    return np.asarray(data[0])[:n], np.asarray(data[1])[:n]
