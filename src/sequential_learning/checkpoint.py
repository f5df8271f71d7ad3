"""Checkpoints after each task, resume, and task models as they were after any task.

After task i (counted from 1) the manager writes into `RUN_DIR/checkpoint/`:

* `weights_after_task_i.npz`: every variable of every task model once (shared variables once),
  keys `v0, v1, ...`, plus `index_task_K`: for task model K, the position of each of its
  `model.weights` in that list;
* `consolidation_after_task_i.npz`: every plugin's state (the penalty's Ω, anchors and
  constant, the estimator's tracker state, replay buffers, a distillation teacher), keys
  `<position>.<plugin name>.<key>`;
* `results_after_task_i.json`: the results so far (so results and weights always agree);
* `state.json`, written last (atomically), the commit point: completed tasks, the run's config,
  the variables' paths and shapes, and the names of the files above.

NumPy files are read with `allow_pickle=False`. A missing, truncated or mismatched checkpoint is
an error that says what differs — never a silent fresh start.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sequential_learning.errors import SeqlError
from sequential_learning.results import atomic_write_bytes, atomic_write_text, to_jsonable
from sequential_learning.rundir import RunDir, inside

#: The checkpoint folder's name in a run folder (see `RunDir.checkpoint`).
CHECKPOINT_DIR = RunDir(".").checkpoint.name
# Settings that may differ on resume without changing what is computed.
_VOLATILE_KEYS = {"out", "resume", "tensorboard", "verbose", "progress", "strategy",
                  "deterministic", "data_dir", "defaults_used"}


class CheckpointError(SeqlError):
    """A checkpoint is missing, unreadable or does not match the run being resumed."""


def _unique_variables(models) -> tuple[list, list[np.ndarray]]:
    unique, position, indices = [], {}, []
    for model in models:
        index = []
        for v in model.weights:
            if id(v) not in position:
                position[id(v)] = len(unique)
                unique.append(v)
            index.append(position[id(v)])
        indices.append(np.asarray(index, np.int64))
    return unique, indices


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _comparable(config: dict) -> dict:
    return {k: v for k, v in to_jsonable(config).items() if k not in _VOLATILE_KEYS}


def save_checkpoint(run_dir: str | Path, models: Sequence, completed: int, plugins: Sequence,
                    config: dict, results=None) -> Path:
    """Writes the checkpoint after `completed` tasks (see the module docstring).

    The weights, plugin states and results files are written first, each atomically, and
    `state.json` last: a checkpoint interrupted midway leaves the previous `state.json` in force.

    Args:
        run_dir: the run directory.
        models: every task model, in task order.
        completed: how many tasks are finished.
        plugins: the run's plugins, whose `state()` is saved (Ω and anchors, buffers, ...).
        config: the run's config (compared on resume, without settings such as `out` or
            `strategy` that may change).
        results: the `Results` so far, kept with the checkpoint so that both always agree.

    Returns:
        The path of `state.json`.

    Example:
    ```python
    save_checkpoint("runs/x", [t.model for t in tasks], 2, manager.plugins, config, results)
    # PosixPath('runs/x/checkpoint/state.json')
    ```
    """
    run = RunDir(run_dir)
    folder = run.checkpoint
    unique, indices = _unique_variables(models)
    import keras

    weights = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(unique)}
    weights.update({f"index_task_{k + 1}": idx for k, idx in enumerate(indices)})
    weights_name = run.checkpoint_weights(completed).name
    atomic_write_bytes(folder / weights_name, _npz_bytes(weights))
    consolidation = {}
    for prefix, plugin in _prefixed(plugins):
        consolidation.update({f"{prefix}{k}": np.asarray(v) for k, v in plugin.state().items()})
    consolidation_name = run.checkpoint_plugins(completed).name
    atomic_write_bytes(folder / consolidation_name, _npz_bytes(consolidation))
    results_name = None
    if results is not None:
        results_name = run.checkpoint_results(completed).name
        atomic_write_text(folder / results_name, json.dumps(results.to_dict(), allow_nan=False))
    state = {
        "completed_tasks": completed,
        "results": results_name,
        "config": _comparable(config),
        "variables": [[getattr(v, "path", str(i)), list(v.shape)] for i, v in enumerate(unique)],
        "weights": weights_name,
        "consolidation": consolidation_name,
    }
    path = run.checkpoint_state
    atomic_write_text(path, json.dumps(to_jsonable(state), indent=1))
    return path


def read_state(run_dir: str | Path) -> dict:
    """The checkpoint's `state.json`, checked.

    Args:
        run_dir: the run directory.

    Returns:
        The state as a dict: `completed_tasks` (int >= 1), `config`, `variables` (`[path, shape]`
        per unique variable), `weights`, `consolidation` and `results` (file names inside the
        checkpoint folder; `results` may be None).

    Raises:
        CheckpointError: `run_dir` is no folder, has no checkpoint, or its state is not JSON, lacks
            a key, has a value of the wrong type or names a file outside the checkpoint folder.

    Example:
    ```python
    read_state("runs/x")["completed_tasks"]    # 2
    ```
    """
    path = RunDir(run_dir).checkpoint_state
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"{run_dir} is not a directory: cannot resume from it")
    if not path.exists():
        raise CheckpointError(
            f"No checkpoint in {run_dir} (looked for {path}); is this a run directory with at "
            "least one finished task?"
        )
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"Checkpoint state {path} is unreadable: {error}") from None
    _check_state(state, path)
    return state


#: What `state.json` holds: key -> (check, what is expected).
_STATE_KEYS = {
    "completed_tasks": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                        "an integer >= 1"),
    "config": (lambda v: isinstance(v, dict), "a mapping"),
    "variables": (lambda v: isinstance(v, list) and all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[1], list)
        and all(isinstance(d, int) for d in e[1]) for e in v), "a list of [path, shape]"),
    "weights": (lambda v: isinstance(v, str), "a file name"),
    "consolidation": (lambda v: isinstance(v, str), "a file name"),
    "results": (lambda v: v is None or isinstance(v, str), "a file name or null"),
}


def _check_state(state, path: Path) -> None:
    """Raises CheckpointError unless `state` has every key of `_STATE_KEYS`, well typed, and
    its file names stay inside the checkpoint folder."""
    if not isinstance(state, dict):
        raise CheckpointError(f"Checkpoint state {path} is not a mapping; the checkpoint is "
                              "damaged")
    for key, (ok, expected) in _STATE_KEYS.items():
        if key not in state or not ok(state[key]):
            raise CheckpointError(f"Checkpoint state {path}: {key!r} is "
                                  f"{'missing' if key not in state else repr(state[key])[:60]}; "
                                  f"expected {expected} (the checkpoint is damaged)")
    for key in ("weights", "consolidation", "results"):
        if state[key] is not None:
            try:
                inside(path.parent, state[key], f"checkpoint {path}: {key}")
            except ValueError as error:
                raise CheckpointError(str(error)) from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a checkpoint `.npz`, read with `allow_pickle=False`.

    Args:
        path: the `.npz` file.

    Returns:
        A dict from key to NumPy array (all read into memory; the file is closed).

    Raises:
        CheckpointError: the file is missing, truncated or no `.npz` (or would need pickle).

    Example:
    ```python
    weights = read_npz(Path("runs/x/checkpoint/weights_after_task_2.npz"))
    weights["v0"].shape    # (64, 100)
    ```
    """
    if not path.exists():
        raise CheckpointError(f"Checkpoint file {path} is missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as error:  # noqa: BLE001 - zip/format errors of a truncated file
        raise CheckpointError(f"Checkpoint file {path} is truncated or corrupt: {error}") from None


def _prefixed(plugins: Sequence) -> list[tuple[str, object]]:
    """Each plugin with the prefix of its keys in the consolidation file (`0.fisher.`, ...)."""
    return [(f"{i}.{plugin.name}.", plugin) for i, plugin in enumerate(plugins)]


def load_checkpoint(run_dir: str | Path, models: Sequence, plugins: Sequence,
                    config: dict) -> int:
    """Restores the weights and the plugins' state from a run's checkpoint.

    The saved config must equal `config` (settings such as `out`, `strategy` or `tensorboard`
    aside), and the models' unique variables must have the saved shapes; the variables are then
    assigned in place and each plugin's `load_state` gets its keys.

    Args:
        run_dir: the run directory.
        models: every task model, in task order (built as the run built them).
        plugins: the run's plugins, in the order they were saved.
        config: the run's config.

    Returns:
        The number of finished tasks the checkpoint holds.

    Raises:
        CheckpointError: when the checkpoint is missing, truncated, or was written by another
            config or model (the message names what differs).

    Example:
    ```python
    done = load_checkpoint("runs/x", [t.model for t in tasks], manager.plugins, config)
    ```
    """
    state = read_state(run_dir)
    folder = RunDir(run_dir).checkpoint
    saved, now = state["config"], _comparable(config)
    differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if differ:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}" for k in differ)
        raise CheckpointError(f"The checkpoint in {run_dir} was written by another config: {details}")
    unique, _ = _unique_variables(models)
    shapes_now = [[getattr(v, "path", str(i)), list(v.shape)] for i, v in enumerate(unique)]
    if [s for _, s in shapes_now] != [s for _, s in state["variables"]]:
        raise CheckpointError(
            f"The checkpoint in {run_dir} was written for another model: it holds "
            f"{len(state['variables'])} variables with shapes {[s for _, s in state['variables']]}, "
            f"the model has {len(shapes_now)} with shapes {[s for _, s in shapes_now]}"
        )
    weights = read_npz(folder / state["weights"])
    consolidation = read_npz(folder / state["consolidation"])
    for i, v in enumerate(unique):
        value = weights.get(f"v{i}")
        if value is None or tuple(value.shape) != tuple(v.shape) or value.dtype.kind not in "fiub":
            found = "missing" if value is None else f"{value.dtype} {tuple(value.shape)}"
            raise CheckpointError(f"Checkpoint file {folder / state['weights']}: v{i} "
                                  f"({getattr(v, 'path', i)}) is {found}; expected numbers "
                                  f"shaped {tuple(v.shape)} (the checkpoint is damaged)")
        v.assign(value)
    for prefix, plugin in _prefixed(plugins):
        plugin.load_state({k[len(prefix):]: v for k, v in consolidation.items()
                           if k.startswith(prefix)})
    return int(state["completed_tasks"])


