"""GDumb: the greedy class-balanced sampler against a sample-by-sample brute force, training from
the initial weights on the memory alone at every task, the stream effect, resume and bad
options; on every backend."""

from __future__ import annotations

import json
from collections import Counter

import keras
import numpy as np
import pytest
from keras import ops

from crash import CrashAfterEpochs
from sequential_learning.data.benchmarks import split
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.plugins import GDumb
from sequential_learning.plugins.gdumb import GreedyClassBalancedSampler
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.all_backends


def _np(value):
    return np.array(ops.convert_to_numpy(value))


def _brute_force(labels, capacity, seed):
    """The paper's sampler, one sample at a time, recounting everything at every sample."""
    rng = np.random.default_rng(seed)
    memory, seen = [], set()
    for label in labels:
        seen.add(label)
        if len(memory) < capacity:
            memory.append(label)
            continue
        counts = Counter(memory)
        if counts[label] >= capacity / len(seen):
            continue
        largest = max(sorted(counts), key=lambda c: counts[c])
        positions = [i for i, held in enumerate(memory) if held == largest]
        memory[positions[int(rng.integers(len(positions)))]] = label
    return memory


@pytest.mark.parametrize("seed", range(4))
def test_sampler_matches_the_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    # Classes arrive task by task (two per task), in random order within a task.
    labels = np.concatenate([rng.permutation(np.repeat([2 * t, 2 * t + 1], rng.integers(5, 25)))
                             for t in range(4)]).tolist()
    capacity = int(rng.integers(5, 12))
    sampler = GreedyClassBalancedSampler(capacity)
    draws = np.random.default_rng(seed)
    slots = [sampler.offer(label, draws) for label in labels]
    assert sampler.keys == _brute_force(labels, capacity, seed)
    assert slots[:capacity] == list(range(capacity))
    counts = Counter(sampler.keys)
    assert max(counts.values()) - min(counts.values()) <= 1  # balanced over the 8 classes


def _stream(scenario, tasks=3, n=40):
    rng = np.random.default_rng(0)
    x = rng.random((n * tasks * 2, 6)).astype("float32")
    y = np.repeat(np.arange(tasks * 2), n)
    x[np.arange(len(y)), y % 6] += 2.0
    return split(x, y, classes_per_task=2, scenario=scenario, seed=0)


def _manager(scenario="class", method="gdumb", out_dir=None, callbacks=(), memory=24):
    keras.utils.set_random_seed(0)
    stream = _stream(scenario)
    base = mlp_base(stream.input_shape, (8,))
    tasks = tasks_from_benchmark(stream, base, batch_size=8)
    return SequentialLearningManager(base, tasks, method=method, epochs=2, learning_rate=0.05,
                                     seed=0, out_dir=out_dir, callbacks=list(callbacks),
                                     method_options={"memory": memory})


def test_memory_is_the_samplers_choice_of_the_tasks_samples(setup_factory):
    s = setup_factory(rng=np.random.default_rng(0), tasks=3, scenario="class")
    plugin = s.build(GDumb(memory=12))
    for index in range(3):
        plugin.before_training_exp(s.experience(index))
    data = [tuple(np.asarray(a) for a in t.train_data) for t in s.tasks]
    keys = list(zip(plugin.task.tolist(), plugin.y.tolist()))
    assert keys == plugin.sampler.keys and plugin.filled == 12
    assert Counter(keys) == {(t, c): 2 for t in range(3) for c in np.unique(data[t][1])}
    for x, t, label in zip(plugin.x, plugin.task, plugin.y):  # each a sample of its task
        rows = np.flatnonzero(np.all(data[t][0] == x, axis=1))
        assert rows.size and np.all(data[t][1][rows] == label)
    # The same seed, the same memory: the stream order and evictions are seeded.
    again = setup_factory(rng=np.random.default_rng(0), tasks=3, scenario="class")
    other = again.build(GDumb(memory=12))
    for index in range(3):
        other.before_training_exp(again.experience(index))
    np.testing.assert_array_equal(other.x, plugin.x)


