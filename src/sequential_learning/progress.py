"""The progress line of a run on stderr: one updating line on a terminal, one line per epoch
into a file or a pipe (`task K/N  epoch E/M  accuracy 0.973  elapsed   7.6s  left ~  5.1s`)."""

from __future__ import annotations

import sys
from typing import Any


class ProgressLine:
    """The manager's service that shows the run's progress after every epoch.

    Args:
        prefix: True for the plain line, or a string put before it (e.g. a method's name in a
            comparison).

    Example:
    ```python
    manager = SequentialLearningManager(base, tasks, progress=True)   # uses ProgressLine
    ```
    """

    def __init__(self, prefix: bool | str = True) -> None:
        self.prefix = prefix

    def after_training_epoch(self, manager: Any) -> None:
        """Shows the line of the epoch that just ended."""
        clock = manager.clock
        index = clock.task_index
        elapsed = clock.elapsed()
        left = elapsed / clock.epochs_done * (clock.total_epochs - clock.epochs_done)
        metric = manager.recorder.metric
        if manager.evaluations is None:
            current = manager.recorder.last_value(index)
        else:
            current = manager.evaluations[index][metric]
        prefix = f"{self.prefix}  " if isinstance(self.prefix, str) else ""
        line = (
            f"{prefix}task {index + 1}/{len(manager.tasks)}  epoch {clock.epoch + 1}/"
            f"{clock.task_epochs}  {metric} {current:.3f}  elapsed {elapsed:5.1f}s  "
            f"left ~{left:5.1f}s"
        )
        # One updating line on a terminal; one line per epoch into a file or a pipe.
        sys.stderr.write(f"\r{line} " if terminal() else f"{line}\n")
        sys.stderr.flush()

    def after_training(self, manager: Any) -> None:
        """Ends the updating line (on a terminal)."""
        self.end()

    def on_failure(self, manager: Any) -> None:
        """Ends the updating line before the error is shown."""
        self.end()

    def end(self) -> None:
        """Ends the updating progress line (on a terminal) before anything else is printed."""
        if terminal():
            sys.stderr.write("\n")

    def note(self, text: str) -> None:
        """Writes a line of its own (e.g. what resuming found)."""
        sys.stderr.write(f"{text}\n")


def terminal() -> bool:
    """Whether stderr is a terminal (where a progress line can update in place).

    Returns:
        True for a terminal; False for a file or a pipe, or when stderr is closed or replaced by
        an object without `isatty`.

    Example:
    ```python
    updating = terminal()    # False under `seql run ... 2> log.txt`
    ```
    """
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


