"""The mode names of the Fisher estimator and the penalty, free of TensorFlow.

They live here, not in `fisher.py` / `penalty.py`, so that the config and the command line can
check settings without importing TensorFlow.
"""

from __future__ import annotations

#: How `FisherImportance` forms the Fisher information (see `importance.fisher`).
FISHER_MODES = ("exact", "sampled", "empirical", "batch")

#: How `ConsolidationPenalty` keeps Ω: a term per task, one online sum, or the latest task's Ω
#: only (see `importance.penalty`).
PENALTY_MODES = ("separate", "online", "latest")