@pytest.mark.parametrize("scenario", ["class", "task"])
def test_trains_on_the_memory_alone_with_the_tasks_steps(setup_factory, scenario):
    s = setup_factory(tasks=3, scenario=scenario)
    plugin = s.build(GDumb(memory=12))
    for index in range(2):
        exp = s.experience(index)
        plugin.before_training_exp(exp)
    dataset = plugin.adapt_dataset(None, exp)
    batches = [dataset[i] for i in range(len(dataset))] if hasattr(dataset, "__getitem__") \
        else list(dataset)
    if scenario == "task":  # two tasks' samples, each through its own head
        assert plugin.routed_data(exp) and plugin.routed_tasks(exp) == 2
        x = np.concatenate([np.asarray(b[0][0]) for b in batches])
        ids = np.concatenate([np.asarray(b[0][1]) for b in batches])
    else:
        assert not plugin.routed_data(exp) and plugin.routed_tasks(exp) == 0
        x = np.concatenate([np.asarray(b[0]) for b in batches])
        ids = None
    assert len(x) == len(s.tasks[1].train_data[0])  # the task's own number of samples
    stored = {row.tobytes(): t for row, t in zip(plugin.x[:plugin.filled],
                                                 plugin.task[:plugin.filled])}
    assert all(row.tobytes() in stored for row in x)
    assert len({row.tobytes() for row in x}) == plugin.filled  # every stored sample used
    if ids is not None:
        assert all(stored[row.tobytes()] == t for row, t in zip(x, ids))


class _FirstWeights(keras.callbacks.Callback):
    """Records the base's weights when each task's training starts."""

    def __init__(self, base):
        super().__init__()
        self.base, self.seen = base, []

    def on_train_begin(self, logs=None):
        self.seen.append([_np(v) for v in self.base.weights])


def test_every_task_trains_from_the_initial_weights():
    keras.utils.set_random_seed(0)
    stream = _stream("task")
    base = mlp_base(stream.input_shape, (8,))
    tasks = tasks_from_benchmark(stream, base, batch_size=8)
    initial = [_np(v) for v in base.weights]
    heads = [[_np(v) for v in t.model.layers[-1].weights] for t in tasks]
    recorder = _FirstWeights(base)
    manager = SequentialLearningManager(base, tasks, method="gdumb", epochs=1, seed=0,
                                        callbacks=[recorder], method_options={"memory": 12})
    manager.train_all()
    assert len(recorder.seen) == 3
    for weights in recorder.seen:
        for got, want in zip(weights, initial):
            np.testing.assert_array_equal(got, want)
    assert any(not np.allclose(a, b) for a, b in zip([_np(v) for v in base.weights], initial))
    # An earlier task's head is reset too before the next task (it is retrained on the memory).
    plugin = manager.plugins[0]
    plugin.before_training_exp(manager.experience)
    for task, want in zip(tasks, heads):
        for got, value in zip(task.model.layers[-1].weights, want):
            np.testing.assert_array_equal(_np(got), value)


def test_gdumb_learns_every_class_in_a_class_incremental_stream():
    gdumb = _manager("class").train_all()
    none = _manager("class", method="none").train_all()
    assert none.metrics["acc"] < 0.6  # fine-tuning: about the last task's classes
    assert gdumb.metrics["acc"] >= none.metrics["acc"] + 0.2, (gdumb.accuracy_matrix,
                                                               none.accuracy_matrix)
    assert gdumb.config["method_settings"]["gdumb"]["memory"] == 24


def test_resume_gives_the_same_numbers(tmp_path):
    full = _manager("task", out_dir=tmp_path / "full").train_all()
    with pytest.raises(RuntimeError, match="simulated crash"):
        # Two epochs per task: fails after the first epoch of task 3.
        _manager("task", out_dir=tmp_path / "run", callbacks=[CrashAfterEpochs(5)]).train_all()
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["completed_tasks"] == 2
    resumed = _manager("task", out_dir=tmp_path / "run").train_all(resume=True)
    np.testing.assert_allclose(resumed.accuracy_matrix, full.accuracy_matrix, atol=1e-6)


def test_state_round_trip_and_checks(setup_factory):
    from sequential_learning.checkpoint import CheckpointError

    s = setup_factory(tasks=2, scenario="class")
    plugin = s.build(GDumb(memory=10))
    plugin.before_training_exp(s.experience(0))
    state = plugin.state()
    other = setup_factory(tasks=2, scenario="class")
    restored = other.build(GDumb(memory=10))
    restored.load_state(state)
    assert restored.sampler.keys == plugin.sampler.keys
    np.testing.assert_array_equal(restored.x, plugin.x)
    for a, b in zip(restored.initial, plugin.initial):
        np.testing.assert_array_equal(a, b)
    bad = {**state, "filled": np.asarray(11)}
    with pytest.raises(CheckpointError, match="gdumb memory: checkpointed state 'filled'"):
        restored.load_state(bad)


def test_bad_options_are_one_line(setup_factory):
    with pytest.raises(ValueError, match="^memory: 0 is not allowed; expected an integer >= 1$"):
        GDumb(memory=0)
    s = setup_factory(tasks=2)
    with pytest.raises(ValueError, match="^memory: 10000 is larger than the"):
        GDumb(memory=10000).check(s.run)
    s.run.task_type = "regression"
    with pytest.raises(ValueError, match="^gdumb: needs a classification stream"):
        GDumb().check(s.run)
