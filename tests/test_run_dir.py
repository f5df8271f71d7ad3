"""A run folder holds one run: `--overwrite` replaces it whole, `--resume` keeps its settings and
survives an unreadable results.json or a full disk, and file names from its JSON stay inside it."""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from run_folders import rollback
from sequential_learning import backend, checkpoint
from sequential_learning.cli import main
from sequential_learning.config import RunConfig, run_experiment
from sequential_learning.errors import RunDirError
from sequential_learning.rundir import claim_run_dir, inside, remove_temporary_files

pytestmark = pytest.mark.all_backends

SMALL = ["--benchmark", "split-digits", "--epochs", "1", "--hidden", "8", "--fisher-samples",
         "50", "--method", "fisher+replay", "--memory", "50"]


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
    rollback(run, 4)
    assert main(["run", "--resume", str(run), *SMALL, "--tensorboard"]) == 0
    assert json.loads((run / "results.json").read_text())["completed_tasks"] == 5
    # TensorBoard logs need TensorFlow; elsewhere a warning and no logs.
    assert (run / "tensorboard").is_dir() == backend.is_tensorflow()


def test_resume_uses_the_checkpoint_copy_when_results_json_is_unreadable(finished_run_copy, tmp_path,
                                                                          capsys):
    run = finished_run_copy
    rollback(run, 4)
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


def test_run_dir_spells_the_paths_of_commands_comparisons_and_sweeps(tmp_path):
    from sequential_learning.rundir import RunDir

    run = RunDir(tmp_path)
    assert run.environment_json == tmp_path / "environment.json"
    assert run.report_html == tmp_path / "report.html"
    assert run.task_curves_png == tmp_path / "task_curves.png"
    assert run.accuracy_matrix_png == tmp_path / "accuracy_matrix.png"
    assert run.importance_png == tmp_path / "importance.png"
    assert run.explain_dir == tmp_path / "explain"
    assert run.augment_dir == tmp_path / "augment"
    assert run.comparison_json == tmp_path / "comparison.json"
    assert run.comparison_png == tmp_path / "comparison.png"
    assert run.method_run("fisher").results == tmp_path / "fisher" / "results.json"
    assert run.sweep_json == tmp_path / "sweep.json"
    assert run.sweep_png == tmp_path / "sweep.png"
    assert run.sweep_run(100.0).root == tmp_path / "lambda_100"
    assert run.sweep_run(0.5).config == tmp_path / "lambda_0.5" / "config.yaml"


def _layout_names() -> tuple[set[str], set[tuple[str, str]]]:
    """The names `RunDir` spells: whole path parts (`results.json`, `models`, ...) and the
    `(prefix, suffix)` of per-task or per-λ ones (`("task_", ".keras")`, `("lambda_", "")`, ...),
    read off every path that `RunDir("R")`'s properties and one-argument methods return."""
    from pathlib import Path

    from sequential_learning.rundir import RunDir

    run, found = RunDir("R"), []
    for name, attr in vars(RunDir).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, property):
            found.append(getattr(run, name))
        elif callable(attr):
            try:
                found.append(getattr(run, name)(7))
            except TypeError:  # no argument, or not a number (method_run takes a name)
                pass
    names, prefixes = set(), set()
    for value in found:
        path = value.root if isinstance(value, RunDir) else value
        if not isinstance(path, Path):
            continue  # the globs (task_models, importance_files) return lists
        for part in path.relative_to("R").parts:
            if "7" in part:
                prefixes.add(tuple(part.split("7", 1)))
            else:
                names.add(part)
    return names, prefixes


def test_only_rundir_spells_run_folder_paths():
    """No module but `rundir.py` spells a run folder's layout.

    The rule: parsing every `.py` file of the package (outside `rundir.py`), no string literal
    that `RunDir` spells (a whole name such as `"results.json"`, `"models"`, `"checkpoint"`, or
    a per-task or per-λ name, a number, `*` or one f-string field between `RunDir`'s prefix and
    suffix, such as `f"weights_after_task_{k}.npz"`, `"task_*.keras"` or `f"lambda_{lam:g}"`) is
    used as a path part: the right operand of `/`, or an argument of
    `Path(...)`, `.joinpath`, `.glob`, `.rglob`, `open` or `os.path.join`. Docstrings, messages
    and dictionary keys that merely mention a name are not path parts, so they pass (a message
    that builds a path, `f"{out / 'results.json'}"`, does not).
    """
    import ast
    import re
    from pathlib import Path

    import sequential_learning

    names, prefixes = _layout_names()
    assert {"results.json", "comparison.json", "state.json", "task_curves.png", "models",
            "samples", "checkpoint", "sweep.json"} <= names
    assert {("task_", ".keras"), ("weights_after_task_", ".npz"), ("lambda_", "")} <= prefixes
    numbered = re.compile("|".join(f"{re.escape(a)}(\\d+|\\*|\\{{\\}}){re.escape(b)}"
                                   for a, b in sorted(prefixes)))

    def spelled(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr):  # each field becomes "{}"
            text = "".join(str(v.value) if isinstance(v, ast.Constant) else "{}"
                           for v in node.values)
        else:
            return None
        return text if text in names or numbered.fullmatch(text) else None

    calls = {"Path", "joinpath", "glob", "rglob", "open", "join"}
    root = Path(sequential_learning.__file__).parent
    found = []
    for source in sorted(root.rglob("*.py")):
        if source.name == "rundir.py" and source.parent == root:
            continue
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            parts = []
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                parts = [node.right]
            elif isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in calls:
                    parts = list(node.args)
            for part in parts:
                text = spelled(part)
                if text is not None:
                    found.append(f"{source.relative_to(root)}:{node.lineno}: {text!r}")
    assert not found, "run-folder paths spelled outside rundir.py (use RunDir):\n" + "\n".join(found)
