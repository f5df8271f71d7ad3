"""Compatibility: the names `sequential_learning.augment` had, from where they now live.

Ablation by importance is the `sequential_learning.ablation` package; explanation drift is
`sequential_learning.interpret.drift`. New code imports from those.

Example:
```python
from sequential_learning.augment import threshold_model   # same as sequential_learning.ablation
```
"""

from sequential_learning.ablation import *  # noqa: F403
from sequential_learning.ablation import __all__ as _ablation_all
from sequential_learning.interpret.checkpoints import weights_after_task
from sequential_learning.interpret.drift import (
    DRIFT_METHODS,
    drift_runs,
    drift_text,
    explanation_drift,
    rankdata,
    spearman,
)
from sequential_learning.interpret.plots import plot_drift

__all__ = [
    *_ablation_all,
    "DRIFT_METHODS",
    "drift_runs",
    "drift_text",
    "explanation_drift",
    "plot_drift",
    "rankdata",
    "spearman",
    "weights_after_task",
]
