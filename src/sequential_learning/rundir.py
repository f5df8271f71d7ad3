"""What a run folder is: claiming one for a new run, and file names read from its JSON.

A run folder holds one run (or one comparison, or one sweep), never a mix of two: a new run
refuses a folder that already holds files unless asked to `overwrite`, which clears it first —
and only a folder that seql wrote (one with a `results.json`, `comparison.json`, `seeds.json`,
`sweep.json` or checkpoint) is ever cleared, so a mistyped `--out $HOME` deletes nothing.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from sequential_learning.errors import RunDirError, disk_error

#: Files or folders whose presence marks a folder that seql wrote.
RUN_MARKERS = ("results.json", "comparison.json", "seeds.json", "sweep.json", "checkpoint")
#: Temporary files of interrupted atomic writes (`.<name>.<random>.tmp`) and model saves.
_TEMPORARY = re.compile(r"^\..+\.tmp(\.keras)?$")


def claim_run_dir(path: str | os.PathLike, overwrite: bool = False,
                  others: str | None = None) -> Path:
    """Makes sure `path` can take a new run: absent, or an empty folder, or cleared.

    Args:
        path: the output folder of a new run.
        overwrite: clear a folder that holds an earlier seql run (its files are deleted).
        others: a regular expression of entries that belong to other processes of this same
            run (the `worker_K` folders of a multi-worker run): neither counted nor cleared.

    Returns:
        The path, as a `Path` (the folder exists afterwards).

    Raises:
        RunDirError: `path` is a file; or it holds files and `overwrite` is False (the message
            names `--resume` and `--overwrite`); or it holds files that seql did not write
            (never cleared, even with `overwrite`).

    Example:
    ```python
    out = claim_run_dir("runs/mine", overwrite=True)   # empty afterwards
    ```
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path}: a file is in the way; give a folder that does not "
                          "exist yet, or an empty one")
    entries = list(path.iterdir()) if path.is_dir() else []
    if others is not None:
        entries = [e for e in entries if not re.fullmatch(others, e.name)]
    if entries:
        ours = is_run_dir(path)
        if not ours:
            raise RunDirError(f"--out {path}: the folder holds files that are not a seql run; "
                              "give a new or empty folder (nothing was changed)")
        if not overwrite:
            raise RunDirError(f"--out {path}: the folder already holds a run; continue it with "
                              f"--resume {path}, or replace it with --overwrite (nothing was "
                              "changed)")
        try:
            for entry in entries:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        except OSError as error:
            raise disk_error(error, path) from None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise disk_error(error, path) from None
    return path


def is_run_dir(path: str | os.PathLike, depth: int = 1) -> bool:
    """Whether seql wrote `path`.

    It holds a marker file (`RUN_MARKERS`: `results.json`, `comparison.json`, `seeds.json`,
    `sweep.json` or `checkpoint`), or the `config.yaml` a run writes first (a run stopped before its first task
    ended has only that), or, to `depth` levels down, a sub-folder that is a run (an interrupted
    comparison or sweep). Symbolic links to folders are not followed.

    Args:
        path: an existing folder.
        depth: how many levels of sub-folders to search.

    Returns:
        True when `path` (or a sub-folder within `depth`) is a run folder.

    Example:
    ```python
    is_run_dir("runs/x"), is_run_dir("src")    # (True, False)
    ```
    """
    path = Path(path)
    if any((path / marker).exists() for marker in RUN_MARKERS):
        return True
    try:
        if (path / "config.yaml").read_text()[:100].startswith("benchmark:"):
            return True
    except (OSError, UnicodeDecodeError):
        pass
    return depth > 0 and any(
        sub.is_dir() and not sub.is_symlink() and is_run_dir(sub, depth - 1)
        for sub in path.iterdir()
    )


