"""Acceptance (the slow one): MAS and SI beat fine-tuning by 10 points of ACC on permuted-digits.

One honest run per method with the defaults (5 tasks x 10 epochs of the embedded digits, MLP
64-100-100-10, Adam 1e-3, batch 32, one shared head) and each method's default λ, found by
`seql sweep` (see `DEFAULT_LAMBDA`). Three runs, about a minute on two idle cores. Fisher against
fine-tuning is `tests/test_acceptance.py`.
"""

from __future__ import annotations

import numpy as np
import pytest

from sequential_learning.config import DEFAULT_LAMBDA, RunConfig, run_experiment
from sequential_learning.importance import EWCMethod

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fine_tuning():
    return run_experiment(RunConfig(method="none"))


# MAS and SI run with the penalty their papers define (the default for them): one cumulative Ω
# anchored at the weights after the latest task, i.e. the `online` mode with γ = 1. With
# per-task anchors (`separate`) SI peaked at 9.8 points on this seed (λ 70), MAS at 10.4 (λ 0.5).
@pytest.mark.parametrize("method", [EWCMethod.MAS, EWCMethod.SYNAPTIC_INTELLIGENCE])
def test_slow_family_member_beats_fine_tuning_on_permuted_digits(method, fine_tuning):
    results = run_experiment(RunConfig(method=method.value))
    assert results.config["ewc_lambda"] == DEFAULT_LAMBDA[method]
    assert results.config["penalty_mode"] == "online" and results.config["gamma"] == 1.0
    none, ours = fine_tuning.metrics, results.metrics
    assert ours["acc"] >= none["acc"] + 0.10, (method.value, none, ours)
    assert abs(ours["bwt"]) < abs(none["bwt"])
    # Same stream, seed and initialisation: the first task is learned identically.
    assert results.accuracy_matrix[0, 0] == fine_tuning.accuracy_matrix[0, 0]
    # Ω summaries are in the results, every task, every covered variable, finite and >= 0.
    assert len(results.importance_summary) == 5
    for summary in results.importance_summary:
        assert summary and all(np.isfinite(s["mean"]) and s["max"] > 0 for s in summary.values())
