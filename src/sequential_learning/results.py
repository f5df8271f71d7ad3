"""Results: what a run produced; saved and loaded as JSON + CSV with atomic writes."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sequential_learning.errors import SeqlError
from sequential_learning.metrics import compute_metrics
from sequential_learning.rundir import RunDir


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to `path` atomically, as UTF-8 (see `atomic_write_bytes`).

    Args:
        path: the file; its folder is made if missing.
        text: the file's new content.

    Returns:
        None.

    Example:
    ```python
    atomic_write_text("runs/x/results.json", json.dumps(to_jsonable(data), indent=2))
    ```
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically: a temporary file in the same folder, then a rename.

    The temporary file (`.<name>.<random>.tmp`) is flushed and fsynced before it replaces
    `path`, and gets the usual permissions (0666 less the umask); on any failure it is removed
    and the old `path`, if any, is left as it was.

    Args:
        path: the file; its folder is made if missing.
        data: the file's new content.

    Returns:
        None.

    Raises:
        OSError: the folder or file cannot be written (disk full, no permission, ...).

    Example:
    ```python
    atomic_write_bytes("runs/x/plot.png", png_bytes)
    ```
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def to_jsonable(value: Any) -> Any:
    """Converts a value, recursively, to types `json.dumps` takes.

    Dicts (keys as strings), lists and tuples (as lists), NumPy arrays (as nested lists), NumPy
    numbers, paths (as strings) and enums (as their value); non-finite floats become None, so
    the JSON is strict. Other values are returned unchanged.

    Args:
        value: the value.

    Returns:
        The converted value.

    Example:
    ```python
    to_jsonable({"acc": np.float32(0.5), "bwt": float("nan"), 1: Path("a")})
    # {'acc': 0.5, 'bwt': None, '1': 'a'}
    ```
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and hasattr(value, "name"):  # enums
        return value.value
    return value


