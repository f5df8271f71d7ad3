"""The shared graph walker: order of layers, observed values, nesting, inference mode (every
backend)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning.graph import GraphWalker, call_layer, functional_graph, output_operation

pytestmark = pytest.mark.all_backends


def _np(x) -> np.ndarray:
    """A tensor on the host (torch outputs require grad: `np.asarray` alone refuses them)."""
    return keras.ops.convert_to_numpy(x)


def _model():
    """inp -> base (nested: dense_a, dropout, dense_b) -> head."""
    keras.utils.set_random_seed(0)
    inner_in = keras.Input((4,))
    h = keras.layers.Dense(5, activation="relu", name="dense_a")(inner_in)
    h = keras.layers.Dropout(0.5, name="dropout")(h)
    h = keras.layers.Dense(3, name="dense_b")(h)
    base = keras.Model(inner_in, h, name="base")
    inp = keras.Input((4,))
    out = keras.layers.Dense(2, activation="softmax", name="head")(base(inp))
    return keras.Model(inp, out, name="outer")


class _Recorder(GraphWalker):
    def __init__(self):
        self.seen = []

    def call(self, op, args, kwargs, at_output):
        out = super().call(op, args, kwargs, at_output)
        self.seen.append((op.name, args[0], out, at_output))
        return out


def test_visits_layers_in_order_descending_into_nested_models():
    model = _model()
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    walker = _Recorder()
    y = walker.run(model, x)
    names = [name for name, *_ in walker.seen]
    # A nested model's call is seen after its own layers (it returns once they have run).
    assert names == ["dense_a", "dropout", "dense_b", "base", "head"]
    assert [name for name, *_, final in walker.seen if final] == ["head"]
    np.testing.assert_array_equal(_np(y), _np(model(x, training=False)))


def test_observed_inputs_and_outputs_equal_direct_calls():
    model = _model()
    x = np.random.default_rng(1).normal(size=(6, 4)).astype("float32")
    walker = _Recorder()
    walker.run(model, x)
    layers = {layer.name: layer for layer in model.get_layer("base").layers}
    layers["head"] = model.get_layer("head")
    layers["base"] = model.get_layer("base")
    np.testing.assert_array_equal(_np(walker.seen[0][1]), x)
    for name, inputs, outputs, _ in walker.seen:
        direct = layers[name](inputs, training=False)
        np.testing.assert_array_equal(_np(outputs), _np(direct))


def test_descend_false_calls_nested_models_whole():
    class Shallow(_Recorder):
        def descend(self, model, at_output):
            return False

    model = _model()
    x = np.ones((2, 4), "float32")
    walker = Shallow()
    y = walker.run(model, x)
    assert [name for name, *_ in walker.seen] == ["base", "head"]
    np.testing.assert_array_equal(_np(y), _np(model(x, training=False)))


def test_a_call_can_replace_a_layer_output():
    class Zero(GraphWalker):
        def call(self, op, args, kwargs, at_output):
            out = super().call(op, args, kwargs, at_output)
            return out * 0.0 if op.name == "dense_b" else out

    model = _model()
    x = np.ones((2, 4), "float32")
    y = Zero().run(model, x)
    head = model.get_layer("head")
    expected = head(np.zeros((2, 3), "float32"))
    np.testing.assert_allclose(_np(y), _np(expected), rtol=1e-6)


def test_sequential_and_helpers():
    seq = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d"),
                            keras.layers.Dense(2, name="e")])
    assert functional_graph(seq) is not None
    assert functional_graph(keras.layers.Dense(2)) is None
    assert output_operation(functional_graph(seq)).name == "e"
    walker = _Recorder()
    x = np.ones((3, 4), "float32")
    y = walker.run(seq, x)
    assert [name for name, *_ in walker.seen] == ["d", "e"]
    np.testing.assert_array_equal(_np(y), _np(seq(x)))
    drop = keras.layers.Dropout(0.9)
    np.testing.assert_array_equal(_np(call_layer(drop, x)), x)


def test_a_subclassed_model_cannot_be_walked():
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Sub()
    model(np.ones((1, 4), "float32"))
    with pytest.raises(ValueError, match="cannot be walked"):
        GraphWalker().run(model, np.ones((1, 4), "float32"))
