"""sequential_learning: sequential (continual) learning for Keras 3.

The public API is re-exported here lazily (PEP 562), so `import sequential_learning` imports
neither Keras nor any backend's framework: the Keras backend (`KERAS_BACKEND`, or `seql --backend`)
can still be chosen after it, TensorFlow is never loaded under JAX or PyTorch, and the command line
can silence TensorFlow's start-up log before TensorFlow loads.

Example:
```python
import sequential_learning as sl
stream = sl.benchmarks.make_benchmark("permuted-digits")
base = sl.models.mlp_base(stream.input_shape)
tasks = sl.tasks_from_benchmark(stream, base)
manager = sl.SequentialLearningManager(base, tasks, method=sl.EWCMethod.FISHER_MATRIX,
                                       ewc_lambda=300.0, epochs=10)
results = manager.train_all()
```
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "SequentialTask": "sequential_learning.tasks",
    "tasks_from_benchmark": "sequential_learning.tasks",
    "SequentialLearningManager": "sequential_learning.manager",
    "TrainingDivergedError": "sequential_learning.manager",
    "ConsolidationTrainer": "sequential_learning.training",
    "ContinualTrainer": "sequential_learning.training",
    "ContinualModel": "sequential_learning.continual_model",
    "EWCMethod": "sequential_learning.importance",
    "ImportanceEstimator": "sequential_learning.importance",
    "ConsolidationPenalty": "sequential_learning.importance",
    "create_estimator": "sequential_learning.importance",
    "fisher_information": "sequential_learning.importance",
    "Results": "sequential_learning.results",
    "RunConfig": "sequential_learning.config",
    "run_experiment": "sequential_learning.config",
    "compute_metrics": "sequential_learning.metrics",
}
_MODULES = {
    "benchmarks": "sequential_learning.data.benchmarks",
    "datasets": "sequential_learning.data.datasets",
    "models": "sequential_learning.models",
    "metrics": "sequential_learning.metrics",
    "plots": "sequential_learning.plots",
    "importance": "sequential_learning.importance",
    "interpret": "sequential_learning.interpret",
    "augment": "sequential_learning.augment",
    "backend": "sequential_learning.backend",
}

__all__ = sorted([*_EXPORTS, *_MODULES])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    raise AttributeError(f"module 'sequential_learning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
