"""The shared part of the plugins that keep a memory of past samples (`MemoryBuffer`).

Each keeps a buffer and the index of the task in training in a `keras.Variable` (the in-graph
hooks read it), sends buffer samples through their own task's head (the tasks so far), and
checkpoints the buffer. `replay`, `derpp`, `er-ace`, `mir`, `xder` and `gem` subclass it.
"""

from __future__ import annotations

import numpy as np

from sequential_learning.plugins.base import Experience, Plugin


class RehearsalPlugin(Plugin):
    """A plugin with a `MemoryBuffer` (`self.buffer`) and the training task's index
    (`self.current_task`, an int32 `keras.Variable`), both made in the subclass's `build`.

    Example:
    ```python
    class MyReplay(RehearsalPlugin):
        def build(self, run):
            self.buffer = buffer_for(run.tasks, 200, seed=run.seed)
            self.buffer.build()
            self.current_task = keras.Variable(0, dtype="int32", trainable=False)
    ```
    """

    def variables(self) -> list:
        """The buffer's variables (its seed generator's state included) and the task id."""
        return [*self.buffer.variables(), self.current_task]

    def routed_tasks(self, exp: Experience) -> int:
        """Every task so far: the buffer holds their samples."""
        return exp.index + 1

    def before_training_exp(self, exp: Experience) -> None:
        """The task id the in-graph hooks read."""
        self.current_task.assign(exp.index)

    def state(self) -> dict[str, np.ndarray]:
        """The buffer's contents (see `MemoryBuffer.state`)."""
        return self.buffer.state()

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restores the buffer (checked, see `MemoryBuffer.load_state`)."""
        self.buffer.load_state(state)