def checkpoint_results_path(run_dir: str | Path) -> Path | None:
    """The results file kept with the checkpoint (`checkpoint/results_after_task_K.json`).

    Args:
        run_dir: the run directory.

    Returns:
        Its path, or None when the checkpoint holds no results file.

    Raises:
        CheckpointError: the checkpoint is missing or damaged (see `read_state`).

    Example:
    ```python
    checkpoint_results_path("runs/x")    # PosixPath('runs/x/checkpoint/results_after_task_2.json')
    ```
    """
    name = read_state(run_dir).get("results")
    return inside(RunDir(run_dir).checkpoint, name, "checkpoint results") if name else None


def load_task_models(run_dir: str | Path, after_task: int | None = None) -> list:
    """The run's task models, as saved at the end, or as they were right after task `after_task`.

    Args:
        run_dir: a run directory (with `models/task_K.keras` and `checkpoint/`).
        after_task: 1-based task number; None for the final models.

    Returns:
        A list of Keras models, one per saved task model (loaded with `safe_mode=True`).

    Example:
    ```python
    first = load_task_models("runs/x", after_task=1)[0]   # task 1's model right after task 1
    ```
    """

    run = RunDir(run_dir)
    paths = run.task_models()
    if not paths:
        raise CheckpointError(f"No saved task models in {run.models}")
    models = [load_model(p) for p in paths]
    if after_task is None:
        return models
    weights = read_npz(run.checkpoint_weights(after_task))
    for k, model in enumerate(models, start=1):
        index = weights.get(f"index_task_{k}")
        if index is None or len(index) != len(model.weights):
            raise CheckpointError(f"Checkpoint after task {after_task} does not match task model {k}")
        for v, i in zip(model.weights, index):
            value = weights.get(f"v{int(i)}")
            if value is None:
                raise CheckpointError(f"Checkpoint after task {after_task} lacks variable v{int(i)} "
                                      f"of task model {k} (the checkpoint is damaged)")
            if tuple(value.shape) != tuple(v.shape):
                raise CheckpointError(
                    f"Checkpoint after task {after_task}: variable {v.path} of task model {k} has "
                    f"shape {tuple(v.shape)} but the checkpoint holds {tuple(value.shape)}"
                )
            v.assign(value)
    return models


