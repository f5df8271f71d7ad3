"""ResultsRecorder: builds a run's `Results` as it goes (curves, the accuracy matrix, timing)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sequential_learning import backend
from sequential_learning.evaluation import evaluate_all
from sequential_learning.results import Results

#: Metrics besides the recorded one whose end-of-task values form a matrix of their own: the
#: task-incremental accuracy of a class-incremental stream.
OTHER_MATRICES = ("task_accuracy",)


class ResultsRecorder:
    """The manager's service that records what a run measures into its `Results`.

    After every epoch: every task's evaluation (when one was due) as a row of the curves, and
    the training logs; after every task: row `i` of the accuracy matrix (on the whole
    validation sets), the plugins' summaries and the timing.

    Example:
    ```python
    recorder = ResultsRecorder()
    recorder.start(config, tasks, evaluate_all(tasks, full=True))
    recorder.results.accuracy_matrix   # NaN until tasks finish
    ```
    """

    def __init__(self) -> None:
        self.results: Results | None = None
        self.metric = "accuracy"
        self.rows: dict[str, list] = {}
        self.train_rows: dict[str, list] = {}

    def start(self, config: dict, tasks: list, first: list[dict]) -> Results:
        """New results, from every task's evaluation before training (`first`)."""
        n = len(tasks)
        self.metric = pick_metric(first[0])
        self.results = Results(
            config=config,
            task_names=[t.name for t in tasks],
            accuracy_matrix=np.full((n, n), np.nan),
            baseline=np.array([r[self.metric] for r in first]),
            history={k: np.zeros((0, n)) for k in first[0]},
            metric=self.metric,
            higher_is_better=tasks[0].higher_is_better,
            timing={"task_seconds": [], "importance_seconds": [], "total_seconds": 0.0},
            # Masked unseen classes score 0 before their task: no forward transfer to measure.
            forward_transfer=all(t.active_classes is None for t in tasks),
            backend=backend.name(),
        )
        self.rows = {k: [] for k in first[0]}
        self.train_rows = {}
        return self.results

    def resume(self, results: Results, config: dict, epochs: list[int], done: int) -> Results:
        """Continues `results` (read from a checkpoint after `done` tasks): only the epochs of
        finished tasks are kept (an interrupted task restarts from its start)."""
        self.results = results
        results.config = config
        results.backend = backend.name()  # the backend that finishes the run
        self.metric = results.metric
        keep = sum(epochs[:done])
        results.epoch_task = results.epoch_task[:keep]
        rows = sum(1 for e in results.history_epochs if e <= keep)
        results.evaluated_epochs = results.history_epochs[:rows]
        self.rows = {k: [list(r) for r in v[:rows]] for k, v in results.history.items()}
        self.train_rows = {k: list(v[:keep]) for k, v in results.train_history.items()}
        for key in ("task_seconds", "importance_seconds"):
            results.timing[key] = list(results.timing.get(key, []))[:done]
        results.importance_summary = results.importance_summary[:done]
        results.task_summaries = results.task_summaries[:done]
        results.timing["resumed_after_task"] = done
        return results

    def last_value(self, index: int) -> float:
        """Task `index`'s recorded metric at the last evaluation (NaN before any)."""
        rows = self.rows[self.metric]
        return rows[-1][index] if rows else math.nan

    def after_training_epoch(self, manager: Any) -> None:
        """Records the epoch: the evaluation (when there was one) and the training logs."""
        results = self.results
        evaluations = manager.evaluations
        if evaluations is not None:
            for name in self.rows:
                self.rows[name].append([e[name] for e in evaluations])
            results.evaluated_epochs.append(manager.clock.global_epoch)
        done = len(results.epoch_task)  # epochs before this one
        for name, value in manager.logs.items():
            # A log that appears later (a penalty) is NaN in the epochs before it.
            self.train_rows.setdefault(name, [math.nan] * done).append(float(value))
        results.history = {k: np.array(v) for k, v in self.rows.items()}
        results.train_history = {k: np.array(v) for k, v in self.train_rows.items()}
        results.epoch_task.append(manager.clock.task_index)

    def end_task(self, manager: Any) -> None:
        """Row `index` of R: the evaluation at the end of this task's last epoch (on the whole
        validation sets when the curves use a subset)."""
        index = manager.clock.task_index
        if manager.eval_subset is None:
            last = {name: rows[-1] for name, rows in self.rows.items()}
        else:
            full = evaluate_all(manager.tasks, full=True)
            last = {name: [e[name] for e in full] for name in full[0]}
        self.results.accuracy_matrix[index] = last[self.metric]
        for name, row in last.items():
            if name in OTHER_MATRICES:
                matrix = self.results.matrices.setdefault(
                    name, np.full(self.results.accuracy_matrix.shape, np.nan))
                matrix[index] = row

    def record_task(self, manager: Any, importance_seconds: float) -> None:
        """Records the plugins' summaries and matrix rows (`Experience.matrices`) of the task
        that ended, and its timing."""
        results, exp = self.results, manager.experience
        results.importance_summary.append(exp.summary.pop("importance", {}))
        results.task_summaries.append(exp.summary)
        for name, row in exp.matrices.items():  # the plugins' own end-of-task matrices
            matrix = results.matrices.setdefault(
                name, np.full(results.accuracy_matrix.shape, np.nan))
            matrix[exp.index] = row
        results.timing["importance_seconds"].append(importance_seconds)
        results.timing["task_seconds"].append(manager.clock.task_seconds())
        results.completed_tasks = exp.index + 1


def pick_metric(evaluation: dict) -> str:
    """The metric the accuracy matrix records: accuracy if there is one, else the first.

    Looks for `accuracy`, `sparse_categorical_accuracy` and `compile_metrics`, in that order;
    then the first metric that is not `loss`; `loss` itself when there is no other (a regression
    task compiled without metrics).

    Args:
        evaluation: one task's evaluation, `{metric_name: value}`.

    Returns:
        The metric's name.

    Example:
    ```python
    pick_metric({"loss": 0.3, "accuracy": 0.9}), pick_metric({"loss": 0.3, "mse": 0.1})
    # ('accuracy', 'mse')
    ```
    """
    for name in ("accuracy", "sparse_categorical_accuracy", "compile_metrics"):
        if name in evaluation:
            return name
    names = [k for k in evaluation if k != "loss"]
    return names[0] if names else "loss"
