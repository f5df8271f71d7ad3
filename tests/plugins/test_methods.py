"""Replay, DER++, A-GEM, LwF, joint and cumulative: each step's terms against a hand computation
on a tiny model, and what each does to a stream; on every backend."""

from __future__ import annotations

from types import SimpleNamespace

import keras
import numpy as np
import pytest
from keras import ops

from sequential_learning import backend
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.plugins import (
    AGEM,
    Cumulative,
    DERPlusPlus,
    ExperienceReplay,
    Joint,
    LearningWithoutForgetting,
    Router,
)

pytestmark = pytest.mark.all_backends


def _np(value):
    """A tensor's or variable's value as a NumPy array (a copy)."""
    return np.array(ops.convert_to_numpy(value))


def _ce(logits, labels):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels]


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_router_sends_each_sample_through_its_own_head(setup_factory):
    s = setup_factory(tasks=3)
    x = np.random.default_rng(1).random((7, 6)).astype("float32")
    ids = np.array([2, 0, 1, 1, 2, 0, 0], np.int32)
    y = np.array([1, 0, 1, 0, 0, 1, 1])
    router = Router(s.tasks)
    assert router.heads is not None  # head(base(x)): the base runs once per sample
    outputs = _np(router.outputs(x, ids))
    own = np.stack([_np(s.tasks[k].model(x[i:i + 1]))[0] for i, k in enumerate(ids)])
    np.testing.assert_allclose(outputs, own, rtol=1e-5, atol=1e-6)
    loss = float(_np(router.loss(x, y, ids)))
    np.testing.assert_allclose(loss, _ce(own, y).mean(), rtol=1e-5)


def test_router_runs_models_without_a_shared_base_whole_and_selects():
    """Task models that are not head(base(x)): each runs on the whole batch, each sample takes
    its own model's outputs and its own task's loss."""
    models = [keras.Sequential([keras.Input((6,)), keras.layers.Dense(2, activation="softmax")])
              for _ in range(3)]
    losses = ["sparse_categorical_crossentropy", "sparse_categorical_crossentropy",
              keras.losses.SparseCategoricalCrossentropy(from_logits=False)]
    tasks = [SimpleNamespace(model=m, loss=loss) for m, loss in zip(models, losses)]
    router = Router(tasks)
    assert router.heads is None
    x = np.random.default_rng(2).random((5, 6)).astype("float32")
    ids = np.array([1, 2, 0, 2, 1], np.int32)
    y = np.array([0, 1, 1, 0, 1])
    outputs = _np(router.outputs(x, ids))
    own = np.stack([_np(models[k](x[i:i + 1]))[0] for i, k in enumerate(ids)])
    np.testing.assert_allclose(outputs, own, rtol=1e-5, atol=1e-6)
    want = -np.log(own[np.arange(5), y]).mean()
    np.testing.assert_allclose(float(_np(router.loss(x, y, ids))), want, rtol=1e-5)
    with pytest.raises(ValueError, match="task ids"):
        router.outputs(x)


def test_replay_trains_old_heads_through_the_buffer(setup_factory):
    s = setup_factory(tasks=2)
    replay = s.build(ExperienceReplay(memory=20, memory_batch=8))
    replay.before_training_exp(s.experience(0))
    first = s.trainer(0, [replay])
    s.tasks[0].fit(first, 2)
    stored = replay.buffer.arrays()
    assert int(_np(replay.buffer.filled)) == 20 and set(stored["task"]) == {0}
    head_1 = [_np(v) for v in s.tasks[0].model.layers[-1].trainable_variables]
    replay.before_training_exp(s.experience(1))
    second = s.trainer(1, [replay])
    history = s.tasks[1].fit(second, 2).history
    assert min(history["replay_loss"]) > 0
    # Task 1's head is trained by the replayed samples during task 2 (each through its head).
    moved = [_np(v) for v in s.tasks[0].model.layers[-1].trainable_variables]
    assert any(not np.allclose(a, b) for a, b in zip(head_1, moved))
    composition = set(replay.buffer.arrays()["task"])
    assert composition == {0, 1}  # the reservoir took samples of task 2 as well


