"""Resume after SIGKILL (a real subprocess killed during task 3), and SIGINT's message.

With `--deterministic` (TensorFlow op determinism) the resumed run's accuracy matrix equals an
uninterrupted run's, with a consolidation penalty and a replay buffer in the checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from sequential_learning.cli import main

pytestmark = pytest.mark.all_backends

ARGS = ["--benchmark", "split-digits", "--method", "fisher+replay", "--memory", "200",
        "--epochs", "4", "--hidden", "32", "--fisher-samples", "100", "--deterministic"]


def _default_sigint() -> None:
    # A process started from a background job inherits SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: the child gets SIGINT's default back before it starts.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _seql(*argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "sequential_learning.cli", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint, **kwargs)


def _temporary_files(run_dir):
    return sorted(str(p) for p in run_dir.rglob(".*") if ".tmp" in p.name)


def _completed(run_dir):
    try:
        return json.loads((run_dir / "results.json").read_text())["completed_tasks"]
    except (OSError, ValueError, KeyError):
        return 0


def _wait_for_line(proc, prefix: str) -> None:
    """Reads the run's progress (one line per epoch into a pipe) until a line starts with
    `prefix`: a signal that the run is where the test wants it, not a guess of its speed."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(prefix):
            return
    raise AssertionError(f"the run ended before {prefix!r}: {''.join(seen)[-2000:]}")


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    killed, full = tmp_path / "killed", tmp_path / "full"
    reference = _seql("run", *ARGS, "--out", str(full))
    victim = _seql("run", *ARGS, "--out", str(killed))
    _wait_for_line(victim, "task 3/5")  # task 3 has trained an epoch: kill it mid-task
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert _completed(killed) == 2
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-2000:]
    # What a kill during a write leaves (an atomic write's and a model save's temporary files).
    (killed / "checkpoint" / ".weights_after_task_3.npz.x1y2z3.tmp").write_bytes(b"half")
    (killed / "models" / ".task_3.tmp.keras").write_bytes(b"half")
    resumed = _seql("run", "--resume", str(killed))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert _temporary_files(killed) == []
    a = json.loads((killed / "results.json").read_text())
    b = json.loads((full / "results.json").read_text())
    assert a["completed_tasks"] == b["completed_tasks"] == 5
    np.testing.assert_array_equal(np.array(a["accuracy_matrix"]), np.array(b["accuracy_matrix"]))
    # The replay buffer was restored, not refilled: the same samples after every task.
    assert a["task_summaries"] == b["task_summaries"]
    assert a["train_history"]["replay_loss"] == b["train_history"]["replay_loss"]


def test_resume_errors(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    (tmp_path / "results.json").write_text("{not json")
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "unreadable results.json" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery as on POSIX")
def test_sigint_saves_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    # Into a pipe the run prints one progress line per epoch: the signal goes once task 2 has
    # begun (task 1 is saved), whatever the machine's speed; 20 epochs a task leave it mid-task.
    proc = _seql("run", *ARGS, "--epochs", "20", "--out", str(run))
    _wait_for_line(proc, "task 2/5")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"resume with: seql run --resume {run}" in err
    assert "interrupted during task 2" in err
    assert _completed(run) == 1