def load_model(path: str | Path):
    """A saved `.keras` model, loaded with `safe_mode=True` and `compile=False`.

    Safe mode means no Lambda layer or other code from the file runs.

    Args:
        path: the `.keras` file.

    Returns:
        The Keras model, not compiled.

    Raises:
        CheckpointError: naming the file: missing, damaged, not a Keras file, or naming a class
            that is not a Keras layer.

    Example:
    ```python
    model = load_model("runs/x/models/task_1.keras")
    ```
    """
    import keras

    from sequential_learning.seeds import keep_tensorflow_unloaded

    keep_tensorflow_unloaded()  # Keras's deserialisation probes for TensorFlow's types
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Model file {path} is missing")
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001 - Keras raises many types for a bad file
        reason = " ".join(str(error).split())[:200]
        raise CheckpointError(f"Model file {path} cannot be loaded safely "
                              f"({type(error).__name__}: {reason})") from None


def save_importance(run_dir: str | Path, task: int, importance: Sequence, variables: Sequence) -> Path:
    """Writes task `task`'s Ω to `RUN_DIR/importance/task_K.npz`.

    The file holds one float32 array per variable (`v0, v1, ...`) and `paths`, the variables'
    paths.

    Args:
        run_dir: the run directory.
        task: the task's number, counted from 1.
        importance: Ω, one array per covered variable.
        variables: the covered variables (for their `path`), in the same order.

    Returns:
        The path of the file written.

    Example:
    ```python
    save_importance("runs/x", 1, penalty.importance, manager.covered)
    # PosixPath('runs/x/importance/task_1.npz')
    ```
    """
    arrays = {f"v{i}": np.asarray(o, np.float32) for i, o in enumerate(importance)}
    arrays["paths"] = np.array([getattr(v, "path", f"variable_{i}") for i, v in enumerate(variables)])
    path = RunDir(run_dir).importance_file(task)
    atomic_write_bytes(path, _npz_bytes(arrays))
    return path