def _array(rows, width: int | None = None) -> np.ndarray:
    """JSON rows (None for missing/NaN) back to a float array."""
    return np.array(
        [[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64
    ).reshape(-1, width or (len(rows[0]) if rows else 0))


@dataclass
class Results:
    """The outcome of `SequentialLearningManager.train_all()`.

    Attributes:
        config: the resolved settings of the run.
        task_names: one name per task.
        accuracy_matrix: `R[i, j]`, the recorded metric on task j after training task i (rows
            of tasks not yet trained are NaN in partial results).
        baseline: the recorded metric of the untrained model on each task (for FWT).
        history: `{metric: array[evaluation, task]}`: every task, evaluated after the global
            epochs listed in `evaluated_epochs` (every epoch unless the run evaluated every k
            epochs; the last epoch of each task always).
        train_history: `{metric: array[global_epoch]}`: training metrics of the task in training.
        epoch_task: for each global epoch, the index of the task being trained.
        evaluated_epochs: the global epochs (counted from 1) of the rows of `history`; empty
            means one row per epoch.
        timing: seconds per task, in importance computation, and in total.
        importance_summary: per task, per covered variable: mean, max, fraction of zeros.
        metric: the name of the metric in the accuracy matrix.
        higher_is_better: its direction.
        completed_tasks: how many tasks have finished.
        matrices: end-of-task matrices of other metrics, `{name: R}` (`task_accuracy`: the
            task-incremental accuracy of a class-incremental run).
        task_summaries: per task, what the method's plugins reported (buffer composition, ...).
        forward_transfer: whether FWT is defined (not in a class-incremental stream whose
            unseen classes are masked: a task scores 0 before it is trained).
        backend: the Keras backend the run trained on (`tensorflow`, `jax`, `torch`; empty when
            unknown: results written before it was recorded).
        stream_curve: an online run's evaluation points along the stream (samples seen, each
            task's metric, the mean over the tasks seen and over all; see
            `sequential_learning.online.StreamCurve`); empty for an offline run.

    Example:
    ```python
    results = manager.train_all()
    results.metrics["acc"]; results.save("runs/mine"); Results.load("runs/mine")
    ```
    """

    config: dict
    task_names: list[str]
    accuracy_matrix: np.ndarray
    baseline: np.ndarray
    history: dict[str, np.ndarray]
    train_history: dict[str, np.ndarray] = field(default_factory=dict)
    epoch_task: list[int] = field(default_factory=list)
    timing: dict = field(default_factory=dict)
    importance_summary: list = field(default_factory=list)
    metric: str = "accuracy"
    higher_is_better: bool = True
    completed_tasks: int = 0
    evaluated_epochs: list[int] = field(default_factory=list)
    matrices: dict[str, np.ndarray] = field(default_factory=dict)
    task_summaries: list = field(default_factory=list)
    forward_transfer: bool = True
    backend: str = ""
    stream_curve: dict = field(default_factory=dict)

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def history_epochs(self) -> list[int]:
        """The global epoch (counted from 1) of each row of `history`."""
        rows = len(next(iter(self.history.values()))) if self.history else 0
        if self.evaluated_epochs:
            return list(self.evaluated_epochs)[:rows]
        return list(range(1, rows + 1))

    @property
    def task_boundaries(self) -> list[int]:
        """Global epochs (counted from 1) at which each task's training ended."""
        bounds = []
        for e in range(len(self.epoch_task)):
            if e + 1 == len(self.epoch_task) or self.epoch_task[e + 1] != self.epoch_task[e]:
                bounds.append(e + 1)
        return bounds

    @property
    def metrics(self) -> dict[str, float]:
        """ACC, BWT, FWT and forgetting over the tasks completed so far; with a task-incremental
        matrix beside a class-incremental one, also `task_il_acc`, `task_il_bwt` and
        `task_il_forgetting`; for every other matrix of `matrices` (a plugin's, e.g. iCaRL's
        `nme_accuracy`) its ACC, BWT and forgetting under its name without `_accuracy`
        (`nme_acc`, `nme_bwt`, `nme_forgetting`)."""
        k = self.completed_tasks
        nan = float("nan")
        if k == 0:
            return {"acc": nan, "bwt": nan, "fwt": nan, "forgetting": nan}
        out = compute_metrics(self.accuracy_matrix[:k, :k], self.baseline[:k],
                              self.higher_is_better)
        if not self.forward_transfer:
            out["fwt"] = nan
        for name, matrix in self.matrices.items():
            prefix = "task_il" if name == "task_accuracy" else name.removesuffix("_accuracy")
            more = compute_metrics(matrix[:k, :k], self.baseline[:k])
            out.update({f"{prefix}_{key}": more[key] for key in ("acc", "bwt", "forgetting")})
        return out

    def to_dict(self) -> dict:
        """The JSON document written as `results.json`."""
        return to_jsonable(
            {
                "config": self.config,
                "task_names": self.task_names,
                "metric": self.metric,
                "higher_is_better": self.higher_is_better,
                "completed_tasks": self.completed_tasks,
                "accuracy_matrix": self.accuracy_matrix,
                "baseline": self.baseline,
                "metrics": self.metrics,
                "history": self.history,
                "train_history": self.train_history,
                "epoch_task": self.epoch_task,
                "evaluated_epochs": self.history_epochs,
                "task_boundaries": self.task_boundaries,
                "timing": self.timing,
                "importance_summary": self.importance_summary,
                "matrices": self.matrices,
                "task_summaries": self.task_summaries,
                "forward_transfer": self.forward_transfer,
                "backend": self.backend,
                # An online run's curve along the stream (offline results stay as they were).
                **({"stream_curve": self.stream_curve} if self.stream_curve else {}),
            }
        )

    def history_csv(self) -> str:
        """The history as CSV: one row per global epoch, one column per metric and task."""
        out = io.StringIO()
        writer = csv.writer(out)
        names = sorted(self.history)
        header = ["epoch", "training_task"]
        for name in names:
            header += [f"{name}/task_{j + 1}" for j in range(self.num_tasks)]
        train_names = sorted(self.train_history)
        header += [f"train_{n}" for n in train_names]
        writer.writerow(header)
        rows = {epoch: k for k, epoch in enumerate(self.history_epochs)}
        for e, task in enumerate(self.epoch_task):
            row: list[Any] = [e + 1, task + 1]
            for name in names:
                if e + 1 in rows:  # an epoch that was not evaluated leaves its cells empty
                    row += [f"{v:.6g}" for v in self.history[name][rows[e + 1]]]
                else:
                    row += [""] * self.num_tasks
            row += [f"{self.train_history[n][e]:.6g}" for n in train_names]
            writer.writerow(row)
        return out.getvalue()

    def save(self, directory: str | os.PathLike) -> Path:
        """Writes `results.json` and `history.csv` into `directory` (atomically).

        Returns:
            The path of `results.json`.
        """
        run = RunDir(directory)
        path = run.results
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, allow_nan=False))
        atomic_write_text(run.history, self.history_csv())
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Results:
        """Reads a run's `results.json` (a directory or the file itself)."""
        path = Path(directory)
        if path.is_dir():
            path = RunDir(path).results
        if not path.exists():
            raise SeqlError(f"No results.json at {path}: is this a run directory?")
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SeqlError(f"{path} is not valid JSON: {error}") from None
        try:
            return cls._from_dict(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            what = f"key {error}" if isinstance(error, KeyError) else " ".join(str(error).split())
            raise SeqlError(f"{path} is not a seql results file ({type(error).__name__}: "
                            f"{what[:120]}); expected what `seql run` writes") from None

    @classmethod
    def _from_dict(cls, doc: dict) -> Results:
        if not isinstance(doc, dict):
            raise TypeError(f"it holds a {type(doc).__name__}, not a mapping")
        t = len(doc["task_names"])
        results = cls(
            config=doc["config"],
            task_names=doc["task_names"],
            accuracy_matrix=_array(doc["accuracy_matrix"], t),
            baseline=np.array([np.nan if v is None else v for v in doc["baseline"]]),
            history={k: _array(v, t) for k, v in doc["history"].items()},
            train_history={
                k: np.array([np.nan if x is None else x for x in v])
                for k, v in doc.get("train_history", {}).items()
            },
            epoch_task=list(doc["epoch_task"]),
            evaluated_epochs=[int(e) for e in doc.get("evaluated_epochs", [])],
            timing=doc.get("timing", {}),
            importance_summary=doc.get("importance_summary", []),
            metric=doc.get("metric", "accuracy"),
            higher_is_better=doc.get("higher_is_better", True),
            completed_tasks=int(doc.get("completed_tasks", t)),
            matrices={k: _array(v, t) for k, v in doc.get("matrices", {}).items()},
            task_summaries=doc.get("task_summaries", []),
            forward_transfer=bool(doc.get("forward_transfer", True)),
            backend=str(doc.get("backend", "")),
            stream_curve=dict(doc.get("stream_curve") or {}),
        )
        n = results.num_tasks
        if (results.accuracy_matrix.shape != (n, n) or results.baseline.shape != (n,)
                or not 0 <= results.completed_tasks <= n):
            raise ValueError(f"the accuracy matrix is {results.accuracy_matrix.shape}, the "
                             f"baseline {results.baseline.shape} and completed_tasks "
                             f"{results.completed_tasks} for {n} tasks")
        return results
