"""Fisher information: the closed form and the vectorised fallback against a per-sample loop
(every backend)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sequential_learning import backend
from sequential_learning.importance.fisher import (
    FisherImportance,
    fisher_information,
    fisher_objective,
    sample_labels,
)
from sequential_learning.importance.per_sample import (
    PerSampleReducer,
    ReducerCache,
    reference_per_sample,
)

pytestmark = pytest.mark.all_backends


def _conv_dense_model(batchnorm: bool = False):
    """A nested model: a base with strided/SAME and VALID convolutions and Dense, then a head."""
    inp = keras.Input((7, 6, 2))
    h = keras.layers.Conv2D(3, 3, strides=2, padding="same", activation="relu")(inp)
    if batchnorm:
        h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Conv2D(2, (2, 3), padding="valid", activation="tanh")(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(5, activation="relu")(h)
    base = keras.Model(inp, h)
    inp2 = keras.Input((7, 6, 2))
    model = keras.Model(inp2, keras.layers.Dense(4)(base(inp2)))
    return base, model


def _reference(model, variables, x, labels, mode):
    ref = reference_per_sample(model, variables, x, labels, fisher_objective(mode))
    return [r / len(x) for r in ref]


@pytest.mark.parametrize("mode", ["exact", "sampled", "empirical"])
def test_closed_form_matches_per_sample_loop(seeded, mode):
    base, model = _conv_dense_model()
    x = seeded.random((13, 7, 6, 2)).astype("float32")
    y = seeded.integers(0, 4, 13)
    variables = base.trainable_variables
    fisher = fisher_information(model, variables, x, y, mode=mode, seed=5, chunk_size=5)
    labels = {"exact": y, "empirical": y, "sampled": sample_labels(model, x, 5)}[mode]
    expected = _reference(model, variables, x, labels, mode)
    for got, want in zip(fisher, expected, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)
    assert all(float(f.max()) > 0 for f in fisher)


def test_closed_form_covers_dense_and_conv(seeded):
    base, model = _conv_dense_model()
    x = seeded.random((4, 7, 6, 2)).astype("float32")
    reducer = PerSampleReducer(model, base.trainable_variables, fisher_objective("exact"))
    reducer(x)
    assert reducer.closed_form_fraction == pytest.approx(1.0)


def test_fallback_for_other_layers_matches_loop(seeded):
    base, model = _conv_dense_model(batchnorm=True)
    x = seeded.random((9, 7, 6, 2)).astype("float32")
    y = seeded.integers(0, 4, 9)
    variables = base.trainable_variables  # includes BatchNorm's gamma and beta
    reducer = PerSampleReducer(model, variables, fisher_objective("exact"), chunk_size=4)
    got = [g / len(x) for g in reducer(x, y)]
    assert 0 < reducer.closed_form_fraction < 1
    for g, w in zip(got, _reference(model, variables, x, y, "exact"), strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-4)


def test_sequential_and_shared_layer_use_the_fallback(seeded):
    dense = keras.layers.Dense(3, activation="tanh")
    inp = keras.Input((3,))
    out = keras.layers.Dense(2)(dense(dense(inp)))  # the same layer called twice
    model = keras.Model(inp, out)
    x = seeded.random((6, 3)).astype("float32")
    y = seeded.integers(0, 2, 6)
    got = fisher_information(model, model.trainable_variables, x, y, mode="empirical")
    want = _reference(model, model.trainable_variables, x, y, "empirical")
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-4)
    seq = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                            keras.layers.Dense(2)])
    got = fisher_information(seq, seq.trainable_variables, x, y, mode="exact")
    want = _reference(seq, seq.trainable_variables, x, y, "exact")
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, rtol=1e-4)


def test_sampled_mode_is_reproducible_and_seeded(seeded):
    _, model = _conv_dense_model()
    x = seeded.random((50, 7, 6, 2)).astype("float32")
    a = sample_labels(model, x, seed=1)
    b = sample_labels(model, x, seed=1)
    c = sample_labels(model, x, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_softmax_outputs_give_the_same_fisher(seeded):
    inp = keras.Input((4,))
    hidden = keras.layers.Dense(6, activation="relu")
    logits_layer = keras.layers.Dense(3)
    logits = logits_layer(hidden(inp))
    m_logits = keras.Model(inp, logits)
    m_probs = keras.Model(inp, keras.layers.Softmax()(logits))
    x = seeded.random((8, 4)).astype("float32")
    variables = hidden.trainable_variables
    a = fisher_information(m_logits, variables, x, mode="exact", from_logits=True)
    b = fisher_information(m_probs, variables, x, mode="exact", from_logits=False)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, atol=1e-5, rtol=1e-4)


def test_batch_mode_is_squared_minibatch_gradients(seeded):
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    x = seeded.random((8, 3)).astype("float32")
    y = seeded.integers(0, 2, 8)
    got = fisher_information(model, model.trainable_variables, x, y, mode="batch", batch_size=4)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    want = [np.zeros(v.shape) for v in model.trainable_variables]
    for s in (0, 4):
        _, _, grads = backend.ops().value_and_grad(
            lambda s=s: (loss(y[s : s + 4], model(x[s : s + 4], training=False)), None),
            model.trainable_variables)
        for w, g in zip(want, grads, strict=True):
            w += np.square(ops.convert_to_numpy(g)) / 2
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-6)


def test_bad_input():
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    x = np.zeros((4, 3), "float32")
    with pytest.raises(ValueError, match="Unknown Fisher mode 'nope'"):
        fisher_information(model, model.trainable_variables, x, mode="nope")
    with pytest.raises(ValueError, match="at least one input"):
        fisher_information(model, model.trainable_variables, x[:0])
    with pytest.raises(ValueError, match="needs the true labels"):
        fisher_information(model, model.trainable_variables, x, mode="empirical")
    with pytest.raises(ValueError, match="fisher_samples"):
        FisherImportance(samples=0)


def test_reducer_cache_reuses_one_compilation_across_tasks_and_wrappers(seeded):
    base, model = _conv_dense_model()
    head = model.layers[-1]
    inp = keras.Input((7, 6, 2))
    wrapper = keras.Model(inp, head(base(inp)))  # the same layers: another task's model object
    x = seeded.random((9, 7, 6, 2)).astype("float32")
    variables = base.trainable_variables
    cache = ReducerCache()
    first = fisher_information(model, variables, x, cache=cache)
    # The weights move (a new task): the cached computation reads the current values.
    for v in variables:
        v.assign(v.numpy() * 1.5)
    second = fisher_information(wrapper, variables, x, cache=cache)
    assert len(cache) == 1
    for got, want in zip(second, fisher_information(model, variables, x), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(first, second))
    # Another objective, or a model made of other layers, is another entry.
    fisher_information(model, variables, x, mode="empirical", y=np.zeros(9, np.int64), cache=cache)
    _, other = _conv_dense_model()
    fisher_information(other, other.trainable_variables, x, cache=cache)
    assert len(cache) == 3
