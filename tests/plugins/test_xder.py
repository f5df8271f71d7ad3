"""X-DER: the logit update against a NumPy copy of Mammoth's `update_logits`, one step's terms and
buffer update by hand, the end-of-task buffer, a class-incremental stream, resume, options and the
streams it refuses; on every backend."""

from __future__ import annotations

import json

import numpy as np
import pytest
from keras import ops

from crash import CrashAfterEpochs
from sequential_learning.plugins import XDER
from sequential_learning.plugins.xder import first_occurrences, transplant_logits

pytestmark = pytest.mark.all_backends

from test_er_ace import _ce, _manager  # noqa: E402  (the same small stream)


def _np(value):
    return np.array(ops.convert_to_numpy(value))


def _mammoth_update(old, new, labels, columns, gamma):
    """Mammoth's `XDer.update_logits`, in NumPy, for the classes `columns` (a list)."""
    old, new = np.array(old, np.float64), np.array(new, np.float64)
    transplant = new[:, columns]
    gt_values = old[np.arange(len(labels)), labels]
    max_values = transplant.max(axis=1)
    coeff = np.repeat((gamma * gt_values / max_values)[:, None], len(columns), axis=1)
    mask = np.repeat((max_values > gt_values)[:, None], len(columns), axis=1)
    transplant[mask] *= coeff[mask]
    old[:, columns] = transplant
    return old


def test_transplant_matches_mammoths_update_logits():
    rng = np.random.default_rng(0)
    old = rng.normal(0, 2, (40, 6))
    new = rng.normal(0, 3, (40, 6))
    labels = rng.integers(0, 2, 40)
    old[np.arange(40), labels] = np.abs(old[np.arange(40), labels]) + 0.1  # targets > 0
    for columns in ([2, 3, 4, 5], [4, 5], [0, 1]):
        mask = np.isin(np.arange(6), columns).astype(np.float32)
        got = _np(transplant_logits(old, new, labels, mask, 0.85))
        want = _mammoth_update(old, new, labels, columns, 0.85)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        scaled = want[:, columns].max(axis=1) > old[np.arange(40), labels]
        assert not scaled.any()  # no transplanted logit above the target afterwards
    # A row whose transplanted classes stay below the target keeps them as they are.
    row = _np(transplant_logits([[5.0, 0.0, 1.0]], [[9.0, 9.0, 2.0]], [0], [0, 1, 1], 0.5))
    np.testing.assert_allclose(row, [[5.0, 9.0 * 0.5 * 5.0 / 9.0, 2.0 * 0.5 * 5.0 / 9.0]])
    np.testing.assert_allclose(first_occurrences(ops.convert_to_tensor([3, 1, 3, 2, 1])),
                               [1, 1, 0, 1, 0])


def _class_il_plugin(setup_factory, **options):
    """A three-task class-incremental stream and the plugin."""
    s = setup_factory(tasks=3, scenario="class")
    plugin = s.build(XDER(memory=6, memory_batch=4, **options))
    return s, plugin


def test_one_step_terms_and_buffer_update_by_hand(setup_factory):
    alpha, beta, gamma, eta = 0.3, 0.7, 0.85, 0.5
    s = setup_factory(tasks=3, scenario="class")
    model = s.tasks[1].model
    x, y = s.tasks[1].train_data
    x, y = x[:8], y[:8]
    x0 = np.full((1, 6), 0.5, np.float32)

    def gaps():  # each constraint row's ground-truth head's largest minus the future's
        out, out0 = _np(model(x)), _np(model(x0))
        return out, out0, np.concatenate([out[:, 2:4].max(1) - out[:, 4:].max(1),
                                          out0[:, 0:2].max(1) - out0[:, 4:].max(1)])

    # The future classes' biases lowered so that the margin 0.5 splits the rows: some exceed
    # it (no loss), the others count.
    bias = model.layers[-1].trainable_variables[-1]
    shift = 0.5 - np.median(gaps()[2])
    bias.assign(_np(bias) - shift * (np.arange(6) >= 4))
    out, out0, _ = gaps()
    margin = 0.5 + 1e-3
    plugin = s.build(XDER(memory=6, memory_batch=4, derpp_alpha=alpha, derpp_beta=beta,
                          xder_gamma=gamma, xder_margin=margin, xder_eta=eta))
    z0 = np.array([[0.5, 3.0, -1.0, 2.5, 0.2, -0.3]], np.float32)
    plugin.buffer.assign_arrays({"x": x0, "y": np.array([1], np.int32),
                                 "task": np.array([0], np.int32), "logits": z0})
    s.tasks[1].active_classes.begin_task(1)
    plugin.before_training_exp(s.experience(1))
    seen = np.arange(6) < 4
    # Present head: classes 2, 3; the task loss: classes 0-3.
    want_shift = _ce(out, y, np.isin(np.arange(6), [2, 3])).mean() - _ce(out, y, seen).mean()
    want_logit = alpha * np.mean((out0 - z0) ** 2)
    want_replay = beta * _ce(out0, [1], np.arange(6) < 2)[0]  # the past heads: classes 0, 1
    # Every buffer draw reads slot 0, which counts once: the batch's rows and one buffer row.
    violation = np.concatenate([out[:, 4:].max(1) + margin - out[:, 2:4].max(1),
                                out0[:, 4:].max(1) + margin - out0[:, 0:2].max(1)])
    assert (violation > 0).any() and (violation <= 0).any()
    want_future = eta * violation[violation > 0].mean()
    logs = s.trainer(1, [plugin]).train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["xder_shift"], want_shift, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(logs["xder_logit_loss"], want_logit, rtol=1e-4)
    np.testing.assert_allclose(logs["xder_replay_loss"], want_replay, rtol=1e-4)
    np.testing.assert_allclose(logs["xder_future_loss"], want_future, rtol=1e-4)
    # Drawn for the first time this task (probability 1 / 1): its logits of the classes of
    # tasks >= 2 are the step's outputs (before the update), rescaled under gamma * z0[1].
    stored = plugin.buffer.arrays()["logits"]
    np.testing.assert_allclose(stored, _mammoth_update(z0, out0, [1], [2, 3, 4, 5], gamma),
                               rtol=1e-4, atol=1e-5)
    assert _np(plugin.counter)[0] == 1.0 and not _np(plugin.counter)[1:].any()


