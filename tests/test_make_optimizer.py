"""`make_optimizer` on every backend: TensorFlow's fused kernels there, Keras's own elsewhere."""

from __future__ import annotations

import sys

import keras
import pytest

from sequential_learning import backend
from sequential_learning.optimizers import make_optimizer

pytestmark = pytest.mark.all_backends


@pytest.mark.parametrize("name, keras_class", [("adam", keras.optimizers.Adam),
                                               ("SGD", keras.optimizers.SGD)])
def test_make_optimizer_per_backend(name, keras_class):
    optimizer = make_optimizer(name, 0.01)
    assert isinstance(optimizer, keras_class)
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(0.01)
    fused = type(optimizer).__name__.startswith("Fused")
    assert fused == backend.is_tensorflow()
    if not backend.is_tensorflow():
        assert "sequential_learning.native.fused_optimizers" not in sys.modules


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="Unknown optimizer 'rmsprop'"):
        make_optimizer("rmsprop", 0.1)