def test_derpp_step_matches_logits_and_labels_by_hand(setup_factory):
    s = setup_factory(tasks=2, scenario="domain")
    plugin = s.build(DERPlusPlus(memory=1, memory_batch=4, derpp_alpha=0.3, derpp_beta=0.7))
    model = s.tasks[0].model
    x0 = np.full((1, 6), 0.5, np.float32)
    z0 = np.array([[2.0, -1.0]], np.float32)
    plugin.buffer.reservoir_add(x0, np.array([1], np.int32), 0, z0)  # one sample: every draw
    out = _np(model(x0))
    want_logit = 0.3 * np.mean((out - z0) ** 2)
    want_label = 0.7 * _ce(out, np.array([1]))[0]
    trainer = s.trainer(1, [plugin])
    x, y = s.tasks[1].train_data
    logs = trainer.train_on_batch(x[:8], y[:8], return_dict=True)
    np.testing.assert_allclose(logs["logit_loss"], want_logit, rtol=1e-5)
    np.testing.assert_allclose(logs["replay_loss"], want_label, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], logs["base_loss"] + want_logit + want_label,
                               rtol=1e-5)


def test_agem_applies_the_projected_gradient(setup_factory):
    s = setup_factory(tasks=2, scenario="domain")
    plugin = s.build(AGEM(memory=2, memory_batch=3))  # one sample per task
    model = s.tasks[1].model
    x, y = s.tasks[1].train_data
    x, y = x[:8], y[:8]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables
    gradients = backend.ops().value_and_grad
    _, _, g = gradients(lambda: (loss_fn(y, model(x, training=True)), {}), variables)
    g = [_np(t) for t in g]

    def reference(xm, ym):
        _, _, r = gradients(lambda: (loss_fn(np.repeat(ym, 3), model(np.repeat(xm, 3, 0))), {}),
                            variables)
        r = [_np(t) for t in r]
        return r, sum(float(np.sum(a * b)) for a, b in zip(g, r))

    # The memory: an input of the batch with the other label whose gradient conflicts with the
    # batch's (which one depends on the backend's initialisation).
    found = [(k, *reference(x[k:k + 1], 1 - y[k:k + 1])) for k in range(len(x))]
    k, r, dot = min(found, key=lambda item: item[2])
    assert dot < 0
    plugin.buffer.fill_slots(0, x[k:k + 1], 1 - y[k:k + 1], task=0)
    norm = sum(float(np.sum(b * b)) for b in r)
    want = [a - (dot / norm) * b for a, b in zip(g, r)]
    before = [_np(v) for v in variables]
    logs = s.trainer(1, [plugin], learning_rate=0.1).train_on_batch(x, y, return_dict=True)
    assert logs["projected"] == 1.0
    for v, b, w in zip(variables, before, want):
        np.testing.assert_allclose(_np(v), b - 0.1 * w, rtol=1e-4, atol=1e-6)
    # The projected step no longer raises the memory's loss, to first order.
    assert abs(sum(float(np.sum(a * b)) for a, b in zip(want, r))) < 1e-5 * norm


def test_agem_skips_the_projection_while_the_memory_is_empty(setup_factory):
    s = setup_factory(tasks=2, scenario="domain")
    plugin = s.build(AGEM(memory=4))
    x, y = s.tasks[0].train_data
    logs = s.trainer(0, [plugin]).train_on_batch(x[:8], y[:8], return_dict=True)
    assert logs["projected"] == 0.0


def _perturb(model, rng):
    for v in model.trainable_variables:
        v.assign(_np(v) + rng.normal(0, 0.3, v.shape).astype("float32"))


def test_lwf_distils_the_previous_model_shared_head(setup_factory):
    s = setup_factory(tasks=2, scenario="domain")
    plugin = s.build(LearningWithoutForgetting(lwf_alpha=0.5, lwf_temperature=2.0))
    model = s.tasks[1].model
    x, y = s.tasks[1].train_data
    x, y = x[:8], y[:8]
    plugin.before_training_exp(s.experience(1))  # the teacher: the weights now
    teacher = _np(model(x))
    _perturb(model, np.random.default_rng(2))
    student = _np(model(x))
    q = np.exp(_log_softmax(teacher / 2.0))
    want = 0.5 * np.mean(np.sum(q * (_log_softmax(teacher / 2.0) - _log_softmax(student / 2.0)),
                                axis=1))
    logs = s.trainer(1, [plugin]).train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["distillation_loss"], want, rtol=1e-4)
    assert want > 1e-3


