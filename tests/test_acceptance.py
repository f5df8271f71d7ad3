"""Acceptance: on permuted-digits with the defaults, Fisher EWC forgets less than fine-tuning.

One honest run per method (5 tasks x 10 epochs of the embedded digits, MLP 64-100-100-10): the
slowest test of the foundation, about 40 s on two cores.
"""

from __future__ import annotations

import pytest

from sequential_learning.config import RunConfig, run_experiment

pytestmark = pytest.mark.slow


def test_fisher_beats_fine_tuning_on_permuted_digits():
    none = run_experiment(RunConfig(method="none"))
    fisher = run_experiment(RunConfig(method="fisher"))
    assert fisher.config["ewc_lambda"] == 50.0 and fisher.config["fisher_mode"] == "exact"
    assert fisher.metrics["acc"] >= none.metrics["acc"] + 0.10, (none.metrics, fisher.metrics)
    assert abs(fisher.metrics["bwt"]) < abs(none.metrics["bwt"])
    # Same stream, seed and initialisation: the first task's accuracy after task 1 is identical.
    assert fisher.accuracy_matrix[0, 0] == none.accuracy_matrix[0, 0]
