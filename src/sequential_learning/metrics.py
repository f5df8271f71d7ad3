"""Continual-learning metrics from the accuracy matrix (GEM's definitions).

`R[i, j]` is the metric (accuracy) on task j after training task i; `b[j]` that of the randomly
initialised model on task j, measured before any training.

* ACC = mean_j R[T−1, j]
* BWT = mean_{j<T−1} (R[T−1, j] − R[j, j])         (negative: forgetting)
* FWT = mean_{j>0}   (R[j−1, j] − b[j])
* forgetting (Chaudhry et al. 2018) = mean_{j<T−1} (max_{l<T−1} R[l, j] − R[T−1, j])

For a metric where lower is better (MSE) ACC is the mean final error, BWT and FWT keep their
formulas (so a positive BWT is then forgetting), and forgetting is
`R[T−1, j] − min_{l<T−1} R[l, j]`, positive when the error grew.
"""

from __future__ import annotations

import numpy as np


def _matrix(accuracy_matrix) -> np.ndarray:
    r = np.asarray(accuracy_matrix, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] == 0:
        raise ValueError(f"The accuracy matrix must be square T x T with T >= 1, got {r.shape}")
    return r


def average_accuracy(accuracy_matrix) -> float:
    """ACC: the mean of the last row of the accuracy matrix.

    Args:
        accuracy_matrix: `R`, a square T x T array-like; `R[i, j]` is the accuracy on task j
            after training task i.

    Returns:
        The mean accuracy over every task after the last one is trained, as a float.

    Example:
    ```python
    average_accuracy([[0.9, 0.1], [0.7, 0.95]])   # 0.825
    ```
    """
    return float(_matrix(accuracy_matrix)[-1].mean())


def backward_transfer(accuracy_matrix) -> float:
    """BWT: how learning later tasks changed earlier ones (nan for a single task).

    Args:
        accuracy_matrix: `R`, a square T x T array-like (`R[i, j]`: task j after task i).

    Returns:
        `mean_{j<T-1} (R[T-1, j] - R[j, j])` as a float; negative when earlier tasks were forgotten.

    Example:
    ```python
    backward_transfer([[0.9, 0.1], [0.7, 0.95]])   # -0.2
    ```
    """
    r = _matrix(accuracy_matrix)
    t = r.shape[0]
    if t < 2:
        return float("nan")
    return float(np.mean([r[-1, j] - r[j, j] for j in range(t - 1)]))


def forward_transfer(accuracy_matrix, baseline) -> float:
    """FWT: accuracy on task j just before training it, against a random model's (nan if T=1).

    Args:
        accuracy_matrix: `R`, a square T x T array-like (`R[i, j]`: task j after task i).
        baseline: `b`, one accuracy per task of the untrained (randomly initialised) model.

    Returns:
        `mean_{j>0} (R[j-1, j] - b[j])` as a float.

    Raises:
        ValueError: when `baseline` does not hold one value per task.

    Example:
    ```python
    forward_transfer([[0.9, 0.1], [0.7, 0.95]], baseline=[0.1, 0.1])   # 0.0
    ```
    """
    r = _matrix(accuracy_matrix)
    b = np.asarray(baseline, dtype=np.float64)
    t = r.shape[0]
    if b.shape != (t,):
        raise ValueError(f"The baseline needs one value per task ({t}), got shape {b.shape}")
    if t < 2:
        return float("nan")
    return float(np.mean([r[j - 1, j] - b[j] for j in range(1, t)]))


def forgetting(accuracy_matrix, higher_is_better: bool = True) -> float:
    """Average forgetting over all tasks but the last (nan for a single task), Chaudhry et al. 2018.

    Args:
        accuracy_matrix: `R`, a square T x T array-like (`R[i, j]`: task j after task i).
        higher_is_better: False for an error metric such as MSE: forgetting is then how much the
            final error exceeds the lowest earlier one.

    Returns:
        `mean_{j<T-1} (max_{l<T-1} R[l, j] - R[T-1, j])` as a float (≥ 0 up to rounding).

    Example:
    ```python
    forgetting([[0.9, 0.1], [0.7, 0.95]])   # 0.2
    ```
    """
    r = _matrix(accuracy_matrix)
    t = r.shape[0]
    if t < 2:
        return float("nan")
    earlier = r[:-1, :-1]
    final = r[-1, :-1]
    if higher_is_better:
        return float(np.mean(earlier.max(axis=0) - final))
    return float(np.mean(final - earlier.min(axis=0)))


def compute_metrics(accuracy_matrix, baseline, higher_is_better: bool = True) -> dict[str, float]:
    """All four metrics as a dict with keys `acc`, `bwt`, `fwt`, `forgetting`.

    Args:
        accuracy_matrix: `R`, a square T x T array-like (`R[i, j]`: task j after task i).
        baseline: one accuracy per task of the untrained model (for FWT).
        higher_is_better: False for an error metric such as MSE (see `forgetting`).

    Returns:
        `{"acc": ..., "bwt": ..., "fwt": ..., "forgetting": ...}`, floats (nan where undefined).

    Example:
    ```python
    compute_metrics([[0.9, 0.1], [0.7, 0.95]], baseline=[0.1, 0.1])
    # {'acc': 0.825, 'bwt': -0.2, 'fwt': 0.0, 'forgetting': 0.2}
    ```
    """
    return {
        "acc": average_accuracy(accuracy_matrix),
        "bwt": backward_transfer(accuracy_matrix),
        "fwt": forward_transfer(accuracy_matrix, baseline),
        "forgetting": forgetting(accuracy_matrix, higher_is_better),
    }
