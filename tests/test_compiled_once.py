"""JAX: one compiled train step per stream where the tasks' steps are the same computation.

The tasks of a task-incremental stream have heads of one size: the step traced for the first
task serves every later one (`signature.train_step_signature`), giving the numbers of a step
traced per task.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning.data.benchmarks import split
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.signature import model_signature, train_step_signature
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.all_backends

jax_only = pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX only")


def _tasks():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    # Tasks of different sizes: the last batches differ in shape (235 - 2 * 80 = 75 = 64 + 11).
    x = rng.random((235, 6)).astype("float32")
    y = np.concatenate([np.repeat(np.arange(4), 40), np.repeat([4, 5], [40, 35])])
    x[np.arange(len(y)), y] += 1.5
    stream = split(x, y, classes_per_task=2, scenario="task", seed=0)
    base = mlp_base(stream.input_shape, (8,))
    return base, tasks_from_benchmark(stream, base, batch_size=16)


def _run(monkeypatch, method: str, share: bool):
    import sequential_learning.backend.jax as jax_backend

    monkeypatch.setenv("SEQL_JAX_SHARE", "1" if share else "0")
    traced = []
    original = getattr(jax_backend.train_step, "__wrapped__", jax_backend.train_step)

    def counting(trainer, state, data):
        traced.append(trainer.name)
        return original(trainer, state, data)

    counting.__wrapped__ = original

    monkeypatch.setattr(jax_backend, "train_step", counting)
    base, tasks = _tasks()
    manager = SequentialLearningManager(base, tasks, method=method, ewc_lambda=5.0, epochs=2,
                                        seed=0, fisher_samples=32,
                                        method_options={"memory": 40})
    return manager.train_all(), traced


def test_task_heads_of_one_size_have_one_signature():
    base, tasks = _tasks()
    signatures = {model_signature(t.model) for t in tasks}
    assert len(signatures) == 1 and None not in signatures
    other = keras.Model(tasks[0].model.inputs,
                        keras.layers.Dense(3, name="wider")(base(tasks[0].model.inputs[0])))
    assert model_signature(other) not in signatures


@jax_only
@pytest.mark.parametrize("method", ["none", "fisher", "si", "lwf", "replay", "joint"])
def test_one_step_compiled_per_stream_gives_the_per_task_numbers(monkeypatch, method):
    shared, traced_shared = _run(monkeypatch, method, share=True)
    alone, traced_alone = _run(monkeypatch, method, share=False)
    np.testing.assert_array_equal(shared.accuracy_matrix, alone.accuracy_matrix)
    np.testing.assert_array_equal(shared.history["loss"], alone.history["loss"])
    # Per task: the full batches' shape and the last batch's; the tasks' last batches are 0, 0
    # and 11 samples past a multiple of 16 (80, 80, 75); joint trains on all 235 at every task.
    assert len(traced_alone) == (6 if method == "joint" else 4)
    if method in ("none", "fisher", "si"):
        assert len(traced_shared) == 2 and set(traced_shared) == {"task_1_trainer"}
    else:
        # The trained variables grow with the tasks (old heads, a teacher's), or (joint) every
        # trainer routes each task's samples through that task's head but lists its own head
        # first: one step each (a step shared there sent task 1's samples through task 2's
        # head, and joint's ACC on split-digits fell from 1.0 to 0.80 on JAX).
        assert len(traced_shared) == len(traced_alone)


@jax_only
def test_trainers_of_different_steps_have_different_signatures(monkeypatch):
    from sequential_learning.plugins import make_plugins

    base, tasks = _tasks()
    plain = tasks[0].make_trainer(keras.optimizers.Adam(1e-3), covered=base.trainable_variables)
    again = tasks[1].make_trainer(keras.optimizers.Adam(1e-3), covered=base.trainable_variables)
    faster = tasks[1].make_trainer(keras.optimizers.Adam(1e-2), covered=base.trainable_variables)
    with_plugin = tasks[1].make_trainer(keras.optimizers.Adam(1e-3),
                                        covered=base.trainable_variables,
                                        plugins=make_plugins("fisher"))
    for trainer, task in ((plain, tasks[0]), (again, tasks[1]), (faster, tasks[1]),
                          (with_plugin, tasks[1])):
        x, y = (np.asarray(a)[:16] for a in task.train_data)
        trainer.fit(x, y, epochs=1, verbose=0)
    assert train_step_signature(plain) == train_step_signature(again)
    assert train_step_signature(plain) != train_step_signature(faster)
    assert train_step_signature(plain) != train_step_signature(with_plugin)
