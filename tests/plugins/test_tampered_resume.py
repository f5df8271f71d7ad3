"""Resuming a run whose checkpointed buffer state was changed fails with one line naming the key.

Kept apart from test_tampered_state.py (which runs on every backend): it resumes a finished CLI
run, the session's `finished_run`.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np


def test_resuming_from_a_buffer_filled_beyond_its_capacity_says_so(finished_run, tmp_path,
                                                                   capsys):
    from sequential_learning.cli import main

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    folder = run / "checkpoint"
    state = json.loads((folder / "state.json").read_text())
    state.update(completed_tasks=2, weights="weights_after_task_2.npz",
                 consolidation="consolidation_after_task_2.npz",
                 results="results_after_task_2.json")
    (folder / "state.json").write_text(json.dumps(state))
    shutil.copy(folder / "results_after_task_2.json", run / "results.json")
    path = folder / "consolidation_after_task_2.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["1.replay.filled"] = np.int64(10**9)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())

    assert main(["run", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "replay buffer: checkpointed state 'filled' is 1000000000; expected values 0..50" in err
