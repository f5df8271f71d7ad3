"""MAS: the closed form and the vectorised fallback against a per-sample Python loop (every
backend)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sequential_learning import backend
from sequential_learning.importance import create_estimator
from sequential_learning.importance.base import TaskContext
from sequential_learning.importance.mas import MASImportance, mas_importance, mas_objective
from sequential_learning.importance.per_sample import PerSampleReducer

pytestmark = pytest.mark.all_backends


def _grads(fn, variables):
    """The gradients of `fn()` (a scalar) as NumPy arrays (the backend's autodiff)."""
    _, _, grads = backend.ops().value_and_grad(lambda: (fn(), None), variables)
    return [ops.convert_to_numpy(g) for g in grads]


def _loop(model, variables, x):
    """Brute force: (1/N) Σ_n |∂ ‖f(x_n)‖² / ∂θ|, one sample at a time, training=False."""
    totals = [np.zeros(v.shape, np.float64) for v in variables]
    for n in range(len(x)):
        grads = _grads(lambda n=n: ops.sum(ops.square(model(x[n : n + 1], training=False))),
                       variables)
        for t, g in zip(totals, grads):
            t += np.abs(g)
    return [t / len(x) for t in totals]


def _conv_dense_model(batchnorm: bool = False, dropout: bool = False):
    inp = keras.Input((6, 5, 2))
    h = keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="relu")(inp)
    if batchnorm:
        h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(5, activation="tanh")(h)
    if dropout:
        h = keras.layers.Dropout(0.5)(h)
    base = keras.Model(inp, h)
    inp2 = keras.Input((6, 5, 2))
    return base, keras.Model(inp2, keras.layers.Dense(4)(base(inp2)))


@pytest.mark.parametrize("batchnorm", [False, True], ids=["closed-form", "fallback"])
def test_matches_per_sample_loop(seeded, batchnorm):
    base, model = _conv_dense_model(batchnorm=batchnorm)
    x = seeded.standard_normal((11, 6, 5, 2)).astype("float32")
    variables = base.trainable_variables
    got = mas_importance(model, variables, x, chunk_size=4)
    want = _loop(model, variables, x)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-4)
    assert all(float(g.max()) > 0 for g in got)
    reducer = PerSampleReducer(model, variables, mas_objective, "abs")
    reducer(x)
    if batchnorm:
        assert 0 < reducer.closed_form_fraction < 1
    else:
        assert reducer.closed_form_fraction == pytest.approx(1.0)


def test_sequential_model_and_all_variables(seeded):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(2)])
    x = seeded.standard_normal((9, 4)).astype("float32")
    got = mas_importance(model, model.trainable_variables, x)
    for g, w in zip(got, _loop(model, model.trainable_variables, x)):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-4)


def test_linear_model_by_hand(seeded):
    """f(x) = W x: ∂‖Wx‖²/∂W = 2 (W x) xᵀ, so Ω = mean |2 (W x) xᵀ| (kernel stored as xᵀ W)."""
    dense = keras.layers.Dense(2, use_bias=False)
    model = keras.Sequential([keras.Input((3,)), dense])
    x = seeded.standard_normal((7, 3)).astype("float32")
    kernel = dense.kernel.numpy()
    expected = np.mean([np.abs(2.0 * np.outer(xi, xi @ kernel)) for xi in x], axis=0)
    (got,) = mas_importance(model, [dense.kernel], x)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_per_sample_not_batch_gradient(seeded):
    """Σ_n |g_n| ≥ |Σ_n g_n|: MAS per sample is larger than |batch gradient| where samples differ."""
    base, model = _conv_dense_model()
    x = seeded.standard_normal((16, 6, 5, 2)).astype("float32")
    variables = base.trainable_variables
    per_sample = mas_importance(model, variables, x)
    grads = _grads(lambda: ops.sum(ops.square(model(x, training=False))) / len(x), variables)
    batch = [np.abs(g) for g in grads]
    for p, b in zip(per_sample, batch):
        assert np.all(p >= b - 1e-6)
    assert any(np.any(p > b + 1e-4) for p, b in zip(per_sample, batch))


def test_inference_mode_and_no_labels(seeded):
    base, model = _conv_dense_model(dropout=True)
    x = seeded.standard_normal((8, 6, 5, 2)).astype("float32")
    estimator = create_estimator("mas", fisher_samples=5)
    assert isinstance(estimator, MASImportance)
    context = TaskContext(task=None, model=model, variables=base.trainable_variables, x=x, y=None)
    first = [ops.convert_to_numpy(o) for o in estimator.end_task(context)]
    second = [ops.convert_to_numpy(o) for o in estimator.end_task(context)]
    for a, b, w in zip(first, second, _loop(model, base.trainable_variables, x[:5])):
        np.testing.assert_array_equal(a, b)  # Dropout is off: the same numbers every time
        np.testing.assert_allclose(a, w, atol=1e-5, rtol=1e-4)
    assert estimator.describe() == {"method": "mas", "mas_samples": 5, "mas_per_sample": True}


def test_bad_input(seeded):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="at least one input"):
        mas_importance(model, model.trainable_variables, np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="samples"):
        MASImportance(samples=0)
