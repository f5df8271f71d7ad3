"""Experiment configuration (validated) and the function that runs one experiment."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from sequential_learning.importance import (
    FISHER_MODES,
    PENALTY_MODES,
    EWCMethod,
    parse_method,
)

# λ that works for each method on the embedded permuted-digits stream with the default model
# (found by sweeps; see the README). Methods differ in scale, so λ does not transfer between them.
DEFAULT_LAMBDA = {
    EWCMethod.NONE: 0.0,
    EWCMethod.WEIGHT_DECAY: 0.01,
    EWCMethod.FISHER_MATRIX: 300.0,
}


@dataclass
class RunConfig:
    """Every setting of one run; `validate()` rejects bad values with the key's name.

    Attributes:
        benchmark: a benchmark name (see `seql list benchmarks`).
        scenario: `task`, `domain` or `class` (default: the benchmark's own).
        method: the consolidation method (kebab case, e.g. `fisher`).
        ewc_lambda: λ; None takes the method's default.
        epochs: epochs per task.
        batch_size: training batch size.
        learning_rate: Adam's learning rate.
        fisher_mode: `exact`, `sampled`, `empirical` or `batch`.
        fisher_samples: training inputs used to estimate importance.
        penalty_mode: `separate` or `online`.
        gamma: online decay in (0, 1].
        seed: seeds everything; the same config gives the same numbers.
        hidden: sizes of the MLP base's hidden layers.
        num_tasks: tasks of a permuted stream.
        classes_per_task: classes per task of a split stream.
    """

    benchmark: str = "permuted-digits"
    scenario: str | None = None
    method: str = "fisher"
    ewc_lambda: float | None = None
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    fisher_mode: str = "exact"
    fisher_samples: int = 1000
    penalty_mode: str = "separate"
    gamma: float = 1.0
    seed: int = 0
    hidden: list[int] = field(default_factory=lambda: [100, 100])
    num_tasks: int = 5
    classes_per_task: int = 2

    def validate(self) -> RunConfig:
        """Checks every value; returns self with the method normalised and λ resolved.

        Raises:
            ValueError: naming the key, the value and what is allowed.
        """
        from sequential_learning.data.benchmarks import BENCHMARKS, SCENARIOS

        if self.benchmark not in BENCHMARKS:
            raise ValueError(
                f"benchmark: unknown {self.benchmark!r}; known benchmarks: {', '.join(BENCHMARKS)}"
            )
        if self.scenario is not None and self.scenario not in SCENARIOS:
            raise ValueError(f"scenario: unknown {self.scenario!r}; expected one of {SCENARIOS}")
        method = parse_method(self.method)
        self.method = method.value
        if self.ewc_lambda is None:
            self.ewc_lambda = DEFAULT_LAMBDA.get(method, 1.0)
        _check(self.ewc_lambda >= 0 and math.isfinite(self.ewc_lambda), "lambda",
               self.ewc_lambda, "a finite number >= 0")
        _check(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "a number > 0")
        _check(self.fisher_mode in FISHER_MODES, "fisher_mode", self.fisher_mode,
               f"one of {', '.join(FISHER_MODES)}")
        _check(self.fisher_samples >= 1, "fisher_samples", self.fisher_samples, "an integer >= 1")
        _check(self.penalty_mode in PENALTY_MODES, "penalty_mode", self.penalty_mode,
               f"one of {', '.join(PENALTY_MODES)}")
        _check(0 < self.gamma <= 1, "gamma", self.gamma, "a number in (0, 1]")
        _check(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden",
               self.hidden, "one or more layer sizes >= 1")
        _check(self.num_tasks >= 1, "num_tasks", self.num_tasks, "an integer >= 1")
        _check(self.classes_per_task >= 1, "classes_per_task", self.classes_per_task,
               "an integer >= 1")
        return self

    def to_dict(self) -> dict:
        """The resolved settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


def _check(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{key}: {value!r} is not allowed; expected {allowed}")


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    """`runs/<timestamp>-<benchmark>-<method>` (a fresh, not yet existing folder)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{config.benchmark}-{config.method}")
    path = Path(root) / f"{stamp}-{name}"
    k = 1
    while path.exists():
        k += 1
        path = Path(root) / f"{stamp}-{name}-{k}"
    return path


def run_experiment(config: RunConfig, out_dir: str | Path | None = None, progress: bool | str = False):
    """Builds the benchmark, model and tasks of `config`, trains them and writes the outputs.

    Args:
        config: the run's settings (validated here).
        out_dir: where results, models and figures go (None: nothing is written).
        progress: show a progress line (a string is used as its prefix).

    Returns:
        The run's `Results`.

    Example:
    ```python
    results = run_experiment(RunConfig(benchmark="split-digits", method="fisher"), "runs/x")
    ```
    """
    import keras

    from sequential_learning import plots
    from sequential_learning.data.benchmarks import make_benchmark
    from sequential_learning.manager import SequentialLearningManager
    from sequential_learning.models import mlp_base
    from sequential_learning.tasks import tasks_from_benchmark

    config.validate()
    stream = make_benchmark(
        config.benchmark, config.scenario, config.seed, config.num_tasks, config.classes_per_task
    )
    # The same seed gives the same initial weights for every method.
    keras.utils.set_random_seed(config.seed)
    base = mlp_base(stream.input_shape, config.hidden)
    tasks = tasks_from_benchmark(stream, base, config.batch_size, config.seed)
    manager = SequentialLearningManager(
        base,
        tasks,
        method=config.method,
        ewc_lambda=float(config.ewc_lambda),
        epochs=config.epochs,
        seed=config.seed,
        learning_rate=config.learning_rate,
        fisher_mode=config.fisher_mode,
        fisher_samples=config.fisher_samples,
        penalty_mode=config.penalty_mode,
        gamma=config.gamma,
        out_dir=out_dir,
        progress=progress,
        config={**config.to_dict(), "benchmark_info": stream.describe()},
    )
    results = manager.train_all()
    if out_dir is not None:
        plots.task_curves(results, Path(out_dir) / "task_curves.png")
        plots.accuracy_matrix(results, Path(out_dir) / "accuracy_matrix.png")
    return results
