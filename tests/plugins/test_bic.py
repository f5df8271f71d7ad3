"""BiC: the bias layer's fit against a brute-force grid, the folded correction, the weighted
distillation against NumPy, stage 2 before the task's row, resume and bad options; on every
backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from crash import CrashAfterEpochs
from sequential_learning.evaluation import evaluate_all
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.plugins import BiC
from sequential_learning.plugins.bic import apply_bias, fit_bias, fold_bias, output_dense
from sequential_learning.plugins.registry import method_spec

pytestmark = pytest.mark.all_backends


def _np(value):
    return np.array(ops.convert_to_numpy(value))


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _loss(logits, targets, new, alpha, beta):
    """Mean cross-entropy of the corrected logits for arrays of (alpha, beta)."""
    alpha, beta = np.asarray(alpha)[..., None, None], np.asarray(beta)[..., None, None]
    corrected = np.where(new, alpha * logits + beta, logits)
    log_p = _log_softmax(corrected)
    return -log_p[..., np.arange(len(targets)), targets].mean(axis=-1)


def test_the_bias_fit_is_the_grid_minimum():
    rng = np.random.default_rng(0)
    targets = np.repeat(np.arange(4), 15)
    logits = rng.normal(0, 1.5, (60, 4))
    logits[np.arange(60), targets] += 1.0
    logits[:, 2:] += 1.5  # the new classes' logits run high: BiC's bias
    new = np.array([False, False, True, True])
    alpha, beta = fit_bias(logits, targets, new)
    center, losses = (1.5, -1.0), None
    for half, step in (((1.5, 3.0), 0.05), ((0.1, 0.1), 0.002)):  # coarse, then fine around it
        grid_a, grid_b = np.meshgrid(
            np.arange(center[0] - half[0], center[0] + half[0] + step / 2, step),
            np.arange(center[1] - half[1], center[1] + half[1] + step / 2, step), indexing="ij")
        losses = np.stack([_loss(logits, targets, new, a, b) for a, b in zip(grid_a, grid_b)])
        best = np.unravel_index(np.argmin(losses), losses.shape)
        center = (grid_a[best], grid_b[best])
    fitted = float(_loss(logits, targets, new, alpha, beta))
    assert fitted <= losses.min() + 1e-9
    assert abs(alpha - center[0]) <= 0.004 and abs(beta - center[1]) <= 0.004
    assert beta < 0  # the correction pulls the new classes down
    np.testing.assert_allclose(apply_bias(logits, new, alpha, beta)[:, :2], logits[:, :2])


def test_the_folded_correction_is_alpha_o_plus_beta_on_the_new_classes(setup_factory):
    s = setup_factory(tasks=2, scenario="class")
    model = s.tasks[0].model
    x = s.tasks[1].train_data[0][:10]
    before = _np(model(x))
    fold_bias(output_dense(model), np.array([2, 3]), 0.7, -0.4)
    after = _np(model(x))
    np.testing.assert_allclose(after[:, 2:], 0.7 * before[:, 2:] - 0.4, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(after[:, :2], before[:, :2])


def test_the_weighted_distillation_matches_numpy(setup_factory):
    s = setup_factory(tasks=2, scenario="class")
    plugin = s.build(BiC(memory=8, bic_temperature=2.0))
    model = s.tasks[1].model
    x, y = s.tasks[1].train_data
    x, y = x[:8], y[:8]
    s.tasks[1].active_classes.begin_task(1)
    plugin.before_training_exp(s.experience(1))  # the teacher; λ = 2 / (2 + 2)
    teacher = _np(model(x))[:, :2]
    for v in model.trainable_variables:
        v.assign(_np(v) + np.random.default_rng(2).normal(0, 0.3, v.shape).astype("float32"))
    student = _np(model(x))
    q = np.exp(_log_softmax(teacher / 2.0))
    kd = -np.mean(np.sum(q * _log_softmax(student[:, :2] / 2.0), axis=1))
    ce = -np.mean(_log_softmax(student)[np.arange(8), y])  # over the 4 seen classes
    logs = s.trainer(1, [plugin]).train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["distillation_loss"], 0.5 * kd, rtol=1e-4)
    np.testing.assert_allclose(logs["classification_offset"], -0.5 * ce, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], 0.5 * ce + 0.5 * kd, rtol=1e-4)


EPOCHS = 4


def _run(setup_factory, method="bic", out_dir=None, callbacks=(), resume=False):
    keras.utils.set_random_seed(0)
    s = setup_factory(rng=np.random.default_rng(0), tasks=3, scenario="class", hidden=(16,))
    manager = SequentialLearningManager(s.base, s.tasks, method=method, epochs=EPOCHS,
                                        learning_rate=0.02, seed=0, out_dir=out_dir,
                                        callbacks=list(callbacks),
                                        method_options={"memory": 24})
    return manager, manager.train_all(resume=resume)


def test_stage_two_corrects_the_model_before_its_row_is_measured(setup_factory):
    manager, results = _run(setup_factory)
    # The last row was measured on the model as BiC left it (corrected).
    now = [e["accuracy"] for e in evaluate_all(manager.tasks, full=True)]
    np.testing.assert_allclose(results.accuracy_matrix[-1], now, atol=1e-6)
    summaries = [s["bic"] for s in results.task_summaries]
    assert "alpha" not in summaries[0]  # no correction after the first task
    for summary in summaries[1:]:
        assert summary["held_out_loss_after"] <= summary["held_out_loss_before"] + 1e-9
    assert [s["lambda"] for s in summaries] == [0.0, 0.5, 2 / 3]
    # 24 exemplars for 6 classes: 4 each, 1 of them held out (round(0.1 * 4) -> at least 1).
    assert summaries[-1]["exemplars_per_class"] == 4
    assert summaries[-1]["held_out_per_class"] == 1
    np.testing.assert_allclose(manager.plugins[0].bias[1:],
                               [[s["alpha"], s["beta"]] for s in summaries[1:]])
    _, none = _run(setup_factory, "none")
    assert results.metrics["acc"] > none.metrics["acc"] + 0.3, (results.metrics, none.metrics)


def test_resume_gives_the_same_numbers(setup_factory, tmp_path):
    _, full = _run(setup_factory, out_dir=tmp_path / "full")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(setup_factory, out_dir=tmp_path / "run",  # after the first epoch of task 3
             callbacks=[CrashAfterEpochs(2 * EPOCHS + 1)])
    _, resumed = _run(setup_factory, out_dir=tmp_path / "run", resume=True)
    assert resumed.timing["resumed_after_task"] == 2
    np.testing.assert_allclose(resumed.accuracy_matrix, full.accuracy_matrix, atol=1e-6)
    assert resumed.task_summaries[-1]["bic"]["alpha"] == pytest.approx(
        full.task_summaries[-1]["bic"]["alpha"], abs=1e-6)


def test_bad_options_and_streams_are_refused_in_one_line(setup_factory):
    for options, match in (({"bic_val_fraction": 0.0}, "bic_val_fraction: 0.0 is not allowed"),
                           ({"bic_val_fraction": 0.6}, "bic_val_fraction: 0.6 is not allowed"),
                           ({"bic_exemplars": "kmeans"}, "bic_exemplars: 'kmeans' is not allowed"),
                           ({"bic_temperature": 0.0}, "bic_temperature: 0.0 is not allowed"),
                           ({"memory": 0}, "memory: 0 is not allowed")):
        with pytest.raises(ValueError, match=match) as error:
            method_spec("bic").make(**options)
        assert "\n" not in str(error.value)
    for scenario in ("task", "domain"):
        stream = setup_factory(tasks=2, scenario=scenario)
        with pytest.raises(ValueError, match=f"needs a class-incremental stream .* this one is "
                                             f"{scenario}-incremental"):
            BiC(memory=8).check(stream.run)
    stream = setup_factory(tasks=2, scenario="class")
    with pytest.raises(ValueError, match="memory: 7 leaves 1 exemplar"):
        BiC(memory=7).check(stream.run)
    softmax = setup_factory(tasks=2, scenario="class")
    head = output_dense(softmax.tasks[0].model)
    head.activation = keras.activations.softmax
    with pytest.raises(ValueError, match="last layer is a Dense layer with a bias and no "
                                         "activation"):
        BiC(memory=8).check(softmax.run)
