"""JAX: every task evaluated in one compiled call, and training batches sliced on the device.

Both must give the numbers of the host-side paths they replace: the task-by-task evaluation
(`SEQL_JAX_ONE_CALL_EVAL=0`) and the NumPy batches (`SEQL_DEVICE_DATA_BYTES=0`).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning.data.split import split
from sequential_learning.evaluation import OneCallEvaluation, evaluate_all
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.pipeline import ArrayBatches
from sequential_learning.tasks import share_evaluations, tasks_from_benchmark

pytestmark = [pytest.mark.all_backends,
              pytest.mark.skipif(keras.backend.backend() != "jax", reason="JAX only")]


def _tasks(scenario: str, batch_size: int = 16):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    # 6 classes of 45 samples: 36 validation samples per task, 2 full batches of 16 and 4 left.
    y = np.repeat(np.arange(6), 45)
    x = rng.random((len(y), 5)).astype("float32")
    x[np.arange(len(y)), y % 5] += 1.0
    stream = split(x, y, classes_per_task=2, scenario=scenario, seed=0, validation_fraction=0.4)
    base = mlp_base(stream.input_shape, (8,))
    tasks = tasks_from_benchmark(stream, base, batch_size=batch_size)
    for task in tasks:
        task.eval_batch_size = batch_size
    share_evaluations(tasks)
    return tasks


@pytest.mark.parametrize("scenario", ["task", "class"])
def test_one_call_equals_task_by_task(monkeypatch, scenario):
    tasks = _tasks(scenario)
    calls = []
    original = OneCallEvaluation.__call__

    def counting(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(OneCallEvaluation, "__call__", counting)
    if scenario == "class":
        tasks[0].active_classes.activate_through(1)  # the masks of the stream's second task
    together = evaluate_all(tasks)
    assert len(calls) == 1
    monkeypatch.setenv("SEQL_JAX_ONE_CALL_EVAL", "0")
    one_by_one = evaluate_all(tasks)
    assert len(calls) == 1
    assert [sorted(d) for d in together] == [sorted(d) for d in one_by_one]
    for got, want in zip(together, one_by_one):
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-7)
    # Keras's own evaluate is the reference of both.
    for task, got in zip(tasks, together):
        with task.evaluator._evaluating():
            want = task.evaluator.keras_evaluate()
        np.testing.assert_allclose(got["accuracy"], want["accuracy"], atol=1e-6)


def test_one_call_with_a_subset_and_full(monkeypatch):
    tasks = _tasks("task")
    for task in tasks:
        task.set_evaluation_subset(20, seed=3)  # one full batch of 16 and 4 left
    subset, full = evaluate_all(tasks), evaluate_all(tasks, full=True)
    monkeypatch.setenv("SEQL_JAX_ONE_CALL_EVAL", "0")
    for got, want in ((subset, evaluate_all(tasks)), (full, evaluate_all(tasks, full=True))):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g["loss"], w["loss"], rtol=1e-6)
            np.testing.assert_allclose(g["accuracy"], w["accuracy"], rtol=1e-6)


def test_one_call_stream_equals_task_by_task_stream(monkeypatch):
    def stream(one_call: str):
        monkeypatch.setenv("SEQL_JAX_ONE_CALL_EVAL", one_call)
        tasks = _tasks("class")
        manager = SequentialLearningManager(None, tasks, method="replay", epochs=1, seed=0,
                                            method_options={"memory": 30})
        return manager.train_all()

    together, one_by_one = stream("1"), stream("0")
    np.testing.assert_allclose(together.accuracy_matrix, one_by_one.accuracy_matrix, atol=1e-6)


def test_scan_assigning_refuses_a_variable_it_does_not_carry():
    from sequential_learning.backend import jax as jax_backend

    total = keras.Variable(0.0)
    other = keras.Variable(0.0)

    def add(batch):
        total.assign(total + keras.ops.sum(batch))

    jax_backend.scan_assigning(add, [total], np.ones((3, 2), "float32"))
    assert float(total.value) == 6.0

    def leak(batch):
        other.assign(keras.ops.sum(batch))

    with pytest.raises(ValueError, match="not carried"):
        jax_backend.scan_assigning(leak, [total], np.ones((3, 2), "float32"))


@pytest.mark.parametrize("with_ids", [False, True])
def test_device_batches_equal_host_batches(monkeypatch, with_ids):
    rng = np.random.default_rng(1)
    x, y = rng.random((53, 3)).astype("float32"), rng.integers(0, 4, 53)
    ids = rng.integers(0, 2, 53) if with_ids else None
    monkeypatch.setenv("SEQL_DEVICE_DATA_BYTES", str(1 << 20))  # on by default off the CPU only
    on_device = ArrayBatches(x, y, 10, seed=4, task_ids=ids)
    monkeypatch.setenv("SEQL_DEVICE_DATA_BYTES", "0")
    on_host = ArrayBatches(x, y, 10, seed=4, task_ids=ids)
    assert on_device._on_device is not None and on_host._on_device is None
    for _ in range(2):  # two epochs: the order changes, both follow it
        assert len(on_device) == len(on_host) == 6
        for k in range(len(on_host)):
            got, want = keras.tree.flatten(on_device[k]), keras.tree.flatten(on_host[k])
            assert not isinstance(got[0], np.ndarray)  # sliced on the device
            for g, w in zip(got, want):
                np.testing.assert_array_equal(np.asarray(g), w)
        on_device.on_epoch_end()
        on_host.on_epoch_end()


def test_a_bad_device_budget_is_one_line(monkeypatch):
    import jax

    from sequential_learning.pipeline import device_data_bytes

    monkeypatch.delenv("SEQL_DEVICE_DATA_BYTES", raising=False)
    assert (device_data_bytes() == 0) == (jax.default_backend() == "cpu")
    monkeypatch.setenv("SEQL_DEVICE_DATA_BYTES", "lots")
    with pytest.raises(ValueError, match="SEQL_DEVICE_DATA_BYTES must be a whole number"):
        device_data_bytes()
    monkeypatch.setenv("SEQL_DEVICE_DATA_BYTES", "1000")
    assert device_data_bytes() == 1000
    x = np.zeros((100, 2), "float32")  # 800 bytes, twice over the budget with its copy
    assert ArrayBatches(x, np.zeros(100, "int32"), 10, seed=0)._on_device is None
