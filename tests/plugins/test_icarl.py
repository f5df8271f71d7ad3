"""iCaRL: herding, NME prediction and the distillation term against NumPy references on a tiny
model; its effect on a stream, its NME matrix in the results, resume and bad options; on every
backend."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import ops

from crash import CrashAfterEpochs
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.plugins import ICaRL
from sequential_learning.plugins.herding import herding
from sequential_learning.plugins.registry import method_spec

pytestmark = pytest.mark.all_backends


def _np(value):
    return np.array(ops.convert_to_numpy(value))


def _normalise(v):
    return v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-8)


def _brute_herding(vectors, m):
    """PyCIL's loop: the row whose addition brings the running mean closest to the class mean,
    removed from the candidates once taken; returns the original row indices."""
    vectors = _normalise(np.asarray(vectors, np.float64))
    mean = vectors.mean(axis=0)
    rows = list(range(len(vectors)))
    chosen, chosen_vectors = [], []
    for k in range(1, m + 1):
        total = np.sum(chosen_vectors, axis=0) if chosen_vectors else np.zeros_like(mean)
        distance = np.sqrt(np.sum((mean - (vectors[rows] + total) / k) ** 2, axis=1))
        i = rows[int(np.argmin(distance))]
        chosen.append(i)
        chosen_vectors.append(vectors[i])
        rows.remove(i)
    return chosen


def test_herding_matches_the_brute_force_greedy_choice():
    rng = np.random.default_rng(0)
    for n, d, m in ((30, 5, 10), (12, 3, 12), (50, 8, 7)):
        vectors = rng.normal(size=(n, d)) + rng.normal(size=d)
        assert herding(vectors, m).tolist() == _brute_herding(vectors, m)
    assert herding(rng.normal(size=(4, 2)), 9).shape == (4,)  # at most n


def _relu_features(base, x):
    """The tiny base (one Dense layer, ReLU) computed in NumPy."""
    kernel, bias = (_np(v) for v in base.layers[-1].weights)
    return np.maximum(np.asarray(x, np.float64) @ kernel + bias, 0.0)


def test_exemplars_and_nme_prediction_match_numpy(setup_factory):
    s = setup_factory(tasks=2, scenario="class")
    plugin = s.build(ICaRL(memory=12))
    first = s.experience(0)
    plugin.after_training_exp(first)  # 2 classes seen: 6 exemplars each
    x, y = s.tasks[0].train_data
    means = {}
    for c in (0, 1):
        rows = np.flatnonzero(y == c)
        feats = _relu_features(s.base, x[rows])
        want = x[rows[_brute_herding(feats, 6)]]
        held, _, _ = plugin.exemplars.arrays(classes=[(0, c)])
        np.testing.assert_allclose(held, want)
        mean = _normalise(_relu_features(s.base, want)).mean(axis=0)
        means[c] = mean / np.linalg.norm(mean)
    x_val = np.concatenate([t.validation_data[0] for t in s.tasks])
    phi = _normalise(_relu_features(s.base, x_val))
    distances = np.stack([np.sum((phi - means[c]) ** 2, axis=1) for c in (0, 1)], axis=1)
    np.testing.assert_array_equal(plugin.predict(x_val), np.argmin(distances, axis=1))
    # The NME row: task 1 on its classes, task 2 (no exemplars yet) 0.
    x0, y0 = s.tasks[0].validation_data
    phi0 = _normalise(_relu_features(s.base, x0))
    predicted = np.argmin(np.stack([np.sum((phi0 - means[c]) ** 2, axis=1) for c in (0, 1)],
                                   axis=1), axis=1)
    np.testing.assert_allclose(first.matrices["nme_accuracy"], [np.mean(predicted == y0), 0.0])
    # After task 2 the 4 classes share the memory: 3 each, the old ones cut to their first 3.
    before = plugin.exemplars.arrays(classes=[(0, 0)])[0]
    plugin.after_training_exp(s.experience(1))
    np.testing.assert_allclose(plugin.exemplars.arrays(classes=[(0, 0)])[0], before[:3])
    assert len(plugin.exemplars.arrays()[0]) == 12


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_distillation_of_the_old_classes_matches_numpy(setup_factory):
    s = setup_factory(tasks=2, scenario="class")
    plugin = s.build(ICaRL(memory=8, icarl_temperature=2.0))
    model = s.tasks[1].model
    x, y = s.tasks[1].train_data
    x, y = x[:8], y[:8]
    s.tasks[1].active_classes.begin_task(1)
    plugin.before_training_exp(s.experience(1))  # the teacher: the weights now
    teacher = _np(model(x))[:, :2]  # task 1's classes are the old ones
    for v in model.trainable_variables:
        v.assign(_np(v) + np.random.default_rng(2).normal(0, 0.3, v.shape).astype("float32"))
    student = _np(model(x))[:, :2]
    q = np.exp(_log_softmax(teacher / 2.0))
    want = -np.mean(np.sum(q * _log_softmax(student / 2.0), axis=1))  # PyCIL's _KD_loss
    logs = s.trainer(1, [plugin]).train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["distillation_loss"], want, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], logs["base_loss"] + want, rtol=1e-4)
    first = s.build(ICaRL(memory=8))
    first.before_training_exp(s.experience(0))
    logs = s.trainer(0, [first]).train_on_batch(x, y, return_dict=True)
    assert logs["distillation_loss"] == 0.0  # nothing to distil in the first task


def _rows(dataset):
    """Every batch's inputs and labels (a `tf.data.Dataset` or a `PyDataset`), concatenated."""
    batches = ([dataset[i] for i in range(len(dataset))] if hasattr(dataset, "__getitem__")
               else list(dataset))
    return [np.concatenate([_np(b[j]) for b in batches]) for j in (0, 1)]


