"""Every method of the family: registered, built from options, measuring something, changing training.

After a task every method except `none` must have a non-zero Ω, and its penalty must change what
training does (the reference design's broken trackers turned three methods into weight decay;
a view-instead-of-copy SI is plain fine-tuning).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sequential_learning import plots
from sequential_learning.cli import main
from sequential_learning.data.benchmarks import split
from sequential_learning.importance import (
    EWCMethod,
    available_methods,
    create_estimator,
    method_description,
    parse_method,
)
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.all_backends

KEBAB = ["none", "weight-decay", "sign-flipping", "momentum-based", "weight-change", "fisher",
         "mas", "si", "magnitude", "inverse-magnitude", "random", "rwalk"]
TRACKERS = {"sign-flipping", "momentum-based", "weight-change"}
LAMBDA = {"weight-decay": 1.0, "sign-flipping": 1.0, "momentum-based": 1.0, "weight-change": 1.0,
          "fisher": 100.0, "mas": 10.0, "si": 100.0, "magnitude": 10.0,
          "inverse-magnitude": 0.1, "random": 1.0, "rwalk": 3.0}


def test_every_method_is_registered_in_kebab_case():
    assert [m.value for m in available_methods()] == KEBAB
    assert [m.value for m in EWCMethod] == KEBAB
    for name in KEBAB:
        method = parse_method(name)
        assert parse_method(method.name) is method
        assert method_description(method)


def test_list_methods_prints_each_with_a_description(capsys):
    assert main(["list", "methods"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # Method lines are indented by two spaces, their options further.
    names = [line.split()[0] for line in lines if line.startswith("  ") and line[2] != " "
             and not line.startswith("  options")]
    assert names[: len(KEBAB)] == KEBAB
    assert names[len(KEBAB):] == [
        "replay", "derpp", "er-ace", "mir", "xder", "a-gem", "gem", "gdumb", "lwf", "icarl", "bic", "joint", "cumulative"]
    for line in lines:
        name = line.split()[0]
        if name in KEBAB[1:]:
            assert "default lambda" in line, line
    assert any("--memory 500" in line for line in lines)
    assert any("--fisher-mode exact" in line for line in lines)


def test_options_reach_the_estimators():
    assert create_estimator("si", xi=0.5, net=True).xi == 0.5  # other methods' options ignored
    assert create_estimator("weight-change", net=True).net is True
    assert create_estimator("weight-change").tracks_steps is True
    assert create_estimator("inverse-magnitude", epsilon=0.2).epsilon == 0.2
    assert create_estimator("random", seed=4).seed == 4
    assert create_estimator("mas", fisher_samples=10).samples == 10
    assert create_estimator("fisher", fisher_mode="batch").describe()["fisher_note"].startswith(
        "biased")
    assert "fisher_note" not in create_estimator("fisher").describe()
    for method, tracks in [("si", True), ("sign-flipping", True), ("momentum-based", True),
                           ("fisher", False), ("mas", False), ("random", False)]:
        assert create_estimator(method).tracks_steps is tracks


def test_unknown_method():
    with pytest.raises(ValueError, match="Unknown method 'ewc2'; known methods: none, "):
        create_estimator("ewc2")


def _stream(seed=0, tasks=2, n=48, features=6):
    rng = np.random.default_rng(seed)
    x = rng.random((n * tasks * 2, features)).astype("float32")
    y = np.repeat(np.arange(tasks * 2), n)
    x[np.arange(len(y)), y % features] += 2.0
    return split(x, y, classes_per_task=2, scenario="domain", seed=0)


def _run(method, ewc_lambda, tasks=2, **kwargs):
    stream = _stream(tasks=tasks)
    keras.utils.set_random_seed(0)
    base = mlp_base(stream.input_shape, (8,))
    task_list = tasks_from_benchmark(stream, base, batch_size=16)
    manager = SequentialLearningManager(
        base, task_list, method=method, ewc_lambda=ewc_lambda, epochs=2, learning_rate=0.05,
        fisher_samples=40, **kwargs,
    )
    results = manager.train_all()
    return manager, results, [v.numpy() for v in base.trainable_variables]


@pytest.fixture(scope="module")
def none_run():
    return _run("none", 0.0)


@pytest.mark.parametrize("method", KEBAB[1:])
def test_nonzero_importance_and_penalty_changes_training(method, none_run):
    manager, results, weights = _run(method, LAMBDA[method])
    first = results.importance_summary[0]
    assert set(first) == {getattr(v, "path", "?") for v in manager.covered}
    assert max(s["max"] for s in first.values()) > 0
    assert all(np.isfinite(s["mean"]) and s["mean"] >= 0 for s in first.values())
    if method in TRACKERS:
        # Something was counted: Ω is not 1 everywhere (which is weight decay).
        assert min(s["mean"] for s in first.values()) < 1.0
    _, none_results, none_weights = none_run
    assert none_results.importance_summary[0] == {}
    changed = max(float(np.max(np.abs(a - b))) for a, b in zip(weights, none_weights))
    assert changed > 1e-4, f"{method}: the penalty did not change training"
    # The same first task (no penalty yet): the same first row of R.
    np.testing.assert_allclose(results.accuracy_matrix[0], none_results.accuracy_matrix[0])


def test_online_mode_state_does_not_grow_with_tasks():
    manager, results, weights = _run("si", 100.0, tasks=3, penalty_mode="online", gamma=0.5)
    penalty = manager.penalty
    assert penalty.num_terms == 3
    assert len(penalty.importance) == len(penalty.anchor) == len(manager.covered)
    for o, a, v, w in zip(penalty.importance, penalty.anchor, manager.covered, weights):
        assert o.shape == v.shape == a.shape
        np.testing.assert_array_equal(a.numpy(), w)  # the anchor is the latest weights
    assert results.config["penalty_mode"] == "online" and results.config["gamma"] == 0.5
    assert results.config["xi"] == 0.1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--gamma", "0"], "gamma: 0.0 is not allowed"),
        (["run", "--gamma", "1.5"], "gamma: 1.5 is not allowed"),
        (["run", "--method", "si", "--xi", "0"], "si_xi: 0.0 is not allowed"),
        (["run", "--method", "si", "--xi", "-1"], "si_xi: -1.0 is not allowed"),
        (["run", "--epsilon", "0"], "inverse_magnitude_epsilon: 0.0 is not allowed"),
        (["compare", "--methods", "si,bogus"], "Unknown method 'bogus'"),
    ],
)
def test_bad_settings_exit_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("seql: error: ") and message in err[-1]


def test_unknown_penalty_mode_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--penalty-mode", "sometimes"])
    assert exit_info.value.code == 2
    assert "--penalty-mode" in capsys.readouterr().err


def test_importance_histogram_inputs(tmp_path):
    rng = np.random.default_rng(0)
    omega = {"dense/kernel": rng.random((4, 3)), "dense/bias": np.zeros(3)}
    figure = plots.importance_histogram(omega, tmp_path / "a.png", title="t")
    assert len(figure.axes) == 2 and (tmp_path / "a.png").stat().st_size > 1000
    assert "zeros 100%" in figure.axes[1].get_title()
    plots.importance_histogram(list(omega.values()), tmp_path / "b.png")
    _, results, _ = _run("si", 100.0)
    figure = plots.importance_histogram(results, tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="at least one"):
        plots.importance_histogram({})


def test_each_method_brings_its_papers_penalty_mode():
    from sequential_learning.config import RunConfig
    from sequential_learning.importance import default_penalty_mode

    native = {m: default_penalty_mode(m) for m in KEBAB}
    assert native.pop("mas") == "online" and native.pop("si") == "online"
    assert native.pop("rwalk") == "latest"
    assert set(native.values()) == {"separate"}
    config = RunConfig(method="si").validate()
    assert config.penalty_mode == "online" and config.defaults_used["penalty_mode"] == "method si"
    assert RunConfig(method="si", penalty_mode="separate").validate().penalty_mode == "separate"
    assert RunConfig(method="fisher").validate().penalty_mode == "separate"
