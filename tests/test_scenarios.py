"""Scenarios and streams end to end: the class-incremental signature, regression and Iris streams
from the command line, evaluation every k epochs or on a subset, CNN bases, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sequential_learning import plots
from sequential_learning.cli import main
from sequential_learning.config import RunConfig, run_experiment
from sequential_learning.data import datasets
from sequential_learning.data.benchmarks import split
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.results import Results
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.all_backends

HAS_FASHION = all(
    any((datasets.DEBIAN_FASHION_MNIST_DIR / f"{stem}{ext}").is_file() for ext in ("", ".gz"))
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seql: error: "), err
    return err[0]


# -- scenarios ---------------------------------------------------------------------------------
def test_class_incremental_signature_on_digits():
    """Fine-tuning keeps only the last task when the task is unknown (ACC ~ 1/T); with the task
    known (a head per task) the same training keeps most of every task."""
    acc = {}
    for scenario in ("class", "task"):
        config = RunConfig(benchmark="split-digits", scenario=scenario, method="none", epochs=4,
                           hidden=[64], eval_every=4)
        results = run_experiment(config)
        acc[scenario] = results.metrics["acc"]
        if scenario == "class":
            r = results.accuracy_matrix
            assert np.all(np.diag(r) > 0.7)  # each task is learned...
            assert np.mean(r[-1, :-1]) < 0.2  # ...and mostly lost by the end
    assert acc["class"] <= 0.35, acc
    assert acc["task"] >= acc["class"] + 0.5, acc


# -- regression and Iris streams from the command line -------------------------------------------
def test_function_approximation_from_the_cli_labels_mse(tmp_path, capsys):
    out = tmp_path / "fa"
    assert main(["run", "--benchmark", "function-approximation", "--method", "fisher",
                 "--num-tasks", "2", "--epochs", "3", "--fisher-samples", "64",
                 "--out", str(out)]) == 0
    assert "fisher" in capsys.readouterr().out
    results = Results.load(out)
    assert results.metric == "mse" and results.higher_is_better is False
    assert results.config["benchmark_info"]["task_type"] == "regression"
    assert np.all(np.isfinite(results.accuracy_matrix)) and results.metrics["acc"] >= 0
    # The regression Fisher (a unit-variance Gaussian's) is not zero.
    assert any(v["max"] > 0 for v in results.importance_summary[0].values())
    figure = plots.task_curves(results)
    assert figure.axes[0].get_ylabel() == "validation MSE (lower is better)"
    matrix = plots.accuracy_matrix(results)
    assert "MSE" in matrix.axes[-1].get_ylabel()
    assert (out / "task_curves.png").stat().st_size > 1000


def test_iris_features_from_the_cli(tmp_path, capsys):
    out = tmp_path / "iris"
    assert main(["run", "--benchmark", "iris-features", "--method", "none", "--epochs", "2",
                 "--out", str(out)]) == 0
    results = Results.load(out)
    assert results.metric == "accuracy" and results.num_tasks == 3
    assert results.task_names[0] == "task 1 (sepal length, sepal width)"
    assert plots.task_curves(results).axes[0].get_ylabel() == "validation accuracy"


# -- evaluation every k epochs, on a subset ------------------------------------------------------
def _toy_tasks(rng, **kwargs):
    x = rng.random((240, 6)).astype("float32")
    y = np.repeat(np.arange(4), 60)
    x[np.arange(240), y] += 2.0
    stream = split(x, y, classes_per_task=2, scenario="task", seed=0)
    base = mlp_base(stream.input_shape, (8,))
    return base, tasks_from_benchmark(stream, base, batch_size=16, **kwargs)


def test_eval_every_records_which_epochs_were_evaluated(seeded, tmp_path):
    base, tasks = _toy_tasks(seeded)
    manager = SequentialLearningManager(base, tasks, method="none", epochs=[3, 2], eval_every=2,
                                        out_dir=tmp_path)
    results = manager.train_all()
    # Task 1: its epoch 2 and its last (3); task 2: its epoch 2, which is also its last.
    assert results.evaluated_epochs == [2, 3, 5] and results.history["accuracy"].shape == (3, 2)
    assert results.epoch_task == [0, 0, 0, 1, 1] and results.task_boundaries == [3, 5]
    np.testing.assert_allclose(results.accuracy_matrix[0], results.history["accuracy"][1])
    np.testing.assert_allclose(results.accuracy_matrix[1], results.history["accuracy"][2])
    assert len(results.train_history["loss"]) == 5  # training logs of every epoch
    rows = (tmp_path / "history.csv").read_text().splitlines()[1:]
    assert rows[0].split(",")[2] == "" and rows[1].split(",")[2] != ""
    loaded = Results.load(tmp_path)
    assert loaded.evaluated_epochs == [2, 3, 5]
    line = plots.task_curves(loaded).axes[0].lines[0]
    assert list(line.get_xdata()) == [2, 3, 5]
    assert results.config["eval_every"] == 2


def test_eval_subset_curves_use_a_fixed_subset_and_the_matrix_all_samples(seeded):
    base, tasks = _toy_tasks(seeded)
    manager = SequentialLearningManager(base, tasks, method="none", epochs=2, eval_subset=7)
    results = manager.train_all()
    assert all(t.evaluation_subset == 7 for t in tasks)
    full = [t.evaluate(full=True)["accuracy"] for t in tasks]
    np.testing.assert_allclose(results.accuracy_matrix[-1], full)
    subset = [t.evaluate()["accuracy"] for t in tasks]
    np.testing.assert_allclose(results.history["accuracy"][-1], subset)
    # Accuracies on 7 samples are multiples of 1/7; the subset is the same at every call.
    assert np.allclose(np.asarray(subset) * 7, np.round(np.asarray(subset) * 7))
    assert subset == [t.evaluate()["accuracy"] for t in tasks]
    assert results.config["eval_subset"] == 7


def test_manager_rejects_bad_evaluation_options(seeded):
    base, tasks = _toy_tasks(seeded)
    with pytest.raises(ValueError, match="eval_every must be an integer >= 1"):
        SequentialLearningManager(base, tasks, eval_every=0)
    with pytest.raises(ValueError, match="eval_subset must be an integer >= 1 or None"):
        SequentialLearningManager(base, tasks, eval_subset=0)


# -- models ------------------------------------------------------------------------------------
def test_images_reach_a_cnn_as_height_width_channels(tmp_path):
    config = RunConfig(benchmark="rotated-digits", method="none", model="cnn", filters=[4],
                       num_tasks=2, epochs=1, limit=200)
    results = run_experiment(config, tmp_path)
    assert results.config["benchmark_info"]["input_shape"] == [8, 8, 1]
    assert results.metrics["acc"] > 0.0
    with pytest.raises(ValueError, match="model: cnn needs images shaped"):
        run_experiment(RunConfig(benchmark="iris-features", model="cnn"))


# -- bad input through the command line ----------------------------------------------------------
@pytest.mark.parametrize("benchmark, what", [("split-mnist", "MNIST not found"),
                                             ("permuted-mnist", "MNIST not found"),
                                             ("split-cifar10", "CIFAR-10 not found")])
def test_missing_data_sets_exit_2_with_one_line(benchmark, what, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    assert main(["run", "--benchmark", benchmark, "--out", str(tmp_path / "run")]) == 2
    line = _one_line_error(capsys)
    assert what in line and str(tmp_path / "keras") in line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--benchmark", "split-digits", "--classes-per-task", "3"],
         "classes_per_task: 3 does not divide the 10 classes"),
        (["--benchmark", "function-approximation", "--scenario", "class"],
         "scenario: 'class' does not apply to function-approximation"),
        (["--benchmark", "split"], "data: the split benchmark needs your arrays"),
        (["--benchmark", "iris-features", "--data-dir", "/tmp"], "data_dir: iris-features"),
    ],
)
def test_bad_stream_options_exit_2_naming_the_option(argv, message, tmp_path, capsys):
    assert main(["run", *argv, "--out", str(tmp_path / "run")]) == 2
    assert message in _one_line_error(capsys)


def test_unknown_scenario_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--scenario", "online"])
    assert info.value.code == 2 and "invalid choice: 'online'" in capsys.readouterr().err


def test_own_arrays_errors_name_the_file(tmp_path, capsys):
    path = tmp_path / "tabular.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.random((20, 3)), y_train=np.arange(20) % 2,
             x_test=rng.random((6, 3)), y_test=np.arange(6) % 2)
    assert main(["run", "--benchmark", "rotated", "--data", str(path),
                 "--out", str(tmp_path / "run")]) == 2
    assert "rotation needs images" in _one_line_error(capsys)
    np.savez(path, x_train=rng.random((20, 3)), y_train=np.arange(19) % 2,
             x_test=rng.random((6, 3)), y_test=np.arange(6) % 2)
    assert main(["run", "--benchmark", "split", "--data", str(path)]) == 2
    line = _one_line_error(capsys)
    assert str(path) in line and "x_train has 20 samples but y_train has 19 labels" in line
    np.savez(path, x_train=rng.random((20, 3)), y_train=np.arange(20) % 2)
    assert main(["run", "--benchmark", "split", "--data", str(path)]) == 2
    assert "missing the key(s) x_test, y_test" in _one_line_error(capsys)


# -- Fashion-MNIST (the Debian package dataset-fashion-mnist) -------------------------------------
@pytest.mark.skipif(not HAS_FASHION, reason="Fashion-MNIST is not installed "
                    "(apt-get install dataset-fashion-mnist)")
def test_permuted_fashion_mnist_small_run_takes_its_benchmark_defaults(tmp_path, capsys):
    out = tmp_path / "pf"
    assert main(["run", "--benchmark", "permuted-fashion-mnist", "--method", "fisher",
                 "--num-tasks", "2", "--limit", "1000", "--fisher-samples", "100",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["hidden"] == [400, 400] and doc["config"]["batch_size"] == 128
    assert doc["config"]["epochs"] == 1 and doc["config"]["benchmark_info"]["input_shape"] == [
        28, 28, 1]
    assert doc["metrics"]["acc"] > 0.5
