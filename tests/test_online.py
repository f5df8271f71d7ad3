"""Online and task-free streams (issue 19): the blurry stream against a brute-force reference,
the evaluation points along the stream, one experience for the methods, refusals, resume, the
results and the command line."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from crash import CrashInEpoch
from sequential_learning.data.benchmarks import split
from sequential_learning.data.blurry import (
    StreamPlan,
    aligned_steps,
    blurry_order,
    default_blur_window,
    default_eval_every,
)
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.pipeline import is_tf_dataset
from sequential_learning.plugins.base import Plugin
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.all_backends


# -- the stream's order ----------------------------------------------------------------------------
def _reference_blurry(sizes, window, seed):
    """Position by position, as the module docstring says: each task's samples in a seeded
    order; in each window the pair (j, w-1-j) holds one sample of each task, the later position
    taking task k+1's when u_j < (w - j - 0.5) / w; then each task's samples fill its positions
    in order."""
    rng = np.random.default_rng(seed)
    orders = [list(rng.permutation(n)) for n in sizes]
    owner = []
    for k, n in enumerate(sizes):
        owner += [k] * n
    half = window // 2
    boundary = 0
    for k in range(len(sizes) - 1):
        boundary += sizes[k]
        draws = rng.random(half)
        for j in range(half):
            early, late = boundary - half + j, boundary + half - 1 - j
            if draws[j] < (window - j - 0.5) / window:
                owner[early], owner[late] = k, k + 1
            else:
                owner[early], owner[late] = k + 1, k
    taken = [0] * len(sizes)
    index = []
    for k in owner:
        index.append(orders[k][taken[k]])
        taken[k] += 1
    return np.array(owner), np.array(index)


@pytest.mark.parametrize("sizes, window, seed", [([10, 10], 4, 0), ([12, 9, 14, 10], 8, 3),
                                                 ([50, 40, 60], 40, 7), ([6, 6, 6], 2, 1)])
def test_blurry_order_matches_the_brute_force_reference(sizes, window, seed):
    task, index = blurry_order(sizes, window, seed)
    reference_task, reference_index = _reference_blurry(sizes, window, seed)
    np.testing.assert_array_equal(task, reference_task)
    np.testing.assert_array_equal(index, reference_index)
    # Every sample once; outside the windows the nominal task; in each window half of each.
    for k, n in enumerate(sizes):
        assert sorted(index[task == k].tolist()) == list(range(n))
    nominal = np.repeat(np.arange(len(sizes)), sizes)
    plan = StreamPlan(sizes, "blurry", 5, window, seed)
    inside = np.zeros(len(task), bool)
    for start, stop in plan.windows:
        inside[start:stop] = True
        assert sorted(np.bincount(task[start:stop] - task[start:stop].min()).tolist()) == \
            [window // 2] * 2
    np.testing.assert_array_equal(task[~inside], nominal[~inside])


def test_blurry_windows_rise_linearly():
    window, seeds = 10, 3000
    later = np.zeros(window)
    for seed in range(seeds):
        task, _ = blurry_order([20, 20], window, seed)
        later += task[15:25]
    expected = (np.arange(window) + 0.5) / window
    np.testing.assert_allclose(later / seeds, expected, atol=0.03)


def test_plans_segments_points_and_defaults():
    plan = StreamPlan([100, 90, 120], "none", 30)
    assert plan.segments == [(0, 100), (100, 190), (190, 310)]
    assert plan.points(0, 10) == [30, 60, 90] and plan.points(1, 10) == [30, 60]
    assert plan.points(0, 8) == [32, 64, 96]  # the end of the batch reaching each multiple
    assert plan.first_seen == [0, 100, 190] and plan.tasks_seen(0) == 0
    assert plan.tasks_seen(100) == 1 and plan.tasks_seen(101) == 2
    blurry = StreamPlan([100, 90, 120], "blurry", 30, blur_window=20, seed=0)
    assert blurry.segments == [(0, 110), (110, 200), (200, 310)]
    assert blurry.windows == [(90, 110), (180, 200)]
    assert 90 <= blurry.first_seen[1] < 110 and blurry.tasks_seen(110) == 2
    assert default_eval_every([12000] * 5, 10) == 1200 and default_eval_every([290] * 5, 10) == 30
    assert default_blur_window([12000, 283]) == 56
    assert aligned_steps(8, 1200, 10) == 8 and aligned_steps(8, 30, 10) == 1
    assert aligned_steps(8, 25, 10) == 1


@pytest.mark.parametrize("window, message", [(7, "even integer"), (0, "even integer"),
                                             (200, "larger than task 2")])
def test_bad_blur_windows(window, message):
    with pytest.raises(ValueError, match=message) as error:
        StreamPlan([100, 90], "blurry", 10, window)
    assert "\n" not in str(error.value)


# -- runs --------------------------------------------------------------------------------------------
def _tasks(scenario="class", per_class=40, hidden=(8,), batch_size=8, mask_classes=True):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((per_class * 6, 6)).astype("float32")
    y = np.repeat(np.arange(6), per_class)
    x[np.arange(len(y)), y] += 1.5
    stream = split(x, y, classes_per_task=2, scenario=scenario, seed=0)
    base = mlp_base(stream.input_shape, hidden)
    return base, tasks_from_benchmark(stream, base, batch_size=batch_size,
                                      mask_classes=mask_classes)


def _manager(boundaries="tasks", method="replay", out_dir=None, callbacks=(), scenario="class",
             eval_every_samples=16, **kwargs):
    base, tasks = _tasks(scenario, mask_classes=boundaries == "tasks")
    return SequentialLearningManager(base, tasks, method=method, epochs=1, seed=0, online=True,
                                     boundaries=boundaries, eval_every_samples=eval_every_samples,
                                     method_options={"memory": 30}, out_dir=out_dir,
                                     callbacks=list(callbacks), **kwargs)


class _Recorder(Plugin):
    """Counts the Python-side hooks and the experiences they see."""

    name = "recorder"

    def __init__(self):
        self.calls = []

    def before_training_exp(self, exp):
        self.calls.append(("before", exp.index))

    def after_training_epoch(self, exp, epoch, logs):
        self.calls.append(("epoch", exp.index))

    def after_training_exp(self, exp):
        self.calls.append(("after", exp.index))


class _Weights(keras.callbacks.Callback):
    """The shared model's weights before step `step` of epoch `epoch` (a mid-segment point)."""

    def __init__(self, model, epoch, step):
        super().__init__()
        self.task_model, self.epoch, self.step = model, epoch, step
        self.epochs, self.weights = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs += 1

    def on_train_batch_begin(self, batch, logs=None):
        if self.epochs == self.epoch and batch == self.step:
            sync = getattr(self.model, "jax_state_sync", None)
            if sync is not None:
                sync()
            self.weights = [np.array(keras.ops.convert_to_numpy(v))
                            for v in self.task_model.weights]


