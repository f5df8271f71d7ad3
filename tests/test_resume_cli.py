"""Resume after SIGKILL (a real subprocess killed during task 3), and SIGINT's message.

With `--deterministic` (TensorFlow op determinism) the resumed run's accuracy matrix equals an
uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sequential_learning.cli import main

ARGS = ["--benchmark", "split-digits", "--method", "fisher", "--epochs", "4", "--hidden", "32",
        "--fisher-samples", "100", "--deterministic"]


def _seql(*argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "sequential_learning.cli", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _completed(run_dir):
    try:
        return json.loads((run_dir / "results.json").read_text())["completed_tasks"]
    except (OSError, ValueError, KeyError):
        return 0


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    killed, full = tmp_path / "killed", tmp_path / "full"
    reference = _seql("run", *ARGS, "--out", str(full))
    victim = _seql("run", *ARGS, "--out", str(killed))
    deadline = time.time() + 240
    while _completed(killed) < 2 and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, victim.communicate()[1][-2000:]
    time.sleep(0.3)  # inside task 3
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert _completed(killed) in (2, 3), "the kill should land during task 3"
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-2000:]
    resumed = _seql("run", "--resume", str(killed))
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    a = json.loads((killed / "results.json").read_text())
    b = json.loads((full / "results.json").read_text())
    assert a["completed_tasks"] == b["completed_tasks"] == 5
    np.testing.assert_array_equal(np.array(a["accuracy_matrix"]), np.array(b["accuracy_matrix"]))


def test_resume_errors(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    (tmp_path / "results.json").write_text("{not json")
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "unreadable results.json" in capsys.readouterr().err


@pytest.mark.skipif(os.name != "posix", reason="SIGINT delivery as on POSIX")
def test_sigint_saves_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    proc = _seql("run", *ARGS, "--out", str(run))
    deadline = time.time() + 240
    while _completed(run) < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert f"resume with: seql run --resume {run}" in err
    assert _completed(run) >= 1