def _unit_mean(feats):
    mean = _normalise(feats).mean(axis=0)
    return mean / np.linalg.norm(mean)


def test_next_task_trains_on_the_union_and_renews_every_class_mean(setup_factory):
    """Task 2 trains on its data and every exemplar; after it the old classes keep their first
    m exemplars, and every class's mean, old ones too, comes from its exemplars through the
    network as it is after task 2; NME chooses among all four classes (iCaRL, Alg. 1-5;
    PyCIL's _reduce_exemplar / _construct_exemplar)."""
    s = setup_factory(tasks=2, scenario="class")
    plugin = s.build(ICaRL(memory=12))
    plugin.after_training_exp(s.experience(0))
    second = s.experience(1)
    x, y = _rows(plugin.adapt_dataset(None, second))
    x_memory, y_memory, _ = plugin.exemplars.arrays()
    x_own, y_own = s.tasks[1].train_data
    want_x, want_y = np.concatenate([x_own, x_memory]), np.concatenate([y_own, y_memory])
    got, want = np.lexsort(x.T), np.lexsort(want_x.T)
    np.testing.assert_array_equal(x[got], want_x[want])
    np.testing.assert_array_equal(y[got], want_y[want])
    old = {c: plugin.exemplars.arrays(classes=[(0, c)])[0] for c in (0, 1)}
    rng = np.random.default_rng(3)  # "training" task 2 moves the features
    for v in s.base.trainable_variables:
        v.assign(_np(v) + rng.normal(0, 0.5, v.shape).astype("float32"))
    plugin.after_training_exp(second)
    means = {c: _unit_mean(_relu_features(s.base, old[c][:3])) for c in (0, 1)}
    for c in (2, 3):
        rows = np.flatnonzero(y_own == c)
        chosen = x_own[rows[_brute_herding(_relu_features(s.base, x_own[rows]), 3)]]
        np.testing.assert_allclose(plugin.exemplars.arrays(classes=[(1, c)])[0], chosen)
        means[c] = _unit_mean(_relu_features(s.base, chosen))
    for c in (0, 1):
        np.testing.assert_allclose(plugin.exemplars.arrays(classes=[(0, c)])[0], old[c][:3])
    row = []
    for task in s.tasks:
        x_val, y_val = task.validation_data
        phi = _normalise(_relu_features(s.base, x_val))
        nearest = np.argmin(np.stack([np.sum((phi - means[c]) ** 2, axis=1) for c in range(4)],
                                     axis=1), axis=1)
        np.testing.assert_array_equal(plugin.predict(x_val), nearest)
        row.append(np.mean(nearest == y_val))
    np.testing.assert_allclose(second.matrices["nme_accuracy"], row)


