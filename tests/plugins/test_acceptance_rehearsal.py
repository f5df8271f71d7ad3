"""Class-incremental learning works with rehearsal: on class-incremental split digits, replay and
DER++ beat fine-tuning (which sits near 1/T) by at least 25 points of ACC."""

from __future__ import annotations

import keras
import pytest

from sequential_learning.data.benchmarks import make_benchmark
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.slow


def _acc(method: str) -> float:
    keras.utils.set_random_seed(0)
    stream = make_benchmark("split-digits", "class", seed=0)
    base = mlp_base(stream.input_shape, (64,))
    tasks = tasks_from_benchmark(stream, base, batch_size=32)
    manager = SequentialLearningManager(base, tasks, method=method, epochs=5, seed=0,
                                        method_options={"memory": 200})
    return manager.train_all().metrics["acc"]


def test_rehearsal_beats_fine_tuning_in_class_incremental_split_digits():
    none, replay, derpp = _acc("none"), _acc("replay"), _acc("derpp")
    assert none < 0.3  # the task-recency of fine-tuning: about one task's classes right
    assert replay >= none + 0.25, (none, replay)
    assert derpp >= none + 0.25, (none, derpp)