def _accuracy(weights, x, y):
    h = np.asarray(x, np.float32)
    for i in range(0, len(weights), 2):
        h = h @ weights[i] + weights[i + 1]
        if i + 2 < len(weights):
            h = np.maximum(h, 0.0)
    return float(np.mean(np.argmax(h, axis=-1) == y))


def test_curve_points_results_and_plot(tmp_path):
    from sequential_learning import plots
    from sequential_learning.results import Results

    base, tasks = _tasks("domain")
    watch = _Weights(tasks[0].model, epoch=2, step=4)  # task 2, after 32 of its samples
    manager = SequentialLearningManager(base, tasks, method="replay", epochs=1, seed=0,
                                        online=True, eval_every_samples=16,
                                        method_options={"memory": 30}, out_dir=tmp_path,
                                        callbacks=[watch])
    results = manager.train_all()
    sizes = [len(t.train_data[0]) for t in tasks]
    assert sizes == [64, 64, 64]
    curve = results.stream_curve
    assert curve["samples"] == [0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192]
    assert curve["segment"] == [0] + [1] * 4 + [2] * 4 + [3] * 4
    assert curve["tasks_seen"] == [0] + [1] * 4 + [2] * 4 + [3] * 4
    assert curve["task_ends"] == [64, 128, 192]
    values = np.asarray(curve["values"])
    np.testing.assert_allclose(curve["mean_all"], values.mean(axis=1), atol=1e-6)
    for row, seen, mean in zip(values, curve["tasks_seen"], curve["mean_seen"]):
        assert (mean is None or np.isnan(mean)) if seen == 0 else mean == \
            pytest.approx(row[:seen].mean(), abs=1e-6)
    # The ends of the segments are the accuracy matrix's rows; the start is the baseline.
    np.testing.assert_allclose(values[[4, 8, 12]], results.accuracy_matrix, atol=1e-6)
    np.testing.assert_allclose(values[0], results.baseline, atol=1e-6)
    # A point inside a segment measures the model as it was there.
    expected = [_accuracy(watch.weights, *t.validation_data) for t in tasks]
    np.testing.assert_allclose(values[6], expected, atol=1e-5)
    assert results.config["online"] and results.config["eval_every_samples"] == 16
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["stream_curve"]["samples"] == curve["samples"]
    assert Results.load(tmp_path).stream_curve["values"] == saved["stream_curve"]["values"]
    plots.stream_curve(results, tmp_path / "stream_curve.png")
    assert (tmp_path / "stream_curve.png").stat().st_size > 1000


