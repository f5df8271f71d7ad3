"""Shared test set-up: quiet TensorFlow, small seeded models."""

from __future__ import annotations

from sequential_learning._tf import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")


@pytest.fixture
def seeded():
    """Seeds Python, NumPy and TensorFlow."""
    keras.utils.set_random_seed(0)
    return np.random.default_rng(0)
