"""The folded penalty equals the per-task sum of quadratics, in value and gradient (every
backend)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sequential_learning import backend
from sequential_learning.importance.penalty import ConsolidationPenalty

pytestmark = pytest.mark.all_backends


def _variables(rng):
    return [keras.Variable(rng.normal(size=(3, 2)).astype("float32")),
            keras.Variable(rng.normal(size=(2,)).astype("float32"))]


def _per_task(variables, terms, lam):
    """Brute force: λ/2 Σ_t Σ Ω_t (θ − θ*_t)² with autodiff gradients."""

    def brute():
        total = 0.0
        for omegas, anchors in terms:
            for v, o, a in zip(variables, omegas, anchors):
                o, a = ops.convert_to_tensor(o), ops.convert_to_tensor(a)
                total += ops.sum(o * ops.square(v - a))
        return 0.5 * lam * total, None

    total, _, grads = backend.ops().value_and_grad(brute, variables)
    return float(ops.convert_to_numpy(total)), [ops.convert_to_numpy(g) for g in grads]


def test_folded_separate_penalty_equals_per_task_sum(seeded):
    variables = _variables(seeded)
    penalty = ConsolidationPenalty(variables, ewc_lambda=3.0)
    terms = []
    for t in range(4):
        omegas = [seeded.random(v.shape).astype("float32") * (t != 1) for v in variables]
        if t == 2:
            omegas[0][0, 0] = 0.0  # an entry with zero importance in some tasks
        anchors = [v.numpy().copy() for v in variables]
        penalty.consolidate(omegas)
        terms.append((omegas, anchors))
        for v in variables:  # train on: the weights move away
            v.assign(v.numpy() + seeded.normal(size=v.shape).astype("float32"))
        value, grads = _per_task(variables, terms, 3.0)
        got = float(ops.convert_to_numpy(penalty.value()))
        assert got == pytest.approx(value, rel=1e-4, abs=1e-4)
        for g, want in zip(penalty.gradients(), grads, strict=True):
            np.testing.assert_allclose(ops.convert_to_numpy(g), want, rtol=1e-4, atol=1e-4)
        both_value, both_grads = penalty.value_and_gradients()
        assert float(ops.convert_to_numpy(both_value)) == pytest.approx(value, rel=1e-4, abs=1e-4)
        for g, want in zip(both_grads, grads, strict=True):
            np.testing.assert_allclose(ops.convert_to_numpy(g), want, rtol=1e-4, atol=1e-4)
    # One importance and one anchor per variable, whatever the number of tasks.
    assert len(penalty.importance) == len(variables) == len(penalty.anchor)


def test_online_mode_decays_and_moves_the_anchor(seeded):
    variables = _variables(seeded)
    penalty = ConsolidationPenalty(variables, ewc_lambda=2.0, mode="online", gamma=0.5)
    o1 = [np.ones(v.shape, "float32") for v in variables]
    penalty.consolidate(o1)
    for v in variables:
        v.assign(v.numpy() + 1.0)
    latest = [v.numpy().copy() for v in variables]
    o2 = [2 * np.ones(v.shape, "float32") for v in variables]
    penalty.consolidate(o2)
    for imp, anc, lat in zip(penalty.importance, penalty.anchor, latest, strict=True):
        np.testing.assert_allclose(imp.numpy(), 0.5 * 1 + 2)
        np.testing.assert_allclose(anc.numpy(), lat)
    assert {id(v) for v in penalty.own_variables()} == {
        id(v) for v in [*penalty.importance, *penalty.anchor, *penalty.root, penalty.constant]}
    assert float(ops.convert_to_numpy(penalty.value())) == pytest.approx(0.0)


def test_normalize_divides_by_the_maximum(seeded):
    variables = _variables(seeded)
    penalty = ConsolidationPenalty(variables, ewc_lambda=1.0, normalize=True)
    penalty.consolidate([np.full(v.shape, 4.0, "float32") for v in variables])
    assert float(np.max(penalty.importance[0].numpy())) == pytest.approx(1.0)


def test_bad_input(seeded):
    variables = _variables(seeded)
    with pytest.raises(ValueError, match="ewc_lambda must be"):
        ConsolidationPenalty(variables, ewc_lambda=-1.0)
    with pytest.raises(ValueError, match="gamma must be in"):
        ConsolidationPenalty(variables, 1.0, mode="online", gamma=0.0)
    with pytest.raises(ValueError, match="Unknown penalty mode"):
        ConsolidationPenalty(variables, 1.0, mode="sometimes")
    penalty = ConsolidationPenalty(variables, 1.0)
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \(3, 2\)"):
        penalty.consolidate([np.ones(2), np.ones(2)])
    with pytest.raises(ValueError, match="negative"):
        penalty.consolidate([-np.ones((3, 2)), np.ones(2)])
    with pytest.raises(ValueError, match="non-finite"):
        penalty.consolidate([np.full((3, 2), np.nan), np.ones(2)])
