"""Shared models and data for the interpretability tests.

`make_model(kind, ...)` builds the same conv -> global average pooling -> dense network in five
shapes, so every method is checked on each: a flat Sequential, a flat functional model, a task
model on a nested shared base (`Model(inp, head(base(inp)))`, the shape this project uses), the
same with a Sequential head, and the nested model after a save / load round trip.

The weights are drawn with NumPy (Glorot-uniform kernels, N(0, 0.1) biases, as the layers'
seeded initialisers would), so a model is the same on every Keras backend.

`planted` trains a small CNN (once per session) on images whose class is decided by a bright
square at a random position, for the sanity checks.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

MODEL_KINDS = ("sequential", "functional", "nested", "nested_sequential_head", "loaded")


def _layers(filters, strides, classes, softmax, seed):
    conv = keras.layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        activation="relu",
        name="conv",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        bias_initializer=keras.initializers.RandomNormal(0.0, 0.1, seed=seed + 1),
    )
    pool = keras.layers.GlobalAveragePooling2D(name="pool")
    dense = keras.layers.Dense(
        classes,
        activation="softmax" if softmax else None,
        name="logits",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 2),
        bias_initializer=keras.initializers.RandomNormal(0.0, 0.1, seed=seed + 3),
    )
    return conv, pool, dense


def _numpy_weights(conv, dense, seed):
    """Sets the conv and dense layers' weights from a NumPy generator (same on every backend)."""
    rng = np.random.default_rng(seed)
    for layer in (conv, dense):
        kernel = layer.kernel
        fan_in = int(np.prod(kernel.shape[:-1]))
        fan_out = int(kernel.shape[-1]) * int(np.prod(kernel.shape[:-2]))
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        values = rng.uniform(-limit, limit, kernel.shape).astype(np.float32)
        bias = rng.normal(0.0, 0.1, layer.bias.shape).astype(np.float32)
        layer.set_weights([values, bias])


def build_model(
    kind: str,
    input_shape=(8, 10, 2),
    filters: int = 4,
    classes: int = 3,
    strides: int = 1,
    softmax: bool = False,
    seed: int = 0,
    tmp_path=None,
) -> keras.Model:
    conv, pool, dense = _layers(filters, strides, classes, softmax, seed)
    if kind == "sequential":
        model = keras.Sequential([keras.Input(input_shape), conv, pool, dense], name="seq")
        _numpy_weights(conv, dense, seed)
        return model
    if kind == "functional":
        inp = keras.Input(input_shape)
        model = keras.Model(inp, dense(pool(conv(inp))), name="func")
        _numpy_weights(conv, dense, seed)
        return model
    base_in = keras.Input(input_shape)
    shared = keras.Model(base_in, pool(conv(base_in)), name="base")
    head = dense
    if kind == "nested_sequential_head":
        head = keras.Sequential([keras.Input((filters,)), dense], name="head")
    inp = keras.Input(input_shape)
    model = keras.Model(inp, head(shared(inp)), name="task")
    _numpy_weights(conv, dense, seed)
    if kind == "loaded":
        path = tmp_path / "task.keras"
        model.save(path)
        return keras.models.load_model(path, safe_mode=True, compile=False)
    if kind not in ("nested", "nested_sequential_head"):
        raise ValueError(kind)
    return model


@pytest.fixture
def make_model(tmp_path):
    """Factory: `make_model(kind, **options)` -> a conv -> GAP -> dense model of that shape."""

    def make(kind: str, **options) -> keras.Model:
        return build_model(kind, tmp_path=tmp_path, **options)

    return make


@pytest.fixture(params=MODEL_KINDS)
def model_kind(request) -> str:
    return request.param


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(0.0, 1.0, (5, 8, 10, 2)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Planted feature: the class is decided by a bright square
# --------------------------------------------------------------------------------------------

SIDE, SQUARE = 16, 4


def planted_data(n: int, seed: int):
    """Images `(n, 16, 16, 1)`: dim noise plus a few bright single pixels; class 1 images also
    hold a bright 4x4 square at a random position. Returns `(x, y, square_masks)`."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.3, (n, SIDE, SIDE, 1)).astype(np.float32)
    flat = x.reshape(n, -1)
    for i in range(n):  # distractors: bright isolated pixels in every image
        flat[i, rng.choice(SIDE * SIDE, 3, replace=False)] = 1.0
    y = rng.integers(0, 2, n).astype(np.int32)
    masks = np.zeros((n, SIDE, SIDE), bool)
    for i in np.flatnonzero(y == 1):
        r, c = rng.integers(0, SIDE - SQUARE + 1, 2)
        x[i, r : r + SQUARE, c : c + SQUARE, 0] = 1.0
        masks[i, r : r + SQUARE, c : c + SQUARE] = True
    return x, y, masks


def build_planted_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    base_in = keras.Input((SIDE, SIDE, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(base_in)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(h)
    shared = keras.Model(base_in, keras.layers.GlobalAveragePooling2D(name="gap")(h), name="base")
    inp = keras.Input((SIDE, SIDE, 1))
    return keras.Model(inp, keras.layers.Dense(2, name="head")(shared(inp)), name="task_1")


@pytest.fixture(scope="session")
def planted():
    """A small nested CNN trained on the planted data, and held-out class-1 images.

    Returns a dict with `model`, `x` / `masks` (test images holding the square, and where it
    is), `accuracy` on the whole test set, and `build` (the builder, for fresh copies).
    """
    x, y, _ = planted_data(1024, seed=1)
    model = build_planted_model(seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=64, epochs=8, verbose=0)
    x_test, y_test, masks = planted_data(200, seed=2)
    accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
    keep = y_test == 1
    return {
        "model": model,
        "x": x_test[keep],
        "masks": masks[keep],
        "accuracy": accuracy,
        "build": build_planted_model,
    }