EPOCHS = 4


def _run(setup_factory, method, scenario="class", out_dir=None, callbacks=(), tasks=3,
         resume=False):
    keras.utils.set_random_seed(0)
    s = setup_factory(rng=np.random.default_rng(0), tasks=tasks, scenario=scenario,
                      hidden=(16,))
    manager = SequentialLearningManager(s.base, s.tasks, method=method, epochs=EPOCHS,
                                        learning_rate=0.02, seed=0, out_dir=out_dir,
                                        callbacks=list(callbacks),
                                        method_options={"memory": 24})
    return manager.train_all(resume=resume)


def test_icarl_keeps_old_classes_and_reports_nme(setup_factory, tmp_path):
    icarl = _run(setup_factory, "icarl", out_dir=tmp_path / "run")
    none = _run(setup_factory, "none")
    assert icarl.metrics["acc"] > none.metrics["acc"] + 0.4, (icarl.metrics, none.metrics)
    nme = icarl.matrices["nme_accuracy"]
    assert nme.shape == (3, 3) and np.all(np.triu(nme, 1) == 0.0)
    assert icarl.metrics["nme_acc"] == pytest.approx(nme[-1].mean())
    assert icarl.metrics["nme_acc"] > 0.9
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["metrics"]["nme_acc"] == pytest.approx(icarl.metrics["nme_acc"])
    np.testing.assert_allclose(saved["matrices"]["nme_accuracy"], nme)
    last = icarl.task_summaries[-1]["icarl"]
    assert last["exemplars_per_class"] == 4 and sum(last["exemplars"].values()) == 24


def test_icarl_in_a_task_incremental_stream(setup_factory):
    results = _run(setup_factory, "icarl", scenario="task", tasks=2)
    nme = results.matrices["nme_accuracy"]
    assert nme[0, 1] == 0.0 and nme[-1].min() > 0.8  # NME within each task's own classes
    assert results.metrics["acc"] > 0.8


def test_resume_gives_the_same_numbers(setup_factory, tmp_path):
    full = _run(setup_factory, "icarl", out_dir=tmp_path / "full")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(setup_factory, "icarl", out_dir=tmp_path / "run",  # after task 3's first epoch
             callbacks=[CrashAfterEpochs(2 * EPOCHS + 1)])
    resumed = _run(setup_factory, "icarl", out_dir=tmp_path / "run", resume=True)
    assert resumed.timing["resumed_after_task"] == 2
    np.testing.assert_allclose(resumed.accuracy_matrix, full.accuracy_matrix, atol=1e-6)
    np.testing.assert_allclose(resumed.matrices["nme_accuracy"], full.matrices["nme_accuracy"],
                               atol=1e-6)


def test_bad_options_and_streams_are_refused_in_one_line(setup_factory):
    for options, match in (({"memory": 0}, "memory: 0 is not allowed"),
                           ({"icarl_temperature": 0.0}, "icarl_temperature: 0.0 is not allowed"),
                           ({"icarl_temperature": -1.0}, "icarl_temperature")):
        with pytest.raises(ValueError, match=match) as error:
            method_spec("icarl").make(**options)
        assert "\n" not in str(error.value)
    domain = setup_factory(tasks=2, scenario="domain")
    with pytest.raises(ValueError, match="domain-incremental"):
        ICaRL(memory=8).check(domain.run)
    small = setup_factory(tasks=2, scenario="class")
    with pytest.raises(ValueError, match="memory: 3 is smaller than the 4 classes"):
        ICaRL(memory=3).check(small.run)
