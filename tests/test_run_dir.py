"""A run folder holds one run: `--overwrite` replaces it whole, `--resume` keeps its settings and
survives an unreadable results.json or a full disk, and file names from its JSON stay inside it."""

from __future__ import annotations

import errno
import json
import os
import shutil

import numpy as np
import pytest

from sequential_learning import checkpoint
from sequential_learning.cli import main
from sequential_learning.config import RunConfig, run_experiment
from sequential_learning.errors import RunDirError
from sequential_learning.rundir import claim_run_dir, inside, remove_temporary_files

SMALL = ["--benchmark", "split-digits", "--epochs", "1", "--hidden", "8", "--fisher-samples",
         "50", "--method", "fisher+replay", "--memory", "50"]


def _rollback(run, task: int) -> None:
    """The folder as a run stopped after `task` would have left it."""
    state_path = run / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    state.update(completed_tasks=task, weights=f"weights_after_task_{task}.npz",
                 consolidation=f"consolidation_after_task_{task}.npz",
                 results=f"results_after_task_{task}.json")
    state_path.write_text(json.dumps(state))
    shutil.copy(run / "checkpoint" / f"results_after_task_{task}.json", run / "results.json")


def test_overwrite_replaces_the_whole_run(finished_run_copy, tmp_path, capsys):
    run = finished_run_copy
    stale = run / "importance" / "task_9.npz"
    stale.write_bytes(b"from an earlier run")
    assert main(["run", *SMALL, "--method", "none", "--out", str(run), "--overwrite"]) == 0
    assert not stale.exists() and not (run / "importance").exists()  # none saves no Ω
    assert json.loads((run / "results.json").read_text())["config"]["method"] == "none"
    assert not (run / "importance.png").exists()


def test_the_python_api_refuses_a_folder_holding_a_run(finished_run_copy, tmp_path):
    run = finished_run_copy
    with pytest.raises(RunDirError, match="--overwrite"):
        run_experiment(RunConfig(benchmark="split-digits", method="none", epochs=1), run)


def test_resume_repeating_the_saved_settings_or_changing_how_it_runs(finished_run_copy, tmp_path):
    run = finished_run_copy
    _rollback(run, 4)
    assert main(["run", "--resume", str(run), *SMALL, "--tensorboard"]) == 0
    assert json.loads((run / "results.json").read_text())["completed_tasks"] == 5
    assert (run / "tensorboard").is_dir()


def test_resume_uses_the_checkpoint_copy_when_results_json_is_unreadable(finished_run_copy, tmp_path,
                                                                          capsys):
    run = finished_run_copy
    _rollback(run, 4)
    (run / "results.json").write_bytes(b"\x00garbage")
    assert main(["run", "--resume", str(run)]) == 0
    err = capsys.readouterr().err
    assert "cannot be read" in err and "results_after_task_4.json" in err
    results = json.loads((run / "results.json").read_text())
    assert results["completed_tasks"] == 5
    assert not np.isnan(np.array(results["accuracy_matrix"], dtype=float)).any()


