"""Checkpoints after each task and resume: the same numbers as an uninterrupted run."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from crash import CrashAfterEpochs
from sequential_learning.checkpoint import CheckpointError, load_task_models
from sequential_learning.data.benchmarks import split
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.all_backends


def _manager(out_dir, callbacks=(), method="si", **kwargs):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((360, 6)).astype("float32")
    y = np.repeat(np.arange(6), 60)
    x[np.arange(360), y] += 1.5
    stream = split(x, y, classes_per_task=2, scenario="task", seed=0)
    base = mlp_base(stream.input_shape, (8,))
    tasks = tasks_from_benchmark(stream, base, batch_size=16)
    from sequential_learning.importance import available_methods

    if method not in {m.value for m in available_methods()}:
        method = "fisher"
    return SequentialLearningManager(base, tasks, method=method, ewc_lambda=5.0, epochs=2,
                                     seed=0, fisher_samples=64, out_dir=out_dir,
                                     callbacks=list(callbacks), **kwargs)


def test_resume_gives_the_same_numbers_as_an_uninterrupted_run(tmp_path):
    full = _manager(tmp_path / "full").train_all()
    # Two epochs per task: fails after the first epoch of task 3.
    crashed = _manager(tmp_path / "run", callbacks=[CrashAfterEpochs(5)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.train_all()
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["completed_tasks"] == 2
    resumed = _manager(tmp_path / "run").train_all(resume=True)
    np.testing.assert_allclose(resumed.accuracy_matrix, full.accuracy_matrix, atol=1e-6)
    np.testing.assert_allclose(resumed.history["accuracy"], full.history["accuracy"], atol=1e-6)
    assert resumed.epoch_task == full.epoch_task
    assert resumed.timing["resumed_after_task"] == 2


def test_models_after_any_task(tmp_path):
    manager = _manager(tmp_path)
    results = manager.train_all()
    after_1 = load_task_models(tmp_path, after_task=1)
    assert len(after_1) == 3
    # Task 1's model right after task 1 reproduces R[0, 0].
    x, y = manager.tasks[0].validation_data
    accuracy = float(np.mean(np.argmax(after_1[0].predict(x, verbose=0), -1) == y))
    assert accuracy == pytest.approx(results.accuracy_matrix[0, 0], abs=1e-6)
    final = load_task_models(tmp_path)
    for a, b in zip(final[2].weights, manager.tasks[2].model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_mismatched_missing_and_truncated_checkpoints(tmp_path):
    _manager(tmp_path / "run").train_all()
    with pytest.raises(CheckpointError, match=r"another config: ewc_lambda: checkpoint 5.0, now 7.0"):
        m = _manager(tmp_path / "run")
        m.config["ewc_lambda"] = 7.0
        m.train_all(resume=True)
    with pytest.raises(CheckpointError, match="is not a directory"):
        _manager(tmp_path / "nowhere").train_all(resume=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="No checkpoint in"):
        _manager(tmp_path / "empty").train_all(resume=True)
    weights = sorted((tmp_path / "run" / "checkpoint").glob("weights_after_task_3.npz"))[0]
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        _manager(tmp_path / "run").train_all(resume=True)


def test_other_model_is_refused(tmp_path):
    _manager(tmp_path / "run").train_all()
    keras.utils.set_random_seed(0)
    other = _manager(tmp_path / "run")
    base = mlp_base((6,), (5,))  # another width
    from sequential_learning.models import build_task_models
    from sequential_learning.tasks import SequentialTask

    models = build_task_models(base, [2, 2, 2])
    tasks = [SequentialTask(t.name, m, t.train_data, t.validation_data) for t, m in zip(other.tasks, models)]
    manager = SequentialLearningManager(base, tasks, method=other.method, ewc_lambda=5.0, epochs=2,
                                        fisher_samples=64, out_dir=tmp_path / "run")
    manager.config = other.config | {"covered_variables": other.config["covered_variables"]}
    with pytest.raises(CheckpointError, match="written for another model"):
        manager.train_all(resume=True)


def test_importance_is_saved_per_task(tmp_path):
    from sequential_learning.checkpoint import load_importance

    manager = _manager(tmp_path, method="fisher")
    manager.train_all()
    paths, first = load_importance(tmp_path, task=1)
    assert paths == [v.path for v in manager.covered]
    assert [a.shape for a in first] == [tuple(v.shape) for v in manager.covered]
    _, total = load_importance(tmp_path)
    # The separate-mode penalty holds the sum of the tasks' Ω.
    for t, held in zip(total, manager.penalty.importance):
        np.testing.assert_allclose(t, held.numpy(), rtol=1e-5, atol=1e-7)
    with pytest.raises(CheckpointError, match="No saved importance for task 9"):
        load_importance(tmp_path, task=9)
