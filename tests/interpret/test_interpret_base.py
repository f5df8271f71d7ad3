"""Finding layers in nested models, and the probe that returns inner activations with logits."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning.interpret import (
    build_probe,
    conv_layer_paths,
    find_layer,
    grad_cam,
    last_conv_layer,
    walk_layers,
)

pytestmark = pytest.mark.all_backends


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def _two_level_model():
    """A task model whose base holds another nested block, with a repeated layer name."""
    block_in = keras.Input((6, 6, 4))
    block = keras.Model(
        block_in, keras.layers.Conv2D(4, 3, padding="same", name="conv")(block_in), name="block"
    )
    base_in = keras.Input((6, 6, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(base_in)
    h = block(h)
    base = keras.Model(base_in, keras.layers.GlobalAveragePooling2D(name="gap")(h), name="base")
    inp = keras.Input((6, 6, 1))
    return keras.Model(inp, keras.layers.Dense(2, name="head")(base(inp)), name="task")


def test_walk_layers_lists_nested_paths_in_running_order():
    model = _two_level_model()
    assert [path for path, _ in walk_layers(model)] == [
        "base",
        "base/conv",
        "base/block",
        "base/block/conv",
        "base/gap",
        "head",
    ]
    assert conv_layer_paths(model) == ["base/conv", "base/block/conv"]
    assert last_conv_layer(model) is find_layer(model, "base/block/conv")


def test_find_layer_by_path_name_and_object():
    model = _two_level_model()
    inner = find_layer(model, "base/block/conv")
    assert find_layer(model, inner) is inner
    assert find_layer(model, "gap") is find_layer(model, "base/gap")
    with pytest.raises(ValueError, match=r"'conv' is ambiguous.*'base/conv', 'base/block/conv'"):
        find_layer(model, "conv")
    with pytest.raises(ValueError, match=r"not part of model 'task'"):
        find_layer(model, keras.layers.Dense(1))
    with pytest.raises(ValueError, match=r"must be a layer name"):
        find_layer(model, 3)


def test_probe_reaches_two_levels_down_and_tracks_weight_changes():
    model = _two_level_model()
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 1)).astype(np.float32)
    inner = find_layer(model, "base/block/conv")
    probe = build_probe(model, [inner])
    assert build_probe(model, [inner]) is probe  # cached
    activations, logits = probe(x)
    np.testing.assert_allclose(logits, _numpy(model(x)), atol=1e-6)
    outer_conv = find_layer(model, "base/conv")
    expected = _numpy(inner(outer_conv(x)))
    np.testing.assert_allclose(activations, expected, atol=1e-6)
    head = find_layer(model, "head")
    head.kernel.assign(head.kernel * 2.0)
    np.testing.assert_allclose(probe(x)[1], _numpy(model(x)), atol=1e-6)


def test_grad_cam_two_levels_down():
    model = _two_level_model()
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 1)).astype(np.float32)
    maps = grad_cam(model, x, [0, 1])
    assert maps.shape == (2, 6, 6)
    assert not np.allclose(maps, grad_cam(model, x, [0, 1], layer="base/conv"))


def test_models_that_cannot_be_probed():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.conv = keras.layers.Conv2D(2, 3, name="c")
            self.flat = keras.layers.Flatten()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(self.flat(self.conv(x)))

    model = Subclassed()
    model(np.zeros((1, 5, 5, 1), np.float32))
    with pytest.raises(ValueError, match=r"(no known input shape|subclassed model)"):
        build_probe(model, [model.conv])

    inp = keras.Input((5, 5, 1))
    h = keras.layers.Flatten()(inp)
    two = keras.Model(inp, [keras.layers.Dense(2)(h), keras.layers.Dense(3)(h)], name="two")
    with pytest.raises(ValueError, match=r"'two' has 2 outputs"):
        build_probe(two)

    unbuilt = keras.Sequential([keras.layers.Conv2D(2, 3)], name="unbuilt")
    with pytest.raises(ValueError, match=r"'unbuilt' has no known input shape"):
        grad_cam(unbuilt, np.zeros((1, 5, 5, 1)), 0)


def test_probe_runs_in_inference_mode():
    """BatchNorm uses its moving statistics and Dropout is off, also inside the nested base."""
    keras.utils.set_random_seed(0)
    base_in = keras.Input((5, 5, 1))
    h = keras.layers.Conv2D(3, 3, name="c")(base_in)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dropout(0.5, name="drop")(keras.layers.Flatten()(h))
    base = keras.Model(base_in, h, name="base")
    inp = keras.Input((5, 5, 1))
    model = keras.Model(inp, keras.layers.Dense(2)(base(inp)), name="task")
    bn = find_layer(model, "bn")
    bn.moving_mean.assign(np.full(3, 5.0, np.float32))
    x = np.random.default_rng(0).uniform(size=(4, 5, 5, 1)).astype(np.float32)
    probe = build_probe(model, [bn])
    activations, logits = probe(x)
    np.testing.assert_allclose(logits, _numpy(model(x, training=False)), atol=1e-5)
    np.testing.assert_array_equal(probe(x)[1], logits)  # no dropout noise, no BN update
    assert not np.allclose(logits, _numpy(model(x, training=True)), atol=1e-3)  # updates BN
