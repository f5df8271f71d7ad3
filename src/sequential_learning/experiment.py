"""`run_experiment`: a validated config -> stream -> models -> manager -> results and report."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import sys
from pathlib import Path

from sequential_learning.config import RunConfig
from sequential_learning.rundir import RunDir


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    """A fresh run folder's path, `ROOT/<timestamp>-<benchmark>-<method>` (not created).

    Characters other than letters, digits, `_`, `.` and `-` in the benchmark and method become
    `-`; if the path exists already, `-2`, `-3`, ... is appended.

    Args:
        config: the run's settings (only `benchmark` and `method` are used).
        root: the folder that holds the runs.

    Returns:
        A `Path` that does not exist yet.

    Example:
    ```python
    default_run_dir(RunConfig(benchmark="split-digits", method="fisher+replay"))
    # PosixPath('runs/20250101-120000-split-digits-fisher-replay')
    ```
    """
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{config.benchmark}-{config.method}")
    path = Path(root) / f"{stamp}-{name}"
    k = 1
    while path.exists():
        k += 1
        path = Path(root) / f"{stamp}-{name}-{k}"
    return path


def run_experiment(config: RunConfig, out_dir: str | Path | None = None,
                   progress: bool | str = False, resume: bool = False,
                   overwrite: bool = False):
    """Builds the benchmark, model and tasks of `config`, trains them and writes the outputs.

    Models, optimizers and consolidation state are created under the strategy's scope
    (`config.strategy`); under `multi-worker` only the chief (worker 0) writes `out_dir`, the
    others write `out_dir/worker_K`.

    Args:
        config: the run's settings (validated here).
        out_dir: where results, models and figures go (None: nothing is written).
        progress: show a progress line (a string is used as its prefix).
        resume: continue the run in `out_dir` from its last finished task.
        overwrite: replace a run already in `out_dir` (without it, a folder that holds files is
            refused: a run folder never mixes two runs; see `rundir.claim_run_dir`).

    Returns:
        The run's `Results`.

    Example:
    ```python
    results = run_experiment(RunConfig(benchmark="split-digits", method="fisher"), "runs/x")
    ```
    """
    import keras

    from sequential_learning import plots
    from sequential_learning.augmentation import input_preprocessing
    from sequential_learning.data.benchmarks import BENCHMARKS, make_benchmark
    from sequential_learning.manager import SequentialLearningManager
    from sequential_learning.models import cnn_base, mlp_base, resnet18_base
    from sequential_learning.tasks import tasks_from_benchmark

    config.validate()
    from sequential_learning.distribute import make_strategy, worker_index

    strategy = make_strategy(config.strategy)
    if config.deterministic:
        make_deterministic()
    if out_dir is not None and worker_index(strategy) > 0:
        out_dir = Path(out_dir) / f"worker_{worker_index(strategy)}"
        progress = False
    if config.tensorboard and out_dir is None:
        raise ValueError("tensorboard: true needs an output directory for the logs")
    if out_dir is not None and not resume:
        from sequential_learning.rundir import claim_run_dir

        # Under multi-worker the other workers write their own worker_K folders inside the
        # chief's, each claiming its own.
        claim_run_dir(out_dir, overwrite=overwrite, others=r"worker_\d+")
    stream = make_benchmark(
        config.benchmark, config.scenario, config.seed, config.num_tasks, config.classes_per_task,
        data=config.data, data_dir=config.data_dir, limit=config.limit,
        class_order=config.class_order, angles=config.angles,
    )
    if config.model in ("cnn", "resnet18") and len(stream.input_shape) != 3:
        raise ValueError(f"model: {config.model} needs images shaped (H, W, C); {config.benchmark} "
                         f"has inputs shaped {tuple(stream.input_shape)}; use model mlp")
    if config.augmentation != "none" and len(stream.input_shape) != 3:
        raise ValueError(f"augmentation: {config.augmentation} needs images shaped (H, W, C); "
                         f"{config.benchmark} has inputs shaped {tuple(stream.input_shape)}; use "
                         "augmentation none")
    # The same seed gives the same initial weights for every method.
    from sequential_learning.seeds import set_random_seed

    set_random_seed(config.seed)
    with strategy.scope():
        # Augmentation (training only) and the benchmark's standardisation, at the base's front.
        preprocessing = input_preprocessing(config.augmentation,
                                            BENCHMARKS[config.benchmark].normalization,
                                            seed=config.seed)
        if config.model == "resnet18":
            base = resnet18_base(stream.input_shape, config.resnet_width,
                                 preprocessing=preprocessing)
        elif config.model == "cnn":
            base = cnn_base(stream.input_shape, config.filters, preprocessing=preprocessing)
        else:
            base = mlp_base(stream.input_shape, config.hidden, preprocessing=preprocessing)
        tasks = tasks_from_benchmark(stream, base, config.batch_size, config.seed,
                                     mask_classes=config.class_masking)
    if out_dir is not None and not resume:
        import yaml

        from sequential_learning.results import atomic_write_text

        # The resolved settings: `seql run --config <run>/config.yaml` repeats the run.
        atomic_write_text(RunDir(out_dir).config,
                          yaml.safe_dump(config.to_dict(), sort_keys=False))
    manager = SequentialLearningManager(
        base,
        tasks,
        method=config.methods(),
        ewc_lambda=float(config.ewc_lambda),
        epochs=config.epochs,
        seed=config.seed,
        learning_rate=config.learning_rate,
        optimizer=config.optimizer,
        fisher_mode=config.fisher_mode,
        fisher_samples=config.fisher_samples,
        penalty_mode=config.penalty_mode,
        gamma=config.gamma,
        normalize_importance=config.normalize_importance,
        method_options=config.method_options(),
        out_dir=out_dir,
        progress=progress,
        config={**config.to_dict(), "defaults_used": getattr(config, "defaults_used", {}),
                "benchmark_info": stream.describe()},
        eval_every=config.eval_every,
        eval_subset=config.eval_subset,
        tensorboard_dir=RunDir(out_dir).tensorboard if config.tensorboard else None,
        strategy=strategy,
        scenario=stream.scenario,
        online=config.online,
        boundaries=config.boundaries,
        eval_every_samples=config.eval_every_samples,
        blur_window=config.blur_window,
    )
    results = manager.train_all(resume=resume)
    if out_dir is not None:
        plots.task_curves(results, RunDir(out_dir).task_curves_png)
        plots.accuracy_matrix(results, RunDir(out_dir).accuracy_matrix_png)
        if results.stream_curve:
            plots.stream_curve(results, RunDir(out_dir).stream_curve_png)
        if manager.penalty is not None:
            plots.importance_histogram(
                {
                    getattr(v, "path", f"variable_{i}"): keras.ops.convert_to_numpy(o)
                    for i, (v, o) in enumerate(zip(manager.covered, manager.penalty.importance))
                },
                RunDir(out_dir).importance_png,
                title=f"{config.method}: Ω held by the penalty after the last task",
            )
        from sequential_learning.report import write_report

        write_report(out_dir)  # report.html: everything above in one self-contained file
    return results


def make_deterministic() -> None:
    """Makes the backend's kernels deterministic (`--deterministic`).

    TensorFlow: `tf.config.experimental.enable_op_determinism()`; PyTorch:
    `torch.use_deterministic_algorithms(True)` (with cuBLAS's fixed workspace on a GPU); JAX: XLA's
    deterministic GPU kernels when the flag comes before JAX's first computation (on a CPU it is
    deterministic already). The seeds are set by the run itself (`seeds.set_random_seed`, on every
    backend).

    Returns:
        None.

    Example:
    ```python
    make_deterministic()    # then: run_experiment(config)
    ```
    """
    from sequential_learning import backend

    if backend.is_tensorflow():
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend.name() == "torch":
        import torch

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    elif backend.name() == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()


# -- a command's run folder ---------------------------------------------------------------------
def claim_out_dir(out: Path, overwrite: bool, strategy: str) -> bool:
    """Checks that `out` can take a new run before TensorFlow loads (see `rundir.claim_run_dir`).

    Under `multi-worker` nothing is checked here: every worker runs the command with the same
    folder, and only `run_experiment` knows which worker it is (the chief writes `out`, the
    others `out/worker_K`), so it claims the folder there.

    Args:
        out: the run folder.
        overwrite: delete a run already in `out` instead of refusing it.
        strategy: the run's distribution strategy (`config.strategy`).

    Returns:
        True when this call made the folder (so a failed run may remove it again, see
        `removed_if_unfinished`), False when it existed or under `multi-worker`.

    Raises:
        RunDirError: `out` holds another run (without `overwrite`) or is a file.

    Example:
    ```python
    created = claim_out_dir(Path("runs/x"), overwrite=False, strategy="default")
    ```
    """
    from sequential_learning.rundir import claim_run_dir

    if strategy == "multi-worker":
        return False
    created = not out.exists()
    claim_run_dir(out, overwrite=overwrite)
    return created


@contextlib.contextmanager
def removed_if_unfinished(out: Path, created: bool):
    """A context manager removing the folder a command made if it fails before any task finished.

    On any exception (KeyboardInterrupt included) the folder is deleted when `created` is true
    and no `results.json` lies anywhere under it: nothing computed is lost, and no half run is
    left behind. The exception is raised again.

    Args:
        out: the run folder.
        created: whether the command made it (`claim_out_dir`'s answer); a folder that existed
            before is never removed.

    Returns:
        The context manager (it yields None).

    Example:
    ```python
    with removed_if_unfinished(out, claim_out_dir(out, False, config.strategy)):
        run_experiment(config, out)
    ```
    """
    try:
        yield
    except BaseException:
        if created and out.is_dir() and not any(out.rglob(RunDir(out).results.name)):
            shutil.rmtree(out, ignore_errors=True)
        raise


# -- resuming a run ---------------------------------------------------------------------------------
def saved_config(run_dir: Path) -> dict:
    """The config a run folder records, for `--resume`.

    It is read from the folder's `results.json`; if that cannot be read, from the checkpoint's
    copy of the results (a note on stderr says so).

    Args:
        run_dir: the folder of an interrupted run.

    Returns:
        The saved config, a dict of settings as `RunConfig.to_dict` wrote them.

    Raises:
        SeqlError: `run_dir` is not a folder, or neither `results.json` nor the checkpoint's copy
            can be read (one line naming both problems).

    Example:
    ```python
    saved_config(Path("runs/x"))["method"]    # 'fisher'
    ```
    """
    from sequential_learning.checkpoint import checkpoint_results_path
    from sequential_learning.errors import SeqlError

    path = RunDir(run_dir).results
    if not run_dir.is_dir():
        raise SeqlError(f"--resume {run_dir}: not a folder; give the folder of an interrupted run")
    problem = None
    try:
        saved = json.loads(path.read_text())["config"]
        if isinstance(saved, dict):
            return saved
        problem = "its config is not a mapping"
    except FileNotFoundError:
        problem = "it does not exist"
    except (OSError, ValueError, KeyError, TypeError) as error:
        problem = f"{type(error).__name__}: {error}"
    try:
        copy = checkpoint_results_path(run_dir)
    except ValueError:
        copy = None
    if copy is None:
        raise SeqlError(f"--resume {run_dir}: not a run directory: unreadable results.json "
                        f"({problem}) and no checkpoint; give the folder of a run with at least "
                        "one finished task")
    try:
        saved = json.loads(copy.read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SeqlError(f"--resume {run_dir}: neither {path} ({problem}) nor the checkpoint's "
                        f"copy {copy} ({type(error).__name__}) can be read") from None
    sys.stderr.write(f"seql: note: {path} cannot be read ({' '.join(problem.split())}); "
                     f"resuming from the checkpoint's copy {copy.name}\n")
    return saved


#: Settings a resumed run may change: how it is carried out, not its numbers.
RESUME_SETTINGS = ("strategy", "deterministic", "tensorboard")


def resume_config(run_dir: Path, given: dict, flags: dict[str, str] | None = None) -> RunConfig:
    """The validated config of the interrupted run in `run_dir`.

    Args:
        run_dir: the run's folder.
        given: settings given for the resumed run; those of `RESUME_SETTINGS` replace the saved
            ones, any other must repeat its saved value.
        flags: each key's name in the message (`{"ewc_lambda": "--lambda"}`).

    Returns:
        The `RunConfig` the run was started with (and the `RESUME_SETTINGS` given).

    Raises:
        SeqlError: the folder holds no readable config, or `given` would change the run.

    Example:
    ```python
    config = resume_config(Path("runs/x"), {"strategy": "mirrored"})
    ```
    """
    from sequential_learning.config import make_config
    from sequential_learning.errors import SeqlError
    from sequential_learning.results import to_jsonable

    values, flags = saved_config(run_dir), flags or {}
    changed = [flags.get(k, k) for k in sorted(set(given) - set(RESUME_SETTINGS))
               if k not in values or _normal(k, to_jsonable(given[k])) != _normal(k, values[k])]
    if changed:
        raise SeqlError(f"--resume {run_dir}: {', '.join(changed)} would change the run; a "
                        "resumed run keeps its own settings (allowed with --resume: "
                        "--tensorboard, --strategy, --deterministic, --verbose)")
    values.update({k: v for k, v in given.items() if k in RESUME_SETTINGS})
    return make_config(values).validate()


def _normal(dest: str, value):
    """A value as the saved config holds it (`fisher+replay` for a method, floats for numbers)."""
    if dest == "method" and isinstance(value, str):
        from sequential_learning.plugins.registry import split_methods

        try:
            return "+".join(split_methods(value))
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, list):
        return [_normal(dest, v) for v in value]
    return value
