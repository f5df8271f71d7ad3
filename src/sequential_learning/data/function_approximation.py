"""`function_approximation`: a regression stream, one target function per task.

Inputs are drawn uniformly in `x_lim`; the metric is the mean squared error (lower is better).

Example:
```python
stream = function_approximation(num_tasks=3, functions=["sin", "square", "abs"])
```
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sequential_learning.data.stream import (
    Benchmark,
    TaskData,
    check_count,
    check_scenario,
)

#: Target functions of the function-approximation stream, by name (on inputs in `x_lim`).
FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sin": lambda x: np.sin(np.pi * x),
    "cos": lambda x: np.cos(np.pi * x),
    "square": lambda x: x**2,
    "abs": np.abs,
    "cube": lambda x: x**3,
    "tanh": lambda x: np.tanh(3.0 * x),
    "gauss": lambda x: np.exp(-4.0 * x**2),
    "linear": lambda x: x,
}
_FUNCTION_LABELS = {"sin": "sin(πx)", "cos": "cos(πx)", "square": "x²", "abs": "|x|",
                    "cube": "x³", "tanh": "tanh(3x)", "gauss": "exp(−4x²)", "linear": "x"}


def function_approximation(
    num_tasks: int = 5,
    scenario: str = "task",
    functions: Sequence[str | Callable[[np.ndarray], np.ndarray]] | None = None,
    x_lim: tuple[float, float] = (-1.0, 1.0),
    train_size: int = 1024,
    validation_size: int = 256,
    noise: float = 0.0,
    seed: int = 0,
    name: str = "function-approximation",
) -> Benchmark:
    """A regression stream: inputs uniform in `x_lim`, one target function per task (MSE).

    The reference design's FunctionApproximationTask as a stream. Targets are `(N, 1)` float32;
    task models output one unit and are trained and measured with the mean squared error, a
    metric where lower is better.

    Args:
        num_tasks: how many tasks (ignored when `functions` is given); functions are taken from
            `FUNCTIONS` in order, cycling when there are more tasks than functions.
        scenario: `task` (default: a 1-unit head per task) or `domain` (one shared head, the task
            unknown). `class` does not apply to regression.
        functions: names from `FUNCTIONS`, or callables mapping x `(N, 1)` to y `(N, 1)`.
        x_lim: the input interval.
        train_size, validation_size: samples per task.
        noise: standard deviation of Gaussian noise added to the training targets.
        seed: seed of the inputs and the noise.
        name: the benchmark's name.

    Returns:
        A `Benchmark` with `task_type="regression"`.

    Example:
    ```python
    stream = function_approximation(functions=["sin", "cos", "square"], x_lim=(-2, 2))
    ```
    """
    check_scenario(scenario, ("task", "domain"), f"{name} (a regression stream)")
    if functions is None:
        names = list(FUNCTIONS)
        functions = [names[t % len(names)] for t in range(check_count(num_tasks, "num_tasks"))]
    low, high = (float(v) for v in x_lim)
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"x_lim: {x_lim!r} is not allowed; expected (low, high) with low < high")
    check_count(train_size, "train_size")
    check_count(validation_size, "validation_size")
    rng = np.random.default_rng(seed)
    tasks, labels = [], []
    for t, fn in enumerate(functions):
        if isinstance(fn, str):
            if fn not in FUNCTIONS:
                raise ValueError(
                    f"functions: unknown {fn!r}; known functions: {', '.join(FUNCTIONS)}"
                )
            label, fn = _FUNCTION_LABELS[fn], FUNCTIONS[fn]
        else:
            label = getattr(fn, "__name__", f"f{t + 1}")
        labels.append(label)
        x_train = rng.uniform(low, high, (train_size, 1)).astype(np.float32)
        x_val = rng.uniform(low, high, (validation_size, 1)).astype(np.float32)
        y_train = np.asarray(fn(x_train), np.float32).reshape(train_size, 1)
        if noise:
            y_train = y_train + rng.normal(0.0, noise, y_train.shape).astype(np.float32)
        tasks.append(
            TaskData(
                name=f"task {t + 1} ({label})",
                x_train=x_train,
                y_train=y_train,
                x_val=x_val,
                y_val=np.asarray(fn(x_val), np.float32).reshape(validation_size, 1),
            )
        )
    return Benchmark(
        name=name,
        scenario=scenario,
        tasks=tasks,
        head_sizes=[1] * len(tasks),
        shared_head=scenario != "task",
        input_shape=(1,),
        task_type="regression",
        details={"functions": labels, "x_lim": [low, high], "noise": float(noise)},
    )