def test_end_of_task_buffer_is_class_balanced_with_updated_logits(setup_factory):
    gamma = 0.85
    s, plugin = _class_il_plugin(setup_factory, xder_gamma=gamma)
    for t in (0, 1):
        s.tasks[t].active_classes.begin_task(t)
        plugin.before_training_exp(s.experience(t))
        before = plugin.buffer.arrays()
        plugin.after_training_exp(s.experience(t))
        held = plugin.buffer.arrays()
        model = s.tasks[t].model
        if t == 0:  # three samples of each class of task 1, with the model's logits
            assert sorted(held["y"].tolist()) == [0, 0, 0, 1, 1, 1]
            np.testing.assert_allclose(held["logits"], _np(model(held["x"])), rtol=1e-5,
                                       atol=1e-6)
            continue
        # Task 2's end: each class of task 1 keeps its first 6 // 4 = 1 sample; classes 2, 3
        # share the four free slots.
        assert held["y"].tolist()[:2] == [0, 1]
        for label in (0, 1):
            first = np.flatnonzero(before["y"] == label)[0]
            np.testing.assert_array_equal(held["x"][label], before["x"][first])
        assert sorted(held["y"][2:].tolist()) == [2, 2, 3, 3]
        outputs = _np(model(held["x"]))
        # Past: the new samples' logits of classes 0, 1 rescaled under their own target.
        np.testing.assert_allclose(
            held["logits"][2:], _mammoth_update(outputs[2:], outputs[2:], held["y"][2:],
                                                [0, 1], gamma), rtol=1e-4, atol=1e-5)
        # Future past: the old samples' classes 2-5 from the model, under the stored target.
        kept = np.stack([before["logits"][np.flatnonzero(before["y"] == c)[0]] for c in (0, 1)])
        np.testing.assert_allclose(
            held["logits"][:2], _mammoth_update(kept, outputs[:2], [0, 1], [2, 3, 4, 5], gamma),
            rtol=1e-4, atol=1e-5)
    assert not _np(plugin.counter).any()


def test_xder_keeps_old_classes_in_a_class_incremental_stream():
    none = _manager("none", epochs=3).train_all()
    xder = _manager("xder", epochs=3).train_all()
    assert xder.metrics["acc"] > none.metrics["acc"] + 0.2, (none.metrics, xder.metrics)
    buffer = xder.task_summaries[-1]["replay_buffer"]
    assert buffer == {"task_1": 20, "task_2": 20, "task_3": 20}  # 10 of each class


def test_resume_gives_the_same_accuracy_matrix(tmp_path):
    full = _manager("xder", tmp_path / "full").train_all()
    # Two epochs per task: fails after the first epoch of task 3.
    crashed = _manager("xder", tmp_path / "run", callbacks=[CrashAfterEpochs(5)])
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.train_all()
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["completed_tasks"] == 2
    resumed = _manager("xder", tmp_path / "run").train_all(resume=True)
    np.testing.assert_allclose(resumed.accuracy_matrix, full.accuracy_matrix, atol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"xder_gamma": 0.0}, "xder_gamma: 0.0 is not allowed; expected a number in (0, 1]"),
    ({"xder_gamma": 1.5}, "xder_gamma: 1.5 is not allowed"),
    ({"xder_margin": -0.1}, "xder_margin: -0.1 is not allowed"),
    ({"xder_eta": float("nan")}, "xder_eta: nan is not allowed"),
    ({"derpp_alpha": -1.0}, "derpp_alpha: -1.0 is not allowed"),
])
def test_bad_options_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        XDER(**kwargs)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("scenario, message", [
    ("task", "xder: needs a class-incremental stream (one head over every class, --scenario "
             "class), this one is task; use derpp there"),
    ("domain", "this one is domain; use derpp there"),
])
def test_streams_without_one_head_over_every_class_are_refused(setup_factory, scenario,
                                                               message):
    s = setup_factory(tasks=2, scenario=scenario)
    with pytest.raises(ValueError) as caught:
        XDER(memory=10).check(s.run)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_memory_below_the_classes_is_refused(setup_factory):
    s = setup_factory(tasks=3, scenario="class")
    with pytest.raises(ValueError, match="memory: 5 is less than the stream's 6 classes"):
        XDER(memory=5).check(s.run)


def test_task_free_streams_are_refused_in_one_line():
    from sequential_learning.online import check_plugins

    with pytest.raises(ValueError, match="xder: needs task boundaries") as caught:
        check_plugins([XDER()], "blurry")
    assert "\n" not in str(caught.value)
