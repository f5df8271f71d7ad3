"""ER-ACE: one step's asymmetric loss and replayed loss against NumPy, its update against the
gradient of that loss, the old classes untouched by the incoming batch, a class-incremental stream,
resume, options; on every backend."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import ops

from crash import CrashAfterEpochs
from sequential_learning import backend
from sequential_learning.data.benchmarks import split
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.plugins import ERACE, make_plugins
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.all_backends


def _np(value):
    return np.array(ops.convert_to_numpy(value))


def _ce(logits, labels, keep=None):
    """Cross-entropy of each row over the classes `keep` (all when None)."""
    logits = np.asarray(logits, np.float64)
    if keep is not None:
        logits = np.where(np.asarray(keep, bool)[None, :], logits, -np.inf)
    top = logits.max(axis=1, keepdims=True)
    log_p = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels]


def _class_il_step(setup_factory, incoming_labels):
    """Task 2 of a class-incremental stream: one stored sample (class 1), a batch of task 2."""
    s = setup_factory(tasks=2, scenario="class")
    plugin = s.build(ERACE(memory=1, memory_batch=4))
    x0 = np.full((1, 6), 0.5, np.float32)
    plugin.buffer.reservoir_add(x0, np.array([1], np.int32), 0)
    s.tasks[1].active_classes.begin_task(1)
    plugin.before_training_exp(s.experience(1))
    x, y = s.tasks[1].train_data
    rows = np.concatenate([np.flatnonzero(y == c)[:4] for c in incoming_labels])
    return s, plugin, x0, x[rows], y[rows]


def test_step_terms_are_the_asymmetric_and_replayed_losses(setup_factory):
    s, plugin, x0, x, y = _class_il_step(setup_factory, incoming_labels=(2, 3))
    model = s.tasks[1].model
    out, out0 = _np(model(x)), _np(model(x0))
    active = np.ones(out.shape[1], bool)  # task 2 of 2: every class is active
    present = np.isin(np.arange(out.shape[1]), [2, 3])
    want_ace = _ce(out, y, present).mean()  # over the classes of the batch's labels only
    want_task = _ce(out, y, active).mean()  # the task loss: every class seen so far
    want_replay = _ce(out0, [1], active)[0]
    logs = s.trainer(1, [plugin]).train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["base_loss"], want_task, rtol=1e-5)
    np.testing.assert_allclose(logs["ace_shift"], want_ace - want_task, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(logs["ace_replay_loss"], want_replay, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], want_ace + want_replay, rtol=1e-5)
    assert want_ace < want_task - 1e-3  # the masking changes the loss


def test_the_update_follows_the_gradient_of_the_asymmetric_loss(setup_factory):
    s, plugin, x0, x, y = _class_il_step(setup_factory, incoming_labels=(2, 3))
    model = s.tasks[1].model
    variables = model.trainable_variables
    width = int(model.output_shape[-1])
    present = ops.convert_to_tensor(np.isin(np.arange(width), [2, 3])[None, :])
    active = ops.convert_to_tensor(np.ones((1, width), bool))

    def hand_loss():
        def ce(logits, labels, keep):
            logits = ops.where(keep, logits, -1e9)
            return ops.mean(keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True))
        return ce(model(x, training=True), y, present) + ce(model(x0, training=True),
                                                            np.array([1]), active), {}

    _, _, grads = backend.ops().value_and_grad(hand_loss, variables)
    want = [_np(v) - 0.1 * _np(g) for v, g in zip(variables, grads)]
    s.trainer(1, [plugin], learning_rate=0.1).train_on_batch(x, y)
    for v, w in zip(variables, want):
        np.testing.assert_allclose(_np(v), w, rtol=1e-4, atol=1e-6)


def test_the_incoming_batch_leaves_absent_classes_alone(setup_factory):
    """With an empty buffer, a step on classes 2 and 3 moves no weight of class 0's and 1's
    outputs (fine-tuning pushes them down)."""
    moved = {}
    for method in ("er-ace", "none"):
        s = setup_factory(tasks=2, scenario="class")
        plugins = [s.build(p) for p in make_plugins(method, memory=4)]
        s.tasks[1].active_classes.begin_task(1)
        for p in plugins:
            p.before_training_exp(s.experience(1))
        head = s.tasks[1].model.layers[-1]
        before = [_np(w) for w in head.trainable_variables]
        x, y = s.tasks[1].train_data
        s.trainer(1, plugins).train_on_batch(x[:8], y[:8])
        after = [_np(w) for w in head.trainable_variables]
        moved[method] = max(np.abs(a[..., :2] - b[..., :2]).max() for a, b in zip(after, before))
    assert moved["er-ace"] < 1e-7
    assert moved["none"] > 1e-4


def test_task_incremental_masks_within_the_head_and_replays_through_old_heads(setup_factory):
    s = setup_factory(tasks=2, scenario="task")
    plugin = s.build(ERACE(memory=1, memory_batch=4))
    x0 = np.full((1, 6), 0.5, np.float32)
    plugin.buffer.reservoir_add(x0, np.array([1], np.int32), 0)
    plugin.before_training_exp(s.experience(1))
    x, y = s.tasks[1].train_data
    rows = np.flatnonzero(y == 0)[:5]  # one class present: its masked loss is 0
    out = _np(s.tasks[1].model(x[rows]))
    want_replay = _ce(_np(s.tasks[0].model(x0)), [1])[0]  # task 1's head
    logs = s.trainer(1, [plugin]).train_on_batch(x[rows], y[rows], return_dict=True)
    np.testing.assert_allclose(logs["ace_shift"], -_ce(out, y[rows]).mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["ace_replay_loss"], want_replay, rtol=1e-5)


def test_first_task_trains_on_the_task_loss_without_replay(setup_factory):
    s = setup_factory(tasks=2, scenario="class")
    plugin = s.build(ERACE(memory=4))
    s.tasks[0].active_classes.begin_task(0)
    plugin.before_training_exp(s.experience(0))
    x, y = s.tasks[0].train_data
    trainer = s.trainer(0, [plugin])
    for _ in range(2):  # the second step finds samples in the buffer
        logs = trainer.train_on_batch(x[:8], y[:8], return_dict=True)
    assert logs["ace_shift"] == 0.0 and logs["ace_replay_loss"] == 0.0
    assert int(_np(plugin.buffer.filled)) == 4


def _stream(scenario):
    rng = np.random.default_rng(0)
    x = rng.random((360, 6)).astype("float32")
    y = np.repeat(np.arange(6), 60)
    x[np.arange(360), y] += 1.5
    return split(x, y, classes_per_task=2, scenario=scenario, seed=0)


def _manager(method, out_dir=None, callbacks=(), scenario="class", epochs=2):
    keras.utils.set_random_seed(0)
    stream = _stream(scenario)
    base = mlp_base(stream.input_shape, (16,))
    tasks = tasks_from_benchmark(stream, base, batch_size=16)
    return SequentialLearningManager(base, tasks, method=method, epochs=epochs, seed=0,
                                     learning_rate=0.01, out_dir=out_dir,
                                     callbacks=list(callbacks),
                                     method_options={"memory": 60, "memory_batch": 16})


def test_er_ace_keeps_old_classes_in_a_class_incremental_stream():
    none = _manager("none", epochs=3).train_all()
    ace = _manager("er-ace", epochs=3).train_all()
    assert none.metrics["acc"] < 0.45  # about the last task's classes only
    assert ace.metrics["acc"] > none.metrics["acc"] + 0.2, (none.metrics, ace.metrics)


def test_resume_gives_the_same_accuracy_matrix(tmp_path):
    full = _manager("er-ace", tmp_path / "full").train_all()
    # Two epochs per task: fails after the first epoch of task 3.
    crashed = _manager("er-ace", tmp_path / "run", callbacks=[CrashAfterEpochs(5)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.train_all()
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["completed_tasks"] == 2
    resumed = _manager("er-ace", tmp_path / "run").train_all(resume=True)
    np.testing.assert_allclose(resumed.accuracy_matrix, full.accuracy_matrix, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"memory": 0}, "memory: 0 is not allowed; expected an integer >= 1"),
    ({"memory_batch": 0}, "memory_batch: 0 is not allowed"),
    ({"memory": 2.5}, "memory: 2.5 is not allowed"),
])
def test_bad_options_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as caught:
        ERACE(**kwargs)
    assert "\n" not in str(caught.value)


def test_streams_it_cannot_serve_are_refused_in_one_line(setup_factory):
    s = setup_factory(tasks=2)
    with pytest.raises(ValueError, match="memory: 1000 is larger than the") as caught:
        ERACE(memory=1000).check(s.run)
    assert "\n" not in str(caught.value)
    s.run.task_type = "regression"
    with pytest.raises(ValueError, match="er-ace: needs a classification stream"):
        ERACE(memory=10).check(s.run)


def test_task_free_streams_mask_and_replay_from_the_first_step(setup_factory):
    """One experience for the whole stream (boundaries none or blurry): Mammoth's --task_free."""
    s = setup_factory(tasks=2, scenario="class")
    s.run.boundaries = "none"
    plugin = s.build(ERACE(memory=4))
    plugin.before_training_exp(s.experience(0))
    assert float(_np(plugin.on)) == 1.0