def test_lwf_distils_every_old_head_on_the_new_data(setup_factory):
    s = setup_factory(tasks=3)
    plugin = s.build(LearningWithoutForgetting(lwf_alpha=1.0, lwf_temperature=1.0))
    assert plugin._heads is not None  # head(base(x)): the old heads share one base pass
    x, y = s.tasks[2].train_data
    x, y = x[:8], y[:8]
    plugin.before_training_exp(s.experience(2))
    teachers = [_np(s.tasks[k].model(x)) for k in (0, 1)]
    _perturb(s.tasks[0].model, np.random.default_rng(3))  # the base and head 1 move
    students = [_np(s.tasks[k].model(x)) for k in (0, 1)]
    want = sum(np.mean(np.sum(np.exp(_log_softmax(t)) * (_log_softmax(t) - _log_softmax(u)),
                              axis=1)) for t, u in zip(teachers, students))
    logs = s.trainer(2, [plugin]).train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["distillation_loss"], want, rtol=1e-4)
    first = s.build(LearningWithoutForgetting())
    first.before_training_exp(s.experience(0))
    logs = s.trainer(0, [first]).train_on_batch(x, y, return_dict=True)
    assert logs["distillation_loss"] == 0.0  # nothing to distil in the first task


def _all(dataset):
    """Every batch of a stream (a `tf.data.Dataset` or a Keras `PyDataset`), concatenated."""
    if hasattr(dataset, "__getitem__"):
        batches = [dataset[i] for i in range(len(dataset))]
    else:
        batches = list(dataset)
    return keras.tree.map_structure(
        lambda *parts: np.concatenate([np.asarray(p) for p in parts]), *batches)


@pytest.mark.parametrize("plugin_class", [Joint, Cumulative])
def test_joint_and_cumulative_train_on_the_union(setup_factory, plugin_class):
    s = setup_factory(tasks=3)
    plugin = s.build(plugin_class())
    sizes = [len(t.train_data[0]) for t in s.tasks]
    first, second = s.experience(0), s.experience(1)
    if plugin_class is Joint:  # every task's data from the first task on, with its task id
        (x, ids), y = _all(plugin.adapt_dataset(None, first))
        assert np.bincount(ids).tolist() == sizes
        everything = np.concatenate([t.train_data[0] for t in s.tasks])
        np.testing.assert_array_equal(np.sort(x, axis=0), np.sort(everything, axis=0))
    else:  # the tasks so far
        assert not plugin.routed_data(first)
        x, y = _all(plugin.adapt_dataset(None, first))
        assert len(x) == sizes[0]
        (x, ids), y = _all(plugin.adapt_dataset(None, second))
        assert np.bincount(ids).tolist() == sizes[:2]


def test_joint_learns_every_task_from_the_first_and_cumulative_does_not(setup_factory):
    results = {}
    for method in ("joint", "cumulative"):
        keras.utils.set_random_seed(0)
        s = setup_factory(tasks=3, hidden=(8,))
        results[method] = SequentialLearningManager(s.base, s.tasks, method=method,
                                                    epochs=4, learning_rate=0.01).train_all()
    joint, cumulative = results["joint"], results["cumulative"]
    assert joint.accuracy_matrix[0, 2] > 0.9  # task 3 learned during task 1: its head trained
    assert cumulative.accuracy_matrix[0, 2] < 0.8
    assert cumulative.accuracy_matrix[2].min() > 0.9


def test_joint_in_a_class_incremental_stream_has_every_class_active(setup_factory):
    keras.utils.set_random_seed(0)
    s = setup_factory(tasks=3, scenario="class", hidden=(8,))
    results = SequentialLearningManager(s.base, s.tasks, method="joint", epochs=4,
                                        learning_rate=0.01).train_all()
    assert results.accuracy_matrix[0, 2] > 0.8  # task 3's classes learned (and unmasked) at once
    assert results.metrics["acc"] > 0.9


def test_buffers_must_fit_the_stream_and_options_are_checked(setup_factory):
    s = setup_factory(tasks=2)
    with pytest.raises(ValueError, match=f"memory: 1000 is larger than the {sum(s.run.train_sizes)}"):
        ExperienceReplay(memory=1000).check(s.run)
    with pytest.raises(ValueError, match="smaller than the 2 tasks"):
        AGEM(memory=1).check(s.run)
    with pytest.raises(ValueError, match="memory_batch"):
        ExperienceReplay(memory_batch=0)
    with pytest.raises(ValueError, match="replay_policy"):
        ExperienceReplay(replay_policy="fifo")