def load_importance(run_dir: str | Path, task: int | None = None) -> tuple[list[str], list[np.ndarray]]:
    """Ω of the run's covered variables: of task `task`, or summed over all saved tasks.

    Args:
        run_dir: a run directory written by the manager (with `importance/task_K.npz`).
        task: 1-based task number; None sums every task's Ω (what the `separate` penalty holds).

    Returns:
        `(paths, importance)`: the covered variables' paths (e.g. `base/base_dense_1/kernel`) and
        one array per variable.

    Raises:
        CheckpointError: when the run saved no importance (e.g. method `none`), or a file is
            damaged.

    Example:
    ```python
    paths, omega = load_importance("runs/x", task=1)
    dict(zip(paths, (o.mean() for o in omega)))    # mean Ω per variable
    ```
    """
    run = RunDir(run_dir)
    folder = run.importance
    files = run.importance_files()
    if task is not None:
        files = [f for f in files if f.stem == f"task_{task}"]
    if not files:
        what = f"for task {task}" if task is not None else ""
        raise CheckpointError(
            f"No saved importance {what} in {folder} (runs with method none save none)"
        )
    total: list[np.ndarray] | None = None
    paths: list[str] = []
    for f in files:
        data = read_npz(f)
        if "paths" not in data or any(f"v{i}" not in data for i in range(len(data["paths"]))):
            raise CheckpointError(f"Importance file {f} lacks 'paths' or one of its arrays "
                                  "v0, v1, ... (the file is damaged)")
        paths = [str(p) for p in data["paths"]]
        arrays = [data[f"v{i}"] for i in range(len(paths))]
        total = arrays if total is None else [a + b for a, b in zip(total, arrays)]
    return paths, total


def restore_run(run_dir: str | Path, models: Sequence, plugins: Sequence, config: dict,
                num_tasks: int, note=None) -> tuple[int, object]:
    """Restores a run from its checkpoint: weights, the plugins' state and the results so far.

    Also removes what a kill during a write left (temporary files).

    Args:
        run_dir: the run folder.
        models: every task model, in task order.
        plugins: the run's plugins.
        config: the run's config (compared with the checkpoint's).
        num_tasks: the number of tasks of the run.
        note: called with a line to show when `results.json` records more finished tasks than
            the checkpoint (the run stopped while saving the next task, which is trained again).

    Returns:
        `(finished tasks, Results)`.

    Raises:
        CheckpointError: the checkpoint is missing, damaged or another run's, or its results
            do not match it.

    Example:
    ```python
    done, results = restore_run("runs/x", models, plugins, config, num_tasks=5, note=print)
    ```
    """
    from sequential_learning.results import Results
    from sequential_learning.rundir import remove_temporary_files

    run = RunDir(run_dir)
    done = load_checkpoint(run.root, models, plugins, config)
    remove_temporary_files(run.root)
    results = Results.load(checkpoint_results_path(run.root) or run.root)
    recorded = _completed_in(run.results)
    if recorded is not None and recorded > done and note is not None:
        note(f"note: {run.results} records {recorded} finished tasks, the checkpoint {done} (the "
             f"run stopped while saving task {done + 1}); task {done + 1} is trained again")
    if results.completed_tasks != done or results.num_tasks != num_tasks:
        raise CheckpointError(
            f"{run.root}: results.json records {results.completed_tasks} finished "
            f"tasks of {results.num_tasks}, the checkpoint {done} of {num_tasks}"
        )
    return done, results


def _completed_in(path: Path) -> int | None:
    """The finished tasks a results.json records (None when it cannot be read)."""
    try:
        return int(json.loads(path.read_text())["completed_tasks"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
