"""TensorBoard logs of a run: each task's training, and every task's validation metrics.

`TensorBoardLogger(log_dir)` writes

    log_dir/task_1/train/, task_2/train/, ...   Keras' own `keras.callbacks.TensorBoard` for each
                                                task's `fit` (`epoch_loss`, ... per epoch of that
                                                task)
    log_dir/validation/                         every task's validation metrics after every epoch,
                                                against the global epoch (counted from 1; step 0 is
                                                the untrained model): `accuracy/task_1`,
                                                `loss/task_2`, ..., and `training_task` (the task
                                                in training, counted from 1)

The validation scalars are written with TensorFlow's core `tf.summary.write` and the scalar
plugin's metadata, so they need no `tensorboard` package. Keras' TensorBoard callback does need it
(for `tf.summary.scalar`); without it each task's epoch metrics are written by a small callback of
our own with the same tag names (`epoch_loss`, ...). Viewing the logs needs `pip install
tensorboard`, then `tensorboard --logdir RUN_DIR/tensorboard`.

The logs need the TensorFlow backend (its summary writer; Keras's TensorBoard callback needs
TensorFlow too). On JAX and PyTorch the logger warns once, on stderr, and writes nothing: the run
goes on.

Example:
```python
logger = TensorBoardLogger("runs/mine/tensorboard")
manager = SequentialLearningManager(base, tasks, tensorboard_dir="runs/mine/tensorboard")
```
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras

from sequential_learning import backend

#: The one-line warning on a backend other than TensorFlow.
NEEDS_TENSORFLOW = ("seql: warning: TensorBoard logs need the TensorFlow backend (this runs {}); "
                    "no TensorBoard logs are written\n")


def _scalar_metadata():
    """The metadata TensorBoard's scalar plugin attaches to a scalar (its ScalarPluginData,
    version 0, serialises to empty content)."""
    from tensorflow.core.framework import summary_pb2

    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars", content=b"")
    )


def tensorboard_installed() -> bool:
    """Whether the `tensorboard` package (needed by `keras.callbacks.TensorBoard`) is importable.

    Returns:
        True when it is installed (found without importing it).

    Example:
    ```python
    if not tensorboard_installed():
        callback = EpochScalars(log_dir)
    ```
    """
    return importlib.util.find_spec("tensorboard") is not None


def write_scalar(tag: str, value: float, step: int) -> bool:
    """Writes one scalar to the default summary writer (no `tensorboard` package needed).

    It goes through TensorFlow's core `tf.summary.write` with the scalar plugin's metadata, so
    TensorBoard shows it as a scalar.

    Args:
        tag: the scalar's name, e.g. `"accuracy/task_1"`.
        value: the value (stored as float32).
        step: the step on TensorBoard's x axis.

    Returns:
        True if written, False when no default writer is set.

    Example:
    ```python
    with tf.summary.create_file_writer("runs/x/tensorboard/validation").as_default():
        write_scalar("accuracy/task_1", 0.93, step=3)
    ```
    """
    import tensorflow as tf

    return bool(
        tf.summary.write(
            tag, tf.constant(float(value), tf.float32), step=int(step), metadata=_scalar_metadata()
        )
    )


class TensorBoardLogger:
    """Writes a run's TensorBoard logs under one folder (see the module's docstring).

    On a backend other than TensorFlow it warns once (on stderr) and writes nothing.

    Args:
        log_dir: the folder, usually `RUN_DIR/tensorboard`.
        histogram_freq: passed to `keras.callbacks.TensorBoard` (weight histograms every this
            many epochs; 0: none).
        write_graph: passed to `keras.callbacks.TensorBoard`.

    Example:
    ```python
    logger = TensorBoardLogger("runs/mine/tensorboard")
    model.fit(..., callbacks=[logger.task_callback(0)])
    logger.log_epoch(1, [{"accuracy": 0.9, "loss": 0.3}], training_task=0)
    logger.close()
    ```
    """

    def __init__(
        self, log_dir: str | os.PathLike, histogram_freq: int = 0, write_graph: bool = True
    ) -> None:
        self.log_dir = Path(log_dir)
        self.histogram_freq = int(histogram_freq)
        self.write_graph = bool(write_graph)
        self._writer = None
        #: Whether logs are written (TensorFlow only).
        self.enabled = backend.is_tensorflow()
        if not self.enabled:
            sys.stderr.write(NEEDS_TENSORFLOW.format(backend.name()))

    @property
    def validation_dir(self) -> Path:
        """Where the validation scalars go."""
        return self.log_dir / "validation"

    def task_dir(self, index: int) -> Path:
        """The log folder of task `index` (counted from 0): `log_dir/task_{index + 1}`."""
        return self.log_dir / f"task_{index + 1}"

    def task_callback(self, index: int) -> keras.callbacks.Callback:
        """A callback for task `index`'s `fit`: Keras' TensorBoard, or `EpochScalars` without the
        `tensorboard` package."""
        log_dir = self.task_dir(index)
        if tensorboard_installed():
            return keras.callbacks.TensorBoard(
                log_dir=str(log_dir),
                histogram_freq=self.histogram_freq,
                write_graph=self.write_graph,
                update_freq="epoch",
            )
        return EpochScalars(log_dir / "train")

    def log_epoch(
        self,
        step: int,
        evaluations: Sequence[Mapping[str, float]],
        training_task: int | None = None,
    ) -> None:
        """Writes every task's validation metrics at global epoch `step`.

        Args:
            step: the global epoch (counted from 1; 0 for the untrained model).
            evaluations: one `{metric: value}` per task, in task order.
            training_task: the index (from 0) of the task in training, or None.
        """
        if not self.enabled:
            return
        import tensorflow as tf

        if self._writer is None:
            self.validation_dir.mkdir(parents=True, exist_ok=True)
            self._writer = tf.summary.create_file_writer(str(self.validation_dir))
        with self._writer.as_default():
            for j, evaluation in enumerate(evaluations):
                for name, value in evaluation.items():
                    write_scalar(f"{name}/task_{j + 1}", value, step)
            if training_task is not None:
                write_scalar("training_task", training_task + 1, step)
        self._writer.flush()

    # -- the manager's hooks -----------------------------------------------------------------------
    def before_training(self, manager: Any) -> None:
        """Logs the untrained model's evaluation (step 0) of a new run."""
        if manager.evaluations is not None:
            self.log_epoch(0, manager.evaluations)

    def task_callbacks(self, manager: Any) -> list[keras.callbacks.Callback]:
        """The callback for the `fit` of the task starting (see `task_callback`); none off
        TensorFlow."""
        if not self.enabled:
            return []
        return [self.task_callback(manager.clock.task_index)]

    def after_training_epoch(self, manager: Any) -> None:
        """Logs every task's evaluation, when the epoch that ended was evaluated."""
        if manager.evaluations is not None:
            self.log_epoch(manager.clock.global_epoch, manager.evaluations,
                           training_task=manager.clock.task_index)

    def after_training(self, manager: Any) -> None:
        """Closes the validation writer at the end of the run."""
        self.close()

    def close(self) -> None:
        """Flushes and closes the validation writer (a later `log_epoch` opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class EpochScalars(keras.callbacks.Callback):
    """A Keras callback writing `fit`'s epoch logs as scalars `epoch_<name>` (Keras' tag names).

    Used in place of `keras.callbacks.TensorBoard` where the `tensorboard` package is missing;
    the step is the epoch of the `fit` (counted from 0), and the writer is made at the first
    epoch's end and closed when training ends.

    Args:
        log_dir: the event file's folder (made if missing).

    Example:
    ```python
    model.fit(x, y, epochs=3, callbacks=[EpochScalars("runs/x/tensorboard/task_1/train")])
    ```
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        super().__init__()
        self.log_dir = Path(log_dir)
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        if self._writer is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._writer = tf.summary.create_file_writer(str(self.log_dir))
        with self._writer.as_default():
            for name, value in (logs or {}).items():
                write_scalar(f"epoch_{name}", float(value), epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