class _Traces(Plugin):
    """Counts the train step's traces (`extra_losses` runs once per trace; eagerly, per step)."""

    name = "traces"

    def __init__(self):
        self.count = 0

    def extra_losses(self, step):
        self.count += 1
        return {}


def test_evaluation_points_do_not_change_training():
    runs = {}
    for every in (8, 1000):  # after every batch; at the tasks' ends only
        traces = _Traces()
        manager = _manager(method=["replay", traces], eval_every_samples=every)
        results = manager.train_all()
        evaluation = manager.tasks[0].evaluator._owner or manager.tasks[0].evaluator
        count = getattr(evaluation._eval_fn, "experimental_get_tracing_count", lambda: None)()
        runs[every] = results, traces.count, count
    (dense, dense_traces, dense_evaluations), (sparse, sparse_traces, sparse_evaluations) = \
        runs[8], runs[1000]
    assert len(dense.stream_curve["samples"]) == 1 + 3 * 8
    assert len(sparse.stream_curve["samples"]) == 1 + 3
    np.testing.assert_allclose(dense.accuracy_matrix, sparse.accuracy_matrix, atol=1e-6)
    np.testing.assert_allclose(dense.stream_curve["values"][8::8],
                               sparse.stream_curve["values"][1:], atol=1e-6)
    # Nothing is traced again for the points: the step's traces and the evaluation's.
    assert dense_traces == sparse_traces
    assert dense_evaluations == sparse_evaluations


@pytest.mark.parametrize("boundaries", ["none", "blurry"])
def test_task_free_stream_is_one_experience(boundaries):
    recorder = _Recorder()
    manager = _manager(boundaries, method=["replay", recorder],
                       blur_window=20 if boundaries == "blurry" else None)
    results = manager.train_all()
    assert recorder.calls == [("before", 0), ("epoch", 0), ("after", 0)]
    # One optimizer for the whole stream: never reset at a hidden boundary.
    batches = sum(-(-(stop - start) // 8) for start, stop in manager.stream.plan.segments)
    assert int(keras.ops.convert_to_numpy(manager.trainer.optimizer.iterations)) == batches
    assert results.completed_tasks == 3 and not np.isnan(results.accuracy_matrix).any()
    assert results.config["boundaries"] == boundaries
    assert results.task_summaries[-1]["replay_buffer"] == {"task_1": 30}
    assert results.stream_curve["task_ends"] == [s for _, s in manager.stream.plan.segments]


def test_blurry_segments_stream_the_planned_samples():
    manager = _manager("blurry", blur_window=20)
    plan = manager.stream.plan
    for k in range(3):
        dataset = manager.stream.segment_dataset(manager, k)
        batches = list(dataset) if is_tf_dataset(dataset) else [dataset[i] for i in
                                                               range(len(dataset))]
        xs = [np.asarray(xb) for xb, _ in batches]
        ys = [np.asarray(yb) for _, yb in batches]
        owners, index = plan.segment_positions(k)
        expected = [np.asarray(manager.tasks[t].train_data[0])[i] for t, i in zip(owners, index)]
        np.testing.assert_allclose(np.concatenate(xs), np.stack(expected))
        labels = [np.asarray(manager.tasks[t].train_data[1])[i] for t, i in zip(owners, index)]
        np.testing.assert_array_equal(np.concatenate(ys), labels)
        assert [len(x) for x in xs][:-1] == [8] * (len(xs) - 1)


@pytest.mark.parametrize("method, words", [
    ("fisher", "fisher: needs task boundaries (its importance"),
    ("lwf", "lwf: needs task boundaries (it takes the previous task's model"),
    ("a-gem", "a-gem: needs task boundaries (it fills its episodic memory"),
    ("cumulative", "cumulative: needs task boundaries"),
    ("gem", "gem: needs task boundaries (it fills each task's episodic memory"),
    ("gdumb", "gdumb: needs task boundaries (it retrains the model from scratch"),
    ("rwalk", "rwalk: needs task boundaries (its importance"),
    ({"name": "replay", "replay_policy": "balanced"}, "replay: needs task boundaries"),
])
def test_boundary_methods_are_refused_in_a_task_free_stream(method, words):
    with pytest.raises(ValueError) as error:
        _manager("none", method=method)
    assert str(error.value).startswith(words) and "\n" not in str(error.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"boundaries": "none", "online": False}, "boundaries: none needs online"),
    ({"epochs": 2}, "epochs: [2, 2, 2] is not allowed with online"),
    ({"eval_every_samples": 0}, "eval_every_samples: 0 is not allowed"),
    ({"blur_window": 10}, "blur_window: applies to boundaries blurry only"),
    ({"boundaries": "sideways"}, "boundaries: 'sideways' is not allowed"),
    ({"method": "joint"}, "joint: changes each task's training stream"),
    ({"scenario": "task", "boundaries": "blurry"}, "boundaries: blurry needs one head"),
])
def test_bad_settings_are_one_line(kwargs, message):
    scenario = kwargs.pop("scenario", "class")
    base, tasks = _tasks(scenario)
    settings = {"method": "replay", "epochs": 1, "online": True, **kwargs}
    with pytest.raises(ValueError) as error:
        SequentialLearningManager(base, tasks, seed=0, **settings)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize("boundaries", ["tasks", "blurry"])
