"""Class-incremental streams: unseen classes masked out of loss and accuracy, the task-incremental
accuracy from the same run, no forward transfer to report; on every backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sequential_learning import backend
from sequential_learning.class_incremental import (
    ActiveClasses,
    MaskedAccuracy,
    MaskedSparseCategoricalCrossentropy,
)
from sequential_learning.data.benchmarks import split
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.all_backends


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_the_loss_is_cross_entropy_over_the_active_classes():
    active = ActiveClasses([[0, 1], [2, 3], [4, 5]], num_classes=6)
    logits = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    labels = np.array([0, 3, 2, 1, 3])
    loss = MaskedSparseCategoricalCrossentropy(active)
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # Nothing active yet: every class counts.
    np.testing.assert_allclose(float(loss(labels, logits)), float(plain(labels, logits)),
                               rtol=1e-6)
    active.begin_task(1)  # classes 0-3
    by_hand = -_log_softmax(logits[:, :4])[np.arange(5), labels].mean()
    np.testing.assert_allclose(float(loss(labels, logits)), by_hand, rtol=1e-5)
    # No gradient reaches the masked classes' logits.
    _, _, (grad,) = backend.ops().input_gradients(lambda z: (loss(labels, z), None),
                                                  [ops.convert_to_tensor(logits)])
    grad = np.array(ops.convert_to_numpy(grad))
    assert np.all(grad[:, 4:] == 0) and np.any(grad[:, :4] != 0)
    # Probabilities are renormalised over the active classes.
    probs = np.array(ops.convert_to_numpy(ops.softmax(logits, axis=-1)))
    masked = MaskedSparseCategoricalCrossentropy(active, from_logits=False)
    kept = probs[:, :4] / probs[:, :4].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(float(masked(labels, probs)),
                               -np.log(kept[np.arange(5), labels]).mean(), rtol=1e-4)


def test_class_and_task_accuracy_and_evaluation_restores_the_task_mask():
    active = ActiveClasses([[0, 1], [2, 3]], num_classes=4)
    active.begin_task(1)
    # Sample 1's arg-max over all classes is 2; within task 1's classes it is 1.
    logits = np.array([[5.0, 1.0, 0.0, 0.0], [0.0, 3.0, 4.0, 0.0]], np.float32)
    labels = np.array([0, 1])
    class_il = MaskedAccuracy(active.active, "accuracy")
    task_il = MaskedAccuracy(active.evaluated, "task_accuracy")
    class_il.update_state(labels, logits)
    assert float(class_il.result()) == 0.5
    with active.evaluating([0, 1]):
        task_il.update_state(labels, logits)
    assert float(task_il.result()) == 1.0
    np.testing.assert_array_equal(ops.convert_to_numpy(active.evaluated), [0, 0, 1, 1])  # task 2's


def _class_stream(rng):
    x = rng.random((360, 6)).astype("float32")
    y = np.repeat(np.arange(6), 60)
    x[np.arange(360), y] += 2.0
    return split(x, y, classes_per_task=2, scenario="class", seed=0)


def test_a_class_incremental_run_reports_both_scenarios(seeded):
    stream = _class_stream(seeded)
    base = mlp_base(stream.input_shape, (16,))
    tasks = tasks_from_benchmark(stream, base, batch_size=16)
    assert [t.classes for t in tasks] == [[0, 1], [2, 3], [4, 5]]
    results = SequentialLearningManager(base, tasks, method="none", epochs=3,
                                        learning_rate=0.01).train_all()
    r = results.accuracy_matrix
    assert np.all(r[np.triu_indices(3, 1)] == 0)  # a task's classes are masked before it
    til = results.matrices["task_accuracy"]
    assert til.shape == (3, 3) and np.all(np.diag(til) > 0.9)
    # Fine-tuning forgets in the class-incremental scenario, far less with the task known.
    assert r[2, :2].max() < 0.2 and til[2, :2].min() > 0.6
    metrics = results.metrics
    assert np.isnan(metrics["fwt"]) and metrics["task_il_acc"] > metrics["acc"] + 0.3
    assert "task_accuracy" in results.history and results.history["task_accuracy"].shape == (9, 3)


def test_masking_can_be_turned_off(seeded):
    stream = _class_stream(seeded)
    base = mlp_base(stream.input_shape, (8,))
    tasks = tasks_from_benchmark(stream, base, mask_classes=False)
    assert tasks[0].active_classes is None and tasks[0].metrics == ["accuracy"]


def test_masks_read_only_by_the_loss_reach_every_tasks_step():
    """With metrics that do not read the masks, the loss still trains over each task's classes:
    on JAX a mask the step does not track would be compiled in as task 1's (the trainer tracks
    the loss's masks itself; `training.loss_variables`)."""
    from sequential_learning.training import loss_variables

    def losses(plain_metrics: bool) -> np.ndarray:
        rng = np.random.default_rng(0)
        y = np.repeat(np.arange(6), 30)
        x = rng.random((len(y), 6)).astype("float32")
        x[np.arange(len(y)), y] += 1.0
        stream = split(x, y, classes_per_task=2, scenario="class", seed=0)
        keras.utils.set_random_seed(0)
        base = mlp_base(stream.input_shape, (8,))
        tasks = tasks_from_benchmark(stream, base, batch_size=16)
        if plain_metrics:
            for task in tasks:
                task.metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        assert {v.path for v in loss_variables(tasks[0].loss)} == {"active_classes",
                                                                   "evaluated_classes"}
        results = SequentialLearningManager(base, tasks, method="none", epochs=1,
                                            seed=0).train_all()
        return np.asarray(results.history["loss"])

    np.testing.assert_allclose(losses(True), losses(False), rtol=1e-6)