def test_full_disk_is_one_line_and_the_run_resumes(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    real = checkpoint.atomic_write_bytes

    def full(path, data):
        if "after_task_2" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", full)
    assert main(["run", *SMALL, "--out", str(run)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1].startswith("seql: error: cannot write ") and "the disk is full" in err[-1]
    assert "weights_after_task_2.npz" in err[-1]
    assert f"the checkpoint after task 1 is intact; resume with: seql run --resume {run}" in err[-1]
    assert not list(run.rglob(".*.tmp"))
    monkeypatch.setattr(checkpoint, "atomic_write_bytes", real)  # space freed
    assert main(["run", "--resume", str(run)]) == 0
    err = capsys.readouterr().err
    # results.json had recorded task 2 before its checkpoint failed: said, and task 2 redone.
    assert "task 2 is trained again" in err
    assert json.loads((run / "results.json").read_text())["completed_tasks"] == 5


def test_a_failed_new_run_leaves_no_folder(tmp_path, capsys):
    run = tmp_path / "new"
    assert main(["run", "--benchmark", "function-approximation", "--method", "lwf",
                 "--epochs", "1", "--out", str(run)]) == 2
    assert not run.exists()


def test_claim_run_dir(tmp_path):
    assert claim_run_dir(tmp_path / "a").is_dir()
    assert claim_run_dir(tmp_path / "a") == tmp_path / "a"  # empty: fine
    (tmp_path / "a" / "results.json").write_text("{}")
    with pytest.raises(RunDirError, match="--resume"):
        claim_run_dir(tmp_path / "a")
    claim_run_dir(tmp_path / "a", overwrite=True)
    assert list((tmp_path / "a").iterdir()) == []
    # an interrupted comparison: only a method's sub-folder is a run
    (tmp_path / "b" / "fisher").mkdir(parents=True)
    (tmp_path / "b" / "fisher" / "results.json").write_text("{}")
    claim_run_dir(tmp_path / "b", overwrite=True)
    assert list((tmp_path / "b").iterdir()) == []
    # a multi-worker chief: the other workers' folders are theirs, neither counted nor cleared
    (tmp_path / "b" / "worker_1").mkdir()
    (tmp_path / "b" / "worker_1" / "results.json").write_text("{}")
    claim_run_dir(tmp_path / "b", others=r"worker_\d+")
    (tmp_path / "b" / "results.json").write_text("{}")
    claim_run_dir(tmp_path / "b", overwrite=True, others=r"worker_\d+")
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["worker_1"]


def test_inside_refuses_names_leading_out(tmp_path):
    (tmp_path / "c").mkdir()
    assert inside(tmp_path / "c", "w.npz", "w") == tmp_path / "c" / "w.npz"
    for name in ("../w.npz", "/etc/passwd", "a/../../w.npz", 3, None, ""):
        with pytest.raises(RunDirError):
            inside(tmp_path / "c", name, "state.json: weights")
    (tmp_path / "c" / "link").symlink_to(tmp_path)
    with pytest.raises(RunDirError, match="outside"):
        inside(tmp_path / "c", "link/w.npz", "state.json: weights")


def test_remove_temporary_files(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    keep = [tmp_path / "results.json", tmp_path / "checkpoint" / "state.json",
            tmp_path / ".hidden"]
    drop = [tmp_path / ".results.json.ab12.tmp",
            tmp_path / "checkpoint" / ".weights_after_task_4.npz.x9.tmp",
            tmp_path / ".task_2.tmp.keras"]
    for path in keep + drop:
        path.write_text("x")
    assert sorted(remove_temporary_files(tmp_path)) == sorted(drop)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in drop)


def test_run_dir_spells_every_path_of_a_run_folder(tmp_path):
    from sequential_learning.rundir import RunDir

    run = RunDir(tmp_path)
    assert run.results == tmp_path / "results.json"
    assert run.history == tmp_path / "history.csv"
    assert run.config == tmp_path / "config.yaml"
    assert run.tensorboard == tmp_path / "tensorboard"
    assert run.model(3) == tmp_path / "models" / "task_3.keras"
    assert run.model_temporary(3) == tmp_path / "models" / ".task_3.tmp.keras"
    assert run.sample(2) == tmp_path / "samples" / "task_2.npz"
    assert run.importance_file(1) == tmp_path / "importance" / "task_1.npz"
    assert run.checkpoint_state == tmp_path / "checkpoint" / "state.json"
    assert run.checkpoint_weights(2) == tmp_path / "checkpoint" / "weights_after_task_2.npz"
    assert run.checkpoint_plugins(2) == tmp_path / "checkpoint" / "consolidation_after_task_2.npz"
    assert run.checkpoint_results(2) == tmp_path / "checkpoint" / "results_after_task_2.json"
    assert os.fspath(run) == str(tmp_path)
    # Task files come back in task order (task_10 after task_9), not in the names' order.
    run.models.mkdir()
    for k in (10, 9, 1):
        run.model(k).touch()
    assert run.task_models() == [run.model(1), run.model(9), run.model(10)]
    # A model being saved is a temporary file that resume removes.
    run.model_temporary(4).touch()
    assert remove_temporary_files(tmp_path) == [run.model_temporary(4)]
