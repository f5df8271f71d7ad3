"""Small streams and trainers for the plugin tests."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning import backend
from sequential_learning.data.benchmarks import split
from sequential_learning.models import mlp_base
from sequential_learning.plugins.base import Experience, Run
from sequential_learning.tasks import tasks_from_benchmark


def learnable_stream(rng, tasks=2, n=40, features=6, scenario="task"):
    """`tasks` tasks of two classes each; class c lights up feature c % features."""
    x = rng.random((n * tasks * 2, features)).astype("float32")
    y = np.repeat(np.arange(tasks * 2), n)
    x[np.arange(len(y)), y % features] += 2.0
    return split(x, y, classes_per_task=2, scenario=scenario, seed=0)


class Setup:
    """A stream's tasks, its base and the `Run` the manager would make."""

    def __init__(self, rng, tasks=2, scenario="task", hidden=(5,), batch_size=8):
        stream = learnable_stream(rng, tasks, scenario=scenario)
        self.base = mlp_base(stream.input_shape, hidden)
        self.tasks = tasks_from_benchmark(stream, self.base, batch_size=batch_size)
        self.run = Run(tasks=self.tasks, covered=list(self.base.trainable_variables),
                       base_model=self.base, strategy=_strategy(), seed=0,
                       shared_head=scenario != "task", scenario=scenario)

    def build(self, plugin):
        plugin.check(self.run)
        plugin.build(self.run)
        return plugin

    def experience(self, index):
        return Experience(index, self.tasks[index], self.run)

    def trainer(self, index, plugins, learning_rate=0.1, routes=None):
        task = self.tasks[index]
        if routes is None and not self.run.shared_head:
            routes = self.tasks[: index + 1]
        return task.make_trainer(keras.optimizers.SGD(learning_rate), covered=self.run.covered,
                                 plugins=plugins, routes=routes)


def _strategy():
    """The `tf.distribute` strategy in scope on TensorFlow, None on the other backends."""
    if not backend.is_tensorflow():
        return None
    import tensorflow as tf

    return tf.distribute.get_strategy()


@pytest.fixture
def setup_factory(seeded):
    """Makes a `Setup` from the test's seeded generator (or a given one: `rng=`)."""

    def make(rng=None, **kwargs):
        return Setup(seeded if rng is None else rng, **kwargs)

    return make
