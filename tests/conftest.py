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


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """A small finished run folder (fisher+replay: a penalty and a buffer in its checkpoint).

    Shared by the session: copy it before changing anything in it.
    """
    from sequential_learning.cli import main

    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["run", "--benchmark", "split-digits", "--epochs", "1", "--hidden", "8",
                 "--fisher-samples", "50", "--method", "fisher+replay", "--memory", "50",
                 "--out", str(out)]) == 0
    return out