def test_resume_gives_the_same_numbers(tmp_path, boundaries):
    window = 20 if boundaries == "blurry" else None
    method = "derpp" if boundaries == "blurry" else "replay"
    full = _manager(boundaries, method, tmp_path / "full", blur_window=window).train_all()
    # One epoch per task: fails in the middle of task 3's part of the stream.
    crashed = _manager(boundaries, method, tmp_path / "run", [CrashInEpoch(3, batch=4)],
                       blur_window=window)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashed.train_all()
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["completed_tasks"] == 2
    resumed = _manager(boundaries, method, tmp_path / "run", blur_window=window)
    results = resumed.train_all(resume=True)
    np.testing.assert_allclose(results.accuracy_matrix, full.accuracy_matrix, atol=1e-6)
    assert results.stream_curve["samples"] == full.stream_curve["samples"]
    np.testing.assert_allclose(results.stream_curve["values"], full.stream_curve["values"],
                               atol=1e-6)


# -- the command line ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--online", "--epochs", "5"], "epochs: 5 is not allowed with online: true"),
    (["--online", "--eval-every-samples", "0"], "eval_every_samples: 0 is not allowed"),
    (["--boundaries", "blurry"], "boundaries: blurry needs online: true"),
    (["--online", "--boundaries", "none"], "boundaries: none needs one head for every task"),
    (["--online", "--blur-window", "10"], "blur_window: applies to boundaries blurry only"),
    (["--online", "--boundaries", "blurry", "--scenario", "class", "--blur-window", "7"],
     "blur_window: 7 is not allowed"),
])
def test_cli_refuses_bad_settings_in_one_line(argv, message, tmp_path, capsys):
    from sequential_learning.cli import main

    assert main(["run", "--benchmark", "split-digits", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"seql: error: {message}") and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_cli_online_run(tmp_path, capsys):
    from sequential_learning.cli import main

    out = tmp_path / "run"
    assert main(["run", "--benchmark", "split-digits", "--scenario", "class", "--online",
                 "--boundaries", "blurry", "--method", "derpp", "--memory", "20", "--hidden",
                 "8", "--limit", "200", "--out", str(out)]) == 0
    saved = json.loads((out / "results.json").read_text())
    config = saved["config"]
    assert (config["online"], config["boundaries"], config["epochs"], config["batch_size"],
            config["class_masking"]) == (True, "blurry", 1, 10, False)
    assert config["defaults_used"]["batch_size"] == "online"
    curve = saved["stream_curve"]
    assert curve["samples"][0] == 0 and curve["samples"][-1] == curve["task_ends"][-1]
    assert (out / "stream_curve.png").is_file()
    assert main(["run", "--benchmark", "split-digits", "--scenario", "class", "--online",
                 "--boundaries", "none", "--method", "fisher", "--out",
                 str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("seql: error: fisher: needs task boundaries")
