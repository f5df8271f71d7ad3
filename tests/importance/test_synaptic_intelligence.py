"""Synaptic intelligence against a per-step Python loop, with and without an active penalty.

The most used PyTorch continual-learning library keeps a *view* of the weights instead of a copy
in its SI, so every importance is exactly 0 and "SI" equals fine-tuning. Here ω is checked
against an eager loop that takes copies, to 1e-5, and Ω must be non-zero after a task. Every
backend (the mirrored-strategy check is TensorFlow's: `test_distributed_trackers.py`).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sequential_learning import backend
from sequential_learning.importance import create_estimator
from sequential_learning.importance.base import TaskContext
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.importance.synaptic_intelligence import SynapticIntelligenceImportance
from sequential_learning.training import ConsolidationTrainer

pytestmark = pytest.mark.all_backends

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((5,))
    hidden = keras.layers.Dense(6, activation="tanh")
    out = keras.layers.Dense(3)(hidden(inp))
    return keras.Model(inp, out), hidden.trainable_variables


def _reference_loop(model, covered, x, y, batch, epochs, make_optimizer, penalty_terms, lam):
    """Eager SI: g from the task loss alone, update with g + λ Ω (θ − θ*), ω += −g · Δθ."""
    optimizer = make_optimizer()
    trainable = model.trainable_variables
    ids = {id(v): j for j, v in enumerate(covered)}
    position = {id(v): i for i, v in enumerate(trainable)}
    omega = [np.zeros(v.shape, np.float64) for v in covered]
    start = [v.numpy().copy() for v in covered]
    for _ in range(epochs):
        for s in range(0, len(x), batch):
            _, _, grads = backend.ops().value_and_grad(
                lambda s=s: (LOSS(y[s : s + batch], model(x[s : s + batch], training=True)), None),
                trainable)
            grads = [ops.convert_to_numpy(g) for g in grads]
            update = []
            for v, g in zip(trainable, grads):
                total = g
                if penalty_terms is not None and id(v) in ids:
                    o, a = penalty_terms[ids[id(v)]]
                    total = g + lam * o * (v.numpy() - a)
                update.append(ops.convert_to_tensor(total))
            before = [v.numpy().copy() for v in covered]
            optimizer.apply_gradients(zip(update, trainable))
            for j, v in enumerate(covered):
                g = grads[position[id(v)]]
                omega[j] += -g.astype(np.float64) * (v.numpy() - before[j])
    end = [v.numpy().copy() for v in covered]
    return omega, start, end


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("with_penalty", [False, True], ids=["no-penalty", "penalty"])
def test_path_integral_matches_per_step_loop(optimizer, with_penalty):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 5)).astype("float32")
    y = rng.integers(0, 3, 40)
    lam, xi = 3.0, 0.1

    def make_optimizer():
        return keras.optimizers.SGD(0.2) if optimizer == "sgd" else keras.optimizers.Adam(0.05)

    # Reference run.
    model, covered = _model()
    terms = None
    if with_penalty:
        terms = [(rng.random(v.shape).astype("float32"),
                  (v.numpy() + 0.3 * rng.standard_normal(v.shape)).astype("float32"))
                 for v in covered]
    omega_ref, start, end = _reference_loop(
        model, covered, x, y, 8, 2, make_optimizer, terms, lam
    )
    # The compiled train step, from the same initial weights and the same penalty.
    model, covered = _model()
    penalty = None
    if with_penalty:
        penalty = ConsolidationPenalty(covered, lam)
        penalty.consolidate([o for o, _ in terms])
        for anchor, (_, a) in zip(penalty.anchor, terms):
            anchor.assign(a)  # anchor θ* away from the start, so the penalty acts at once
    estimator = SynapticIntelligenceImportance(xi=xi)
    estimator.build(covered)
    estimator.begin_task(covered)
    trainer = ConsolidationTrainer(model, penalty, estimator, covered)
    trainer.compile(optimizer=make_optimizer(), loss=LOSS)
    trainer.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

    for got, want in zip(estimator.path_integral(), omega_ref):
        np.testing.assert_allclose(ops.convert_to_numpy(got), want, atol=1e-5, rtol=1e-4)
    for v, e in zip(covered, end):
        np.testing.assert_allclose(v.numpy(), e, atol=1e-5)
    context = TaskContext(task=None, model=model, variables=covered, x=x, y=y)
    omega = [ops.convert_to_numpy(o) for o in estimator.end_task(context)]
    for o, w, s, e in zip(omega, omega_ref, start, end):
        expected = np.maximum(w, 0) / ((e - s) ** 2 + xi)
        np.testing.assert_allclose(o, expected, atol=1e-5, rtol=1e-4)
        assert np.all(np.isfinite(o)) and np.all(o >= 0)
    assert sum(float(o.sum()) for o in omega) > 0  # not the view-instead-of-copy bug
    if optimizer == "sgd" and not with_penalty:
        # Plain SGD: Δθ = −η g, so ω = η Σ g² ≥ 0 everywhere.
        assert all(np.all(w >= -1e-7) for w in omega_ref)


def test_negative_path_integral_is_clipped_to_zero():
    variable = keras.Variable(np.zeros((3,), np.float32))
    estimator = SynapticIntelligenceImportance(xi=0.5)
    estimator.build([variable])
    estimator.begin_task([variable])
    old = ops.copy(ops.convert_to_tensor(variable))
    variable.assign([1.0, -1.0, 2.0])
    # ω = −g Δθ = [−1·… ] : the first weight moved *with* its gradient (the loss rose).
    estimator.track_step([ops.convert_to_tensor([1.0, 1.0, -0.5])], [old])
    np.testing.assert_allclose(ops.convert_to_numpy(estimator.path_integral()[0]),
                               [-1.0, 1.0, 1.0])
    context = TaskContext(task=None, model=None, variables=[variable], x=None, y=None)
    omega = ops.convert_to_numpy(estimator.end_task(context)[0])
    np.testing.assert_allclose(omega, [0.0, 1.0 / 1.5, 1.0 / 4.5], rtol=1e-6)


def test_omega_is_per_task_and_start_is_recorded_per_task():
    variable = keras.Variable(np.zeros((2,), np.float32))
    estimator = SynapticIntelligenceImportance(xi=1.0)
    estimator.build([variable])
    context = TaskContext(task=None, model=None, variables=[variable], x=None, y=None)
    results = []
    for target in ([1.0, 2.0], [3.0, 2.0]):
        estimator.begin_task([variable])
        old = ops.copy(ops.convert_to_tensor(variable))
        variable.assign(target)
        estimator.track_step([-ops.ones(2)], [old])
        results.append(ops.convert_to_numpy(estimator.end_task(context)[0]))
    np.testing.assert_allclose(results[0], [1.0 / 2.0, 2.0 / 5.0])
    np.testing.assert_allclose(results[1], [2.0 / 5.0, 0.0])  # second weight did not move


@pytest.mark.parametrize("xi", [0.0, -1.0, float("nan"), float("inf"), "abc"])
def test_bad_xi(xi):
    with pytest.raises(ValueError, match="xi must be"):
        SynapticIntelligenceImportance(xi=xi)
    with pytest.raises(ValueError, match="xi must be"):
        create_estimator("si", xi=xi)


def test_describe_records_xi_and_clipping():
    assert create_estimator("si", xi=0.3).describe() == {
        "method": "si", "xi": 0.3, "si_omega_clipped_at_zero": True
    }


def test_needs_gradients():
    variable = keras.Variable(np.zeros((2,), np.float32))
    estimator = SynapticIntelligenceImportance()
    estimator.build([variable])
    with pytest.raises(ValueError, match="gradient"):
        estimator.track_step(None, [ops.zeros(2)])
