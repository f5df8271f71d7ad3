"""MIR: the replayed samples and their loss against a NumPy brute force of the virtual step on a
softmax-regression model, the virtual outputs through each sample's own head, a class-incremental
stream, resume, options; on every backend."""

from __future__ import annotations

import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from keras import ops

from crash import CrashAfterEpochs
from sequential_learning import backend
from sequential_learning.plugins import MIR, Router
from sequential_learning.plugins.base import Experience, Run
from sequential_learning.plugins.mir import virtual_outputs
from sequential_learning.tasks import SequentialTask

pytestmark = pytest.mark.all_backends

from test_er_ace import _manager  # noqa: E402  (the same small stream)


def _np(value):
    return np.array(ops.convert_to_numpy(value))


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _ce(logits, labels):
    return -np.log(_softmax(logits)[np.arange(len(labels)), labels])


def _gradients(w, b, x, y):
    """Softmax regression: the mean cross-entropy's gradients with respect to w and b."""
    delta = _softmax(x @ w + b)
    delta[np.arange(len(y)), y] -= 1.0
    delta /= len(y)
    return x.T @ delta, delta.sum(axis=0)


def _strategy():
    if not backend.is_tensorflow():
        return None
    import tensorflow as tf

    return tf.distribute.get_strategy()


def _linear_tasks(rng):
    """Two tasks sharing one softmax-regression model (4 inputs, 3 classes)."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.set_weights([rng.normal(0, 1.0, (4, 3)).astype("float32"),
                       rng.normal(0, 0.5, 3).astype("float32")])
    tasks = []
    for k in range(2):
        x = rng.normal(0, 1.0, (24, 4)).astype("float32")
        y = rng.integers(0, 3, 24).astype("int32")
        tasks.append(SequentialTask(f"task {k + 1}", model, (x, y), (x, y), batch_size=8))
    run = Run(tasks=tasks, covered=[], strategy=_strategy(), seed=0, shared_head=True,
              scenario="domain")
    return model, tasks, run


def test_replays_the_most_interfered_candidates_of_earlier_tasks():
    rng = np.random.default_rng(3)
    model, tasks, run = _linear_tasks(rng)
    plugin = MIR(memory=10, memory_batch=3, mir_candidates=10)
    plugin.check(run)
    plugin.build(run)
    xm = rng.normal(0, 1.5, (10, 4)).astype("float32")
    ym = rng.integers(0, 3, 10).astype("int32")
    plugin.buffer.reservoir_add(xm[:6], ym[:6], 0)  # slots 0-5: task 1's
    plugin.buffer.reservoir_add(xm[6:], ym[6:], 1)  # slots 6-9: the task in training
    plugin.before_training_exp(Experience(1, tasks[1], run))
    x, y = tasks[1].train_data
    x, y = x[:8], y[:8]
    w, b = (np.asarray(v, np.float64) for v in model.get_weights())
    rate = 0.5
    # The brute force: a virtual SGD step on the incoming batch, every eligible candidate scored.
    gw, gb = _gradients(w, b, x, y)
    before = _ce(xm[:6] @ w + b, ym[:6])
    after = _ce(xm[:6] @ (w - rate * gw) + (b - rate * gb), ym[:6])
    scores = after - before
    chosen = np.argsort(-scores)[:3]
    assert set(chosen) != set(np.argsort(-before)[:3])  # not merely the largest losses
    rw, rb = _gradients(w, b, xm[chosen], ym[chosen])
    trainer = tasks[1].make_trainer(keras.optimizers.SGD(rate), covered=[], plugins=[plugin])
    logs = trainer.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["mir_replay_loss"], before[chosen].mean(), rtol=1e-4)
    np.testing.assert_allclose(logs["mir_interference"], scores[chosen].mean(), rtol=1e-3,
                               atol=1e-5)
    new_w, new_b = model.get_weights()
    np.testing.assert_allclose(new_w, w - rate * (gw + rw), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(new_b, b - rate * (gb + rb), rtol=1e-4, atol=1e-5)
    # The incoming batch was offered to the reservoir after the update.
    assert int(_np(plugin.buffer.seen)) == 18


def test_nothing_is_replayed_while_every_candidate_is_of_the_task_in_training():
    rng = np.random.default_rng(4)
    model, tasks, run = _linear_tasks(rng)
    plugin = MIR(memory=10, memory_batch=3, mir_candidates=10)
    plugin.check(run)
    plugin.build(run)
    plugin.before_training_exp(Experience(0, tasks[0], run))
    x, y = tasks[0].train_data
    trainer = tasks[0].make_trainer(keras.optimizers.SGD(0.1), covered=[], plugins=[plugin])
    for start in (0, 8):  # the second step finds the first batch in the buffer
        logs = trainer.train_on_batch(x[start:start + 8], y[start:start + 8], return_dict=True)
        assert logs["mir_replay_loss"] == 0.0 and logs["mir_interference"] == 0.0
        np.testing.assert_allclose(logs["loss"], logs["base_loss"], rtol=1e-6)


def test_virtual_outputs_go_through_each_samples_own_head(setup_factory):
    s = setup_factory(tasks=2, scenario="task")
    router = Router(s.tasks)
    variables = [*s.tasks[0].model.trainable_variables,
                 *s.tasks[1].model.layers[-1].trainable_variables]
    step = SimpleNamespace(variables=variables, outputs=router.outputs,
                           trainer=SimpleNamespace(router=router))
    rng = np.random.default_rng(5)
    values = [_np(v) + rng.normal(0, 0.3, v.shape).astype("float32") for v in variables]
    x = rng.random((5, 6)).astype("float32")
    ids = np.array([1, 0, 0, 1, 1], np.int32)
    got = _np(virtual_outputs(step, [ops.convert_to_tensor(v) for v in values], x, ids))
    old = [_np(v) for v in variables]
    for v, value in zip(variables, values):  # the same weights, set for real
        v.assign(value)
    want = np.stack([_np(s.tasks[k].model(x[i:i + 1]))[0] for i, k in enumerate(ids)])
    for v, value in zip(variables, old):
        v.assign(value)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(_np(router.outputs(x, ids)), want, atol=1e-3)  # nothing assigned


def test_mir_keeps_old_classes_in_a_class_incremental_stream():
    none = _manager("none", epochs=3).train_all()
    mir = _manager("mir", epochs=3).train_all()
    assert mir.metrics["acc"] > none.metrics["acc"] + 0.2, (none.metrics, mir.metrics)


def test_resume_gives_the_same_accuracy_matrix_task_incremental(tmp_path):
    """In a task-incremental stream (each sample scored and replayed through its own head)."""
    full = _manager("mir", tmp_path / "full", scenario="task").train_all()
    assert full.metrics["acc"] > 0.8
    assert full.task_summaries[-1]["replay_buffer"].keys() == {"task_1", "task_2", "task_3"}
    # Two epochs per task: fails after the first epoch of task 3.
    crashed = _manager("mir", tmp_path / "run", callbacks=[CrashAfterEpochs(5)], scenario="task")
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.train_all()
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["completed_tasks"] == 2
    resumed = _manager("mir", tmp_path / "run", scenario="task").train_all(resume=True)
    np.testing.assert_allclose(resumed.accuracy_matrix, full.accuracy_matrix, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"mir_candidates": 0}, "mir_candidates: 0 is not allowed; expected an integer >= 1"),
    ({"memory_batch": 20, "mir_candidates": 10},
     "memory_batch: 20 is more than mir_candidates 10"),
    ({"memory": -1}, "memory: -1 is not allowed"),
])
def test_bad_options_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as caught:
        MIR(**kwargs)
    assert "\n" not in str(caught.value)


def test_a_batch_larger_than_the_candidates_is_refused(setup_factory):
    s = setup_factory(tasks=2, batch_size=8)
    with pytest.raises(ValueError, match="the batch size 8 is more than mir_candidates 5"):
        MIR(memory=20, mir_candidates=5).check(s.run)
    MIR(memory=20, memory_batch=5, mir_candidates=5).check(s.run)
    with pytest.raises(ValueError, match="memory_batch: the batch size 8 is more than the "
                                         "memory 6 "):
        MIR(memory=6).check(s.run)


def test_candidates_are_distinct_filled_slots_of_other_tasks():
    from sequential_learning.plugins.buffer import MemoryBuffer

    buffer = MemoryBuffer(12, (2,), (), "int32", seed=1)
    buffer.build()
    x = np.arange(16, dtype=np.float32).reshape(8, 2)
    buffer.reservoir_add(x[:5], np.zeros(5, np.int32), 0)  # slots 0-4: task 0
    buffer.reservoir_add(x[5:], np.ones(3, np.int32), 1)  # slots 5-7: task 1; 8-11 empty
    drawn = set()
    for _ in range(20):
        rows = buffer.sample_distinct(6, exclude_task=1)
        slot, valid = _np(rows["slot"]), _np(rows["valid"])
        assert len(slot) == 6 and len(set(slot.tolist())) == 6
        kept = slot[valid > 0]
        assert sorted(kept.tolist()) == [0, 1, 2, 3, 4]  # every eligible slot, once
        np.testing.assert_array_equal(_np(rows["x"])[valid > 0], x[kept])
        drawn.add(tuple(kept.tolist()))
    assert len(drawn) > 1  # in a random order
    rows = buffer.sample_distinct(3)  # fewer than the eligible: a random subset
    assert _np(rows["valid"]).tolist() == [1.0, 1.0, 1.0]
    assert set(_np(rows["slot"]).tolist()) <= set(range(8))
    assert len(_np(buffer.sample_distinct(50)["slot"])) == 12  # at most the capacity


def test_task_free_streams_take_every_stored_sample_as_a_candidate():
    rng = np.random.default_rng(6)
    model, tasks, run = _linear_tasks(rng)
    run.boundaries = "none"  # one experience: no task to leave out
    plugin = MIR(memory=10, memory_batch=3, mir_candidates=10)
    plugin.check(run)
    plugin.build(run)
    plugin.before_training_exp(Experience(0, tasks[0], run))
    x, y = tasks[0].train_data
    plugin.buffer.reservoir_add(x[8:14], y[8:14], 0)
    trainer = tasks[0].make_trainer(keras.optimizers.SGD(0.1), covered=[], plugins=[plugin])
    logs = trainer.train_on_batch(x[:8], y[:8], return_dict=True)
    assert logs["mir_replay_loss"] > 0.0


def test_default_candidates_are_five_per_replayed_sample_at_most_the_memory(setup_factory):
    s = setup_factory(tasks=2, batch_size=8)
    assert s.build(MIR(memory=100)).candidates == 40  # the authors' 50 for 10
    assert s.build(MIR(memory=30)).candidates == 30
    assert s.build(MIR(memory=100, memory_batch=4, mir_candidates=7)).candidates == 7
