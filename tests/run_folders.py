"""Helpers that change a copy of a finished run folder, for the tests of resuming and bad input
(imported by test modules beside it; pytest collects no test here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def edit_state(run: Path, **changes) -> None:
    """Sets keys of the run's `checkpoint/state.json`."""
    path = run / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    state.update(changes)
    path.write_text(json.dumps(state))


def rollback(run: Path, task: int) -> None:
    """The folder as a run stopped after `task` would have left it (its checkpoint and
    results.json those of that task)."""
    edit_state(run, completed_tasks=task, weights=f"weights_after_task_{task}.npz",
               consolidation=f"consolidation_after_task_{task}.npz",
               results=f"results_after_task_{task}.json")
    shutil.copy(run / "checkpoint" / f"results_after_task_{task}.json", run / "results.json")
