"""The manager: history shape, accuracy matrix, consolidation wiring, bad input, partial results."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from sequential_learning.data.benchmarks import split
from sequential_learning.importance import EWCMethod
from sequential_learning.manager import SequentialLearningManager, TrainingDivergedError
from sequential_learning.models import build_task_models, mlp_base
from sequential_learning.results import Results
from sequential_learning.tasks import SequentialTask, tasks_from_benchmark

pytestmark = pytest.mark.all_backends


def _stream(rng, tasks=3, n=60, features=6):
    x = rng.random((n * tasks * 2, features)).astype("float32")
    y = np.repeat(np.arange(tasks * 2), n)
    x[np.arange(len(y)), y % features] += 2.0  # learnable
    return split(x, y, classes_per_task=2, scenario="task", seed=0)


def _tasks(rng, tasks=3, **kwargs):
    stream = _stream(rng, tasks)
    base = mlp_base(stream.input_shape, (8,))
    return base, tasks_from_benchmark(stream, base, batch_size=16, **kwargs)


def test_history_has_a_row_per_epoch_and_a_column_per_task(seeded):
    base, tasks = _tasks(seeded)
    manager = SequentialLearningManager(base, tasks, method="fisher", ewc_lambda=10.0,
                                        epochs=[2, 1, 3], fisher_samples=50)
    results = manager.train_all()
    assert results.history["accuracy"].shape == (6, 3)
    assert results.history["loss"].shape == (6, 3)
    assert results.epoch_task == [0, 0, 1, 2, 2, 2]
    assert results.task_boundaries == [2, 3, 6]
    # Row i of R is the evaluation after the last epoch of task i.
    for i, end in enumerate(results.task_boundaries):
        np.testing.assert_allclose(results.accuracy_matrix[i], results.history["accuracy"][end - 1])
    assert results.train_history["base_loss"].shape == (6,)
    assert set(results.metrics) == {"acc", "bwt", "fwt", "forgetting"}
    assert results.config["fisher_mode"] == "exact"
    assert len(results.timing["task_seconds"]) == 3
    assert results.baseline.shape == (3,)


def test_penalty_covers_the_shared_base_not_the_heads(seeded):
    base, tasks = _tasks(seeded)
    manager = SequentialLearningManager(base, tasks, method="weight-decay", ewc_lambda=1.0)
    assert {id(v) for v in manager.covered} == {id(v) for v in base.trainable_variables}


def test_penalty_changes_training_and_base_loss_is_reported(seeded):
    finals = {}
    for method in ("none", "weight-decay"):
        keras.utils.set_random_seed(0)
        base, tasks = _tasks(np.random.default_rng(0))
        results = SequentialLearningManager(base, tasks, method=method, ewc_lambda=5.0,
                                            epochs=2, seed=0).train_all()
        finals[method] = [v.numpy().copy() for v in base.trainable_variables]
        if method == "none":  # no plugin at all: nothing but the task loss
            assert "penalty" not in results.train_history
            np.testing.assert_array_equal(results.train_history["loss"],
                                          results.train_history["base_loss"])
        else:
            pen = results.train_history["penalty"]
            assert np.all(pen[:2] == 0) and np.all(pen[2:] > 0)  # active from task 2 on
            np.testing.assert_allclose(results.train_history["loss"],
                                       results.train_history["base_loss"] + pen, rtol=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(finals["none"], finals["weight-decay"]))


def test_same_seed_same_numbers(seeded):
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        base, tasks = _tasks(np.random.default_rng(3))
        runs.append(SequentialLearningManager(base, tasks, method="fisher", ewc_lambda=10.0,
                                              epochs=1, seed=3).train_all())
    np.testing.assert_array_equal(runs[0].accuracy_matrix, runs[1].accuracy_matrix)


def test_bad_input(seeded):
    base, tasks = _tasks(seeded)
    with pytest.raises(ValueError, match="Unknown method 'ewc2'; known methods: none"):
        SequentialLearningManager(base, tasks, method="ewc2")
    with pytest.raises(ValueError, match="ewc_lambda must be >= 0"):
        SequentialLearningManager(base, tasks, method="fisher", ewc_lambda=-1.0)
    with pytest.raises(ValueError, match="epochs has 2 entries but there are 3 tasks"):
        SequentialLearningManager(base, tasks, epochs=[1, 2])
    with pytest.raises(ValueError, match="at least one task"):
        SequentialLearningManager(base, [])
    model = tasks[0].model
    x = np.zeros((10, 6), "float32")
    with pytest.raises(ValueError, match=r"Task 'bad': training inputs have shape \(5,\).*\(6,\)"):
        SequentialTask("bad", model, (np.zeros((10, 5)), np.zeros(10, int)), (x, np.zeros(10, int)))
    with pytest.raises(ValueError, match=r"Task 'bad': validation labels span 0..7.*2 classes"):
        SequentialTask("bad", model, (x, np.zeros(10, int)), (x, np.arange(10) % 8))
    with pytest.raises(ValueError, match="Task 'bad': the training data set is empty"):
        SequentialTask("bad", model, (x[:0], np.zeros(0, int)), (x, np.zeros(10, int)))
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        SequentialTask("bad", model, (x, np.zeros(9, int)), (x, np.zeros(10, int)))
    other = mlp_base((6,), (4,), name="other")
    with pytest.raises(ValueError, match="does not contain the base model"):
        SequentialLearningManager(other, tasks)


class _FailInTask(keras.callbacks.Callback):
    def __init__(self, manager_ref):
        super().__init__()
        self.manager_ref = manager_ref

    def on_train_begin(self, logs=None):
        if self.manager_ref[0].task_index == 2:
            raise RuntimeError("simulated failure in task 3")


def test_failure_in_task_k_keeps_earlier_results(seeded, tmp_path):
    base, tasks = _tasks(seeded)
    ref = []
    manager = SequentialLearningManager(base, tasks, method="fisher", ewc_lambda=1.0, epochs=1,
                                        out_dir=tmp_path, callbacks=[_FailInTask(ref)])
    ref.append(manager)
    with pytest.raises(RuntimeError, match="simulated failure"):
        manager.train_all()
    saved = Results.load(tmp_path)
    assert saved.completed_tasks == 2
    assert np.all(np.isfinite(saved.accuracy_matrix[:2])) and np.all(np.isnan(saved.accuracy_matrix[2]))
    assert (tmp_path / "models" / "task_2.keras").exists()
    assert not (tmp_path / "models" / "task_3.keras").exists()
    with np.load(tmp_path / "samples" / "task_1.npz", allow_pickle=False) as sample:
        assert sample["x"].shape[1:] == (6,)
    json.loads((tmp_path / "results.json").read_text())


def test_nan_loss_stops_with_a_clear_error(seeded, tmp_path):
    base, tasks = _tasks(seeded)
    bad = tasks[1]
    x, y = bad.train_data
    x = x.copy()
    x[0, :] = 3e38  # overflows to inf in the first layer -> NaN loss
    bad.train_data = (x, y)
    manager = SequentialLearningManager(base, tasks, method="none", epochs=1, out_dir=tmp_path,
                                        learning_rate=1e-3)
    with pytest.raises(TrainingDivergedError, match=r"task 2\), epoch 1, step \d+: the loss became nan"):
        manager.train_all()
    assert Results.load(tmp_path).completed_tasks == 1


def test_domain_incremental_shared_head_is_covered(seeded):
    stream = _stream(seeded)
    stream.shared_head = True
    base = mlp_base(stream.input_shape, (8,))
    models = build_task_models(base, stream.head_sizes, shared_head=True)
    tasks = [SequentialTask(t.name, m, (t.x_train, t.y_train), (t.x_val, t.y_val))
             for t, m in zip(stream.tasks, models)]
    manager = SequentialLearningManager(None, tasks, method="weight-decay", ewc_lambda=1.0)
    assert len(manager.covered) == len(models[0].trainable_variables)
    assert manager.method is EWCMethod.WEIGHT_DECAY


def _shared_head_tasks(rng, tasks=3, steps_per_execution=8, **task_kwargs):
    stream = _stream(rng, tasks)
    base = mlp_base(stream.input_shape, (8,))
    models = build_task_models(base, [2] * tasks, shared_head=True)
    built = [
        SequentialTask(t.name, m, (t.x_train, t.y_train % 2), (t.x_val, t.y_val % 2),
                       batch_size=16, steps_per_execution=steps_per_execution, **task_kwargs)
        for t, m in zip(stream.tasks, models)
    ]
    return base, built


def _run(base, tasks, reuse=True, method="fisher"):
    keras.utils.set_random_seed(0)
    for v in base.weights:  # the same start for every run
        v.assign(np.full(v.shape, 0.1, np.float32) * np.sign(np.sin(np.arange(v.numpy().size)))
                 .reshape(v.shape))
    head = tasks[0].model.layers[-1]
    for v in head.weights:
        v.assign(np.full(v.shape, 0.05, np.float32))
    manager = SequentialLearningManager(base, tasks, method=method, ewc_lambda=50.0, epochs=2,
                                        seed=0, fisher_samples=40)
    if not reuse:
        manager._reusable_trainer = lambda task: None
    return _train_counting_trainers(manager)


def _train_counting_trainers(manager):
    """`manager.train_all()`, and the names of the tasks a trainer was made for."""
    made = []
    original = SequentialTask.make_trainer

    def counting(task, *args, **kwargs):
        made.append(task.name)
        return original(task, *args, **kwargs)

    SequentialTask.make_trainer = counting
    try:
        results = manager.train_all()
    finally:
        SequentialTask.make_trainer = original
    return results, made


@pytest.mark.parametrize("method", ["none", "fisher", "si"])
def test_shared_head_tasks_reuse_one_trainer_with_the_same_numbers(seeded, method):
    base, tasks = _shared_head_tasks(seeded)
    reused, made_reused = _run(base, tasks, reuse=True, method=method)
    fresh, made_fresh = _run(base, tasks, reuse=False, method=method)
    assert len(made_reused) == 1  # one trainer (and one trace) for the three tasks
    assert len(made_fresh) == 3
    # A reset optimizer is exactly a fresh one: the same numbers, bit for bit.
    np.testing.assert_array_equal(reused.accuracy_matrix, fresh.accuracy_matrix)
    np.testing.assert_array_equal(reused.history["loss"], fresh.history["loss"])


def test_task_incremental_heads_get_a_trainer_each(seeded):
    base, tasks = _tasks(seeded)
    _, made = _train_counting_trainers(SequentialLearningManager(
        base, tasks, method="fisher", ewc_lambda=1.0, epochs=1, fisher_samples=20))
    assert made == [t.name for t in tasks]


def test_steps_per_execution_does_not_change_the_numbers(seeded):
    base, tasks = _shared_head_tasks(seeded, steps_per_execution=8)
    grouped, _ = _run(base, tasks)
    for task in tasks:
        task.steps_per_execution = 1
    single, _ = _run(base, tasks)
    np.testing.assert_array_equal(grouped.accuracy_matrix, single.accuracy_matrix)
    with pytest.raises(ValueError, match="steps_per_execution"):
        SequentialTask("t", tasks[0].model, tasks[0].train_data, tasks[0].validation_data,
                       steps_per_execution=0)


def test_shared_head_tasks_share_one_compiled_evaluation(seeded):
    base, tasks = _shared_head_tasks(seeded)
    SequentialLearningManager(base, tasks, method="none", epochs=1)
    for task in tasks:
        got = task.evaluate()
        want = task.model.evaluate(task.validation_data[0], task.validation_data[1],
                                   verbose=0, return_dict=True)
        assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-6)
    assert tasks[0].evaluator._eval_fn is not None
    assert tasks[1].evaluator._eval_fn is None and tasks[2].evaluator._eval_fn is None  # they use task 1's