def inside(folder: str | os.PathLike, name: object, what: str) -> Path:
    """`folder / name` for a file name read from one of the run's JSON files, checked to stay
    inside `folder` (no absolute path, no `..`, no link out of it).

    Args:
        folder: the folder the name is relative to.
        name: the name as read (anything JSON holds).
        what: what the name is, for the message (e.g. "checkpoint state.json: weights").

    Returns:
        The path inside `folder`.

    Raises:
        RunDirError: `name` is not a string or leads outside `folder`.

    Example:
    ```python
    inside("runs/x/checkpoint", "weights_after_task_2.npz", "state.json: weights")
    ```
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise RunDirError(f"{what}: {name!r} is not a file name")
    folder = Path(folder)
    candidate = folder / name
    root = folder.resolve()
    if Path(name).is_absolute() or not candidate.resolve().is_relative_to(root):
        raise RunDirError(f"{what}: {name!r} leads outside {folder}; expected a file inside it")
    return candidate


def remove_temporary_files(run_dir: str | os.PathLike) -> list[Path]:
    """Deletes what interrupted writes left in a run folder.

    Those are `.<name>.<random>.tmp` files of atomic writes and `.<name>.tmp.keras` files of
    model saves, in `run_dir` and its sub-folders.

    Args:
        run_dir: the run folder.

    Returns:
        The paths of the files removed.

    Example:
    ```python
    remove_temporary_files("runs/x")    # [PosixPath('runs/x/.results.json.k2j3.tmp')]
    ```
    """
    removed = []
    for dirpath, _, files in os.walk(run_dir):
        for name in files:
            if _TEMPORARY.match(name):
                path = Path(dirpath) / name
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


class RunDir:
    """The layout of a run folder: the one place that spells its paths.

    ```
    RUN_DIR/results.json  history.csv  config.yaml  environment.json  report.html
            task_curves.png  accuracy_matrix.png  importance.png   the plots after training
            stream_curve.png             an online run's accuracy against samples seen
            models/task_K.keras          the task models at the end (K counted from 1)
            samples/task_K.npz           64 validation samples of each task (x, y)
            importance/task_K.npz        each task's Ω (weight-importance methods)
            checkpoint/state.json        the commit point of the checkpoint after each task,
                       weights_after_task_K.npz, consolidation_after_task_K.npz,
                       results_after_task_K.json
            tensorboard/                 TensorBoard logs (`tensorboard: true`)
            explain/  augment/           what `seql explain` / `seql augment` and `drift` write
    COMPARISON_DIR/comparison.json  comparison.png  report.html  METHOD/ (one run each)
    SEEDS_DIR/seeds.json  comparison.json (the means)  comparison.png  report.html
              seed-S/ (one comparison each, `seql compare --seeds`)
    SWEEP_DIR/sweep.json  sweep.png  lambda_<λ>/ (one run each)
    ```

    Args:
        root: the run folder.

    Example:
    ```python
    run = RunDir("runs/mine")
    run.results          # runs/mine/results.json
    run.model(2)         # runs/mine/models/task_2.keras
    run.checkpoint_weights(2)
    ```
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    # -- files at the top --------------------------------------------------------------------------
    @property
    def results(self) -> Path:
        """`results.json`: the accuracy matrix, curves, metrics and timing."""
        return self.root / "results.json"

    @property
    def history(self) -> Path:
        """`history.csv`: the per-epoch curves as a table."""
        return self.root / "history.csv"

    @property
    def config(self) -> Path:
        """`config.yaml`: the resolved settings (`seql run --config` repeats the run)."""
        return self.root / "config.yaml"

    @property
    def tensorboard(self) -> Path:
        """`tensorboard/`: the TensorBoard logs."""
        return self.root / "tensorboard"

    @property
    def environment_json(self) -> Path:
        """`environment.json`: the environment the run was made in (written with the report)."""
        return self.root / "environment.json"

    @property
    def report_html(self) -> Path:
        """`report.html`: the one-file report of a run or comparison."""
        return self.root / "report.html"

    # -- plots -------------------------------------------------------------------------------------
    @property
    def task_curves_png(self) -> Path:
        """`task_curves.png`: each task's accuracy as training goes on."""
        return self.root / "task_curves.png"

    @property
    def accuracy_matrix_png(self) -> Path:
        """`accuracy_matrix.png`: the accuracy matrix as a heat map."""
        return self.root / "accuracy_matrix.png"

    @property
    def stream_curve_png(self) -> Path:
        """`stream_curve.png`: an online run's accuracy against the samples seen."""
        return self.root / "stream_curve.png"

    @property
    def importance_png(self) -> Path:
        """`importance.png`: the Ω summaries (weight-importance methods)."""
        return self.root / "importance.png"

    # -- what later commands write -----------------------------------------------------------------
    @property
    def explain_dir(self) -> Path:
        """`explain/`: the figures `seql explain` writes."""
        return self.root / "explain"

    @property
    def augment_dir(self) -> Path:
        """`augment/`: what `seql augment` and `seql drift` write by default."""
        return self.root / "augment"

    # -- a comparison or a sweep -------------------------------------------------------------------
    @property
    def comparison_json(self) -> Path:
        """`comparison.json`: a comparison's metrics per method."""
        return self.root / "comparison.json"

    @property
    def comparison_png(self) -> Path:
        """`comparison.png`: a comparison's metrics as bars."""
        return self.root / "comparison.png"

    def method_run(self, method: str) -> RunDir:
        """`METHOD/`: the run of `method` in a comparison folder."""
        return RunDir(self.root / method)

    @property
    def seeds_json(self) -> Path:
        """`seeds.json`: a comparison made at several seeds: each metric's mean, sample standard
        deviation and values per method."""
        return self.root / "seeds.json"

    def seed_comparison(self, seed: int) -> RunDir:
        """`seed-<S>/`: the comparison made at `seed` in a `--seeds` folder."""
        return RunDir(self.root / f"seed-{seed}")

    @property
    def sweep_json(self) -> Path:
        """`sweep.json`: a λ sweep's table and best λ."""
        return self.root / "sweep.json"

    @property
    def sweep_png(self) -> Path:
        """`sweep.png`: ACC and BWT against λ."""
        return self.root / "sweep.png"

    def sweep_run(self, lam: float) -> RunDir:
        """`lambda_<λ>/`: the run with λ = `lam` in a sweep folder (`lam` written with `:g`)."""
        return RunDir(self.root / f"lambda_{lam:g}")

    # -- one file per task -------------------------------------------------------------------------
    @property
    def models(self) -> Path:
        """`models/`: the task models."""
        return self.root / "models"

    def model(self, task: int) -> Path:
        """`models/task_K.keras`: task `task`'s model (counted from 1)."""
        return self.models / f"task_{task}.keras"

    def model_temporary(self, task: int) -> Path:
        """Where task `task`'s model is saved before it replaces `model(task)` (Keras needs the
        `.keras` suffix; `remove_temporary_files` knows the name)."""
        return self.models / f".task_{task}.tmp.keras"

    def task_models(self) -> list[Path]:
        """The saved task models, `models/task_K.keras`, in task order."""
        return sorted(self.models.glob("task_*.keras"), key=lambda p: int(p.stem.split("_")[1]))

    @property
    def samples(self) -> Path:
        """`samples/`: validation samples of each task."""
        return self.root / "samples"

    def sample(self, task: int) -> Path:
        """`samples/task_K.npz`: task `task`'s validation samples (`x`, `y`)."""
        return self.samples / f"task_{task}.npz"

    @property
    def importance(self) -> Path:
        """`importance/`: each task's Ω."""
        return self.root / "importance"

    def importance_file(self, task: int) -> Path:
        """`importance/task_K.npz`: task `task`'s Ω."""
        return self.importance / f"task_{task}.npz"

    def importance_files(self) -> list[Path]:
        """The saved `importance/task_K.npz` files, in task order."""
        return sorted(self.importance.glob("task_*.npz"), key=lambda p: int(p.stem.split("_")[1]))

    # -- the checkpoint ----------------------------------------------------------------------------
    @property
    def checkpoint(self) -> Path:
        """`checkpoint/`: the checkpoint after the last finished task."""
        return self.root / "checkpoint"

    @property
    def checkpoint_state(self) -> Path:
        """`checkpoint/state.json`: the checkpoint's commit point, written last."""
        return self.checkpoint / "state.json"

    def checkpoint_weights(self, task: int) -> Path:
        """`checkpoint/weights_after_task_K.npz`: every variable after task `task`."""
        return self.checkpoint / f"weights_after_task_{task}.npz"

    def checkpoint_plugins(self, task: int) -> Path:
        """`checkpoint/consolidation_after_task_K.npz`: the plugins' state after task `task`."""
        return self.checkpoint / f"consolidation_after_task_{task}.npz"

    def checkpoint_results_files(self) -> list[Path]:
        """Every `checkpoint/results_after_task_K.json`, the latest task first."""
        found = self.checkpoint.glob("results_after_task_*.json")
        return sorted(found, key=lambda p: int(p.stem.rsplit("_", 1)[1])
                      if p.stem.rsplit("_", 1)[1].isdigit() else -1, reverse=True)

    def checkpoint_results(self, task: int) -> Path:
        """`checkpoint/results_after_task_K.json`: the results after task `task`."""
        return self.checkpoint / f"results_after_task_{task}.json"
