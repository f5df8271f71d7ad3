"""The fused optimizers follow Keras's Adam and SGD step for step."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sequential_learning.optimizers import FusedAdam, FusedSGD, make_optimizer


def _train(optimizer, steps=6, seed=0):
    """A few steps of a tiny dense model."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((5,))
    h = keras.layers.Dense(7, activation="tanh")(inp)
    model = keras.Model(inp, keras.layers.Dense(3)(h))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(32, 5)).astype("float32")
    y = rng.integers(0, 3, 32)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables

    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            value = loss(yb, model(xb, training=True))
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))

    for i in range(steps):
        step(x[i * 4:(i + 1) * 4 + 8], y[i * 4:(i + 1) * 4 + 8])
    return [v.numpy() for v in variables], [v.numpy() for v in optimizer.variables]


@pytest.mark.parametrize(
    "fused, reference",
    [
        (lambda: FusedAdam(0.01), lambda: keras.optimizers.Adam(0.01)),
        (lambda: FusedAdam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-3),
         lambda: keras.optimizers.Adam(0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-3)),
        (lambda: FusedAdam(keras.optimizers.schedules.ExponentialDecay(0.02, 2, 0.5)),
         lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.02, 2, 0.5))),
        (lambda: FusedAdam(0.01, weight_decay=0.1, clipnorm=0.05),
         lambda: keras.optimizers.Adam(0.01, weight_decay=0.1, clipnorm=0.05)),
        (lambda: FusedSGD(0.1), lambda: keras.optimizers.SGD(0.1)),
        (lambda: FusedSGD(0.1, momentum=0.9), lambda: keras.optimizers.SGD(0.1, momentum=0.9)),
        (lambda: FusedSGD(0.1, momentum=0.9, nesterov=True),
         lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)),
    ],
    ids=["adam", "adam-settings", "adam-schedule", "adam-decay-clip", "sgd", "momentum",
         "nesterov"],
)
def test_fused_update_equals_keras(fused, reference):
    weights, state = _train(fused())
    expected_weights, expected_state = _train(reference())
    assert len(state) == len(expected_state)
    # TensorFlow's Adam kernel forms 1 - beta in float32 (1 - 0.999f = 0.00100005, Keras uses
    # float32(0.001)): agreement to about 1e-4 relative. SGD's kernels agree to rounding.
    rtol, atol = (2e-4, 1e-6) if isinstance(fused(), FusedAdam) else (1e-6, 1e-7)
    for got, want in zip(weights + state, expected_weights + expected_state):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    # The weights moved: the comparison is not of two untouched models.
    untouched, _ = _train(reference(), steps=0)
    assert max(np.abs(a - b).max() for a, b in zip(weights, untouched)) > 1e-3


def _graph_ops(function, *args) -> set[str]:
    graph = function.get_concrete_function(*args).graph
    ops = {op.type for op in graph.get_operations()}
    for inner in graph._functions.values():
        ops |= {node.op for node in inner.definition.node_def}
    return ops


def _one_variable_steps(optimizer, sparse: bool):
    """Three steps on one variable with a dense or an IndexedSlices gradient; the ops used."""
    variable = tf.Variable(tf.reshape(tf.range(12, dtype=tf.float32), [4, 3]) / 10)
    optimizer.build([variable])

    @tf.function
    def step(scale):
        values = tf.fill([2, 3], scale)
        grad = (tf.IndexedSlices(values, tf.constant([0, 2]), tf.constant([4, 3])) if sparse
                else tf.tensor_scatter_nd_update(tf.zeros([4, 3]), [[0], [2]], values))
        optimizer.apply_gradients([(grad, variable)])

    for scale in (0.5, -0.2, 0.9):
        step(tf.constant(scale))
    return variable.numpy(), _graph_ops(step, tf.constant(0.0))


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_dense_gradients_take_the_fused_kernel(kind):
    fused = FusedAdam(0.01) if kind == "adam" else FusedSGD(0.1, momentum=0.9)
    _, ops = _one_variable_steps(fused, sparse=False)
    assert ("ResourceApplyAdam" if kind == "adam" else "ResourceApplyKerasMomentum") in ops


@pytest.mark.parametrize(
    "fused, reference, sparse",
    [
        (lambda: FusedAdam(0.05), lambda: keras.optimizers.Adam(0.05), True),
        (lambda: FusedSGD(0.1, momentum=0.5), lambda: keras.optimizers.SGD(0.1, momentum=0.5),
         True),
        (lambda: FusedAdam(0.05, amsgrad=True), lambda: keras.optimizers.Adam(0.05, amsgrad=True),
         False),
    ],
    ids=["adam-sparse", "sgd-sparse", "amsgrad"],
)
def test_sparse_gradients_and_amsgrad_fall_back_to_keras(fused, reference, sparse):
    got, ops = _one_variable_steps(fused(), sparse)
    want, _ = _one_variable_steps(reference(), sparse)
    assert not any(op.startswith("ResourceApply") for op in ops)
    np.testing.assert_array_equal(got, want)  # Keras's own update, bit for bit


def test_serialization_round_trip():
    optimizer = FusedAdam(0.003, beta_1=0.85)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, FusedAdam)
    assert restored.beta_1 == pytest.approx(0.85)
    assert float(restored.learning_rate) == pytest.approx(0.003)
    assert isinstance(FusedSGD(0.1), keras.optimizers.SGD)


def test_make_optimizer():
    assert isinstance(make_optimizer("Adam", 0.01), FusedAdam)
    sgd = make_optimizer("sgd", 0.2)
    assert isinstance(sgd, FusedSGD) and float(sgd.learning_rate) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'.*'adam' or 'sgd'"):
        make_optimizer("rmsprop", 0.1)
