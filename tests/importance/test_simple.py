"""The data-free estimators: none, weight decay, magnitude, inverse magnitude, random (every
backend)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sequential_learning.importance import create_estimator
from sequential_learning.importance.base import TaskContext
from sequential_learning.importance.simple import (
    InverseWeightMagnitudeImportance,
    RandomImportance,
)

pytestmark = pytest.mark.all_backends

VALUES = [np.array([[0.5, -0.25], [0.0, 2.0]], np.float32), np.array([-1.0, 0.125], np.float32)]


def _context(seed=0, task_index=0):
    variables = [keras.Variable(v) for v in VALUES]
    return TaskContext(task=None, model=None, variables=variables, x=None, y=None, seed=seed,
                       task_index=task_index)


@pytest.mark.parametrize(
    "method, options, formula",
    [
        ("none", {}, lambda v: np.zeros_like(v)),
        ("weight-decay", {}, lambda v: np.ones_like(v)),
        ("magnitude", {}, np.abs),
        ("inverse-magnitude", {}, lambda v: 1.0 / (np.abs(v) + 1e-2)),
        ("inverse-magnitude", {"epsilon": 0.5}, lambda v: 1.0 / (np.abs(v) + 0.5)),
    ],
)
def test_closed_forms(method, options, formula):
    omega = create_estimator(method, **options).end_task(_context())
    for o, v in zip(omega, VALUES, strict=True):
        np.testing.assert_allclose(ops.convert_to_numpy(o), formula(v), rtol=1e-6)
        assert o.shape == v.shape


def test_random_is_seeded_uniform_and_fresh_per_task():
    estimator = create_estimator("random")
    first = [ops.convert_to_numpy(o) for o in estimator.end_task(_context(seed=3, task_index=0))]
    again = [ops.convert_to_numpy(o) for o in create_estimator("random").end_task(_context(3, 0))]
    other_task = [ops.convert_to_numpy(o) for o in estimator.end_task(_context(3, 1))]
    other_seed = [ops.convert_to_numpy(o) for o in estimator.end_task(_context(4, 0))]
    for a, b, c, d in zip(first, again, other_task, other_seed):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c) and not np.array_equal(a, d)
        assert np.all((a >= 0) & (a < 1))
    fixed = RandomImportance(seed=7)
    np.testing.assert_array_equal(ops.convert_to_numpy(fixed.end_task(_context(1))[0]),
                                  ops.convert_to_numpy(fixed.end_task(_context(2))[0]))
    assert fixed.describe() == {"method": "random", "random_seed": 7}


@pytest.mark.parametrize("epsilon", [0.0, -1e-3, float("nan"), "x"])
def test_bad_epsilon(epsilon):
    with pytest.raises(ValueError, match="epsilon must be"):
        InverseWeightMagnitudeImportance(epsilon)


def test_bad_random_seed():
    with pytest.raises(ValueError, match="seed"):
        RandomImportance(seed=1.5)


def test_controls_describe_their_settings():
    assert create_estimator("inverse-magnitude", epsilon=0.1).describe() == {
        "method": "inverse-magnitude", "epsilon": 0.1}
    assert create_estimator("magnitude").describe() == {"method": "magnitude"}
