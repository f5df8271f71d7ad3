"""A non-finite importance (weights diverged under a huge λ) names the task, method and λ."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning.errors import SeqlError
from sequential_learning.importance.base import ImportanceEstimator
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.plugins.consolidation import Consolidation


class _Diverged(ImportanceEstimator):
    """Ω of weights that diverged: infinite in one place, NaN in another."""

    name = "diverged"

    def end_task(self, context):
        out = [np.ones(v.shape, np.float32) for v in context.variables]
        out[0].flat[0], out[0].flat[1] = np.inf, np.nan
        return out


def test_non_finite_importance_names_the_task_method_and_lambda(setup_factory):
    setup = setup_factory(hidden=(5,))
    plugin = setup.build(Consolidation(_Diverged(), ewc_lambda=1e30))
    exp = setup.experience(1)
    with pytest.raises(SeqlError) as info:
        plugin.after_training_exp(exp)
    message = str(info.value)
    assert message == (
        f"Importance of task 2 ({exp.task.name!r}), method diverged: variable "
        f"{setup.run.covered[0].path} has non-finite values (2 of 30): the weights diverged; "
        "lower lambda (now 1e+30) or the learning rate"
    )
    assert not plugin.penalty.active  # nothing was folded in


def test_the_penalty_alone_still_names_lambda():
    penalty = ConsolidationPenalty([keras.Variable(np.zeros((3, 2), np.float32))],
                                   ewc_lambda=300.0)
    with pytest.raises(SeqlError, match=r"^Importance: variable .* has non-finite values "
                                        r"\(6 of 6\).*lower lambda \(now 300\)"):
        penalty.consolidate([np.full((3, 2), np.nan)])
