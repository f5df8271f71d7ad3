"""GEM's metrics on hand-written accuracy matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sequential_learning.metrics import compute_metrics, forgetting

pytestmark = pytest.mark.all_backends

R = np.array([[0.9, 0.2, 0.1],
              [0.7, 0.8, 0.3],
              [0.6, 0.5, 0.95]])
B = np.array([0.1, 0.1, 0.2])


def test_metrics_by_hand():
    m = compute_metrics(R, B)
    assert m["acc"] == pytest.approx((0.6 + 0.5 + 0.95) / 3)
    assert m["bwt"] == pytest.approx(((0.6 - 0.9) + (0.5 - 0.8)) / 2)
    assert m["fwt"] == pytest.approx(((0.2 - 0.1) + (0.3 - 0.2)) / 2)
    # max over earlier rows minus the final one, tasks but the last
    assert m["forgetting"] == pytest.approx(((0.9 - 0.6) + (0.8 - 0.5)) / 2)


def test_forgetting_uses_the_best_earlier_accuracy():
    r = np.array([[0.5, 0.0, 0.0], [0.9, 0.6, 0.0], [0.4, 0.7, 0.8]])
    assert forgetting(r) == pytest.approx(((0.9 - 0.4) + (0.6 - 0.7)) / 2)


def test_lower_is_better_forgetting():
    r = np.array([[0.1, 1.0], [0.4, 0.2]])
    assert forgetting(r, higher_is_better=False) == pytest.approx(0.3)


def test_single_task_and_bad_shapes():
    m = compute_metrics([[0.8]], [0.1])
    assert m["acc"] == pytest.approx(0.8) and math.isnan(m["bwt"]) and math.isnan(m["fwt"])
    with pytest.raises(ValueError, match="square"):
        compute_metrics(np.ones((2, 3)), [0, 0])
    with pytest.raises(ValueError, match="one value per task"):
        compute_metrics(R, [0.1])
