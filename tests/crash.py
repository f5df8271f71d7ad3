"""Keras callbacks that stop a run part-way with an error, as a crash would, for the resume tests
(imported by test modules as `from crash import CrashAfterEpochs`; pytest collects no test here).

Epochs are counted over the whole run (every task's, as the manager calls `fit` once per task):
with E epochs per task, `CrashAfterEpochs(2 * E + 1)` fails after the first epoch of task 3.
Both raise `RuntimeError("simulated crash ...")`; a test checks it with
`pytest.raises(RuntimeError, match="simulated crash")`.
"""

from __future__ import annotations

import keras


class CrashAfterEpochs(keras.callbacks.Callback):
    """Fails at the end of the run's `epochs`-th epoch (only `on_epoch_end` is used)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.crash_at = epochs
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        if self.epochs == self.crash_at:
            raise RuntimeError(f"simulated crash after epoch {self.epochs} of the run")


class CrashInEpoch(keras.callbacks.Callback):
    """Fails in the middle of the run's `epoch`-th epoch, at its batch `batch` (0-based) or the
    first after it (only `on_epoch_begin` and `on_train_batch_begin` are used)."""

    def __init__(self, epoch: int, batch: int):
        super().__init__()
        self.crash_epoch, self.crash_batch = epoch, batch
        self.epochs = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs += 1

    def on_train_batch_begin(self, batch, logs=None):
        if self.epochs == self.crash_epoch and batch >= self.crash_batch:
            raise RuntimeError(f"simulated crash in epoch {self.epochs} of the run, at batch "
                               f"{batch}")
