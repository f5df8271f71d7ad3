"""GEM: the dual QP against scipy's exact NNLS, the projected step against a NumPy computation on
a tiny model, the stream effect, resume and bad options; on every backend."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import ops
from scipy.optimize import nnls

from crash import CrashAfterEpochs
from sequential_learning import backend
from sequential_learning.data.benchmarks import split
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.plugins import GEM
from sequential_learning.plugins.gem import ENUMERATED, EPSILON, solve_gem_dual
from sequential_learning.tasks import tasks_from_benchmark

pytestmark = pytest.mark.all_backends

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _np(value):
    return np.array(ops.convert_to_numpy(value))


def _reference_dual(p, q, lower):
    """min ½ vᵀPv + qᵀv, v ≥ lower, exactly (float64): with u = v − lower and P = LLᵀ it is the
    non-negative least squares problem min ‖Lᵀu + L⁻¹(P lower + q)‖², scipy's active-set NNLS."""
    p, q, lower = (np.asarray(a, np.float64) for a in (p, q, lower))
    factor = np.linalg.cholesky(p)
    u, _ = nnls(factor.T, -np.linalg.solve(factor, p @ lower + q))
    return u + lower


def _problem(rng, n, correlated=False):
    """G Gᵀ + εI and G g for random memory gradients G and a gradient g that conflicts with
    some of them (so that the solutions mix constraints at and above their bounds)."""
    memory = rng.standard_normal((n, 20))
    if correlated:  # nearly parallel constraints: the hard case for coordinate descent
        memory = memory[:1] + 0.3 * memory
    g = -memory.T @ rng.uniform(-0.5, 1.5, n) + 0.3 * rng.standard_normal(20)
    return memory @ memory.T + EPSILON * np.eye(n), memory @ g


@pytest.mark.parametrize("n, solver", [(1, "active-sets"), (2, "active-sets"),
                                       (3, "active-sets"), (4, "active-sets"),
                                       (3, "gauss-seidel")])
def test_dual_matches_exact_nnls(n, solver):
    rng = np.random.default_rng(n)
    free = []
    for trial in range(6 if solver == "active-sets" else 4):
        p, q = _problem(rng, n, correlated=trial % 2 == 1)
        lower = np.where(rng.random(n) < 0.7, 0.5, 0.0)
        want = _reference_dual(p, q, lower)
        got = _np(solve_gem_dual(p.astype("float32"), q.astype("float32"),
                                 lower.astype("float32"),
                                 sweeps=200 if solver == "gauss-seidel" else None))
        np.testing.assert_allclose(got, want, atol=1e-5 * max(1.0, np.abs(want).max()))
        assert np.all(got >= lower - 1e-6)
        free.append(int(np.sum(want > lower + 1e-9)))
    if n > 1:  # the cases are not all trivial: some constraints at their bound, some above
        assert any(0 < f < n for f in free), free


def test_many_constraints_use_gauss_seidel(monkeypatch):
    """Above `ENUMERATED` constraints the solver is projected Gauss-Seidel (fewer sweeps here,
    on well-separated constraints, to keep the eager loop short)."""
    from sequential_learning.plugins import gem

    monkeypatch.setattr(gem, "SWEEPS", 60)
    rng = np.random.default_rng(9)
    n = ENUMERATED + 1
    memory = rng.standard_normal((n, 400))
    p = memory @ memory.T + EPSILON * np.eye(n)
    q = memory @ rng.standard_normal(400)
    lower = np.full(n, 0.5)
    got = _np(solve_gem_dual(p.astype("float32"), q.astype("float32"), lower.astype("float32")))
    want = _reference_dual(p, q, lower)
    np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, np.abs(want).max()))


def _flat(arrays):
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])


def _gradient(fn, variables):
    return [_np(t) for t in backend.ops().value_and_grad(lambda: (fn(), {}), variables)[2]]


@pytest.mark.parametrize("scenario", ["domain", "task"])
def test_gem_step_applies_the_dual_projection(setup_factory, scenario):
    """Task 3 of 3 with two tasks in memory: the step's update is −lr (g + Gᵀv), v the dual's
    solution (scipy), G the memory gradients of tasks 1 and 2 (each through its own head)."""
    s = setup_factory(tasks=3, scenario=scenario)
    plugin = s.build(GEM(memory=6, gem_margin=0.5))  # two samples per task
    x, y = s.tasks[2].train_data
    x, y = x[:8], y[:8]
    plugin.before_training_exp(s.experience(2))
    trainer = s.trainer(2, [plugin], learning_rate=0.1)
    variables = trainer.trained_variables
    g = _flat(_gradient(lambda: LOSS(y, s.tasks[2].model(x, training=True)), variables))

    def memory_gradient(k, rows):
        return _flat(_gradient(lambda: LOSS(1 - y[rows], s.tasks[k].model(x[rows],
                                                                          training=True)),
                               variables))

    memory = []
    for k in range(2):
        # The memory of task k: two inputs of this batch with the other label, those whose
        # gradients through task k's model conflict most with the batch's.
        rows = np.argsort([memory_gradient(k, [j]) @ g for j in range(8)])[:2]
        plugin.buffer.fill_slots(2 * k, x[rows], 1 - y[rows], task=k)
        memory.append(memory_gradient(k, rows))
    memory = np.stack(memory)
    dots = memory @ g
    assert dots.min() < 0  # a conflict: the projection applies
    v = _reference_dual(memory @ memory.T + EPSILON * np.eye(2), dots, np.full(2, 0.5))
    want = g + v @ memory
    before = _flat([_np(w) for w in variables])
    logs = trainer.train_on_batch(x, y, return_dict=True)
    assert logs["projected"] == 1.0
    after = _flat([_np(w) for w in variables])
    np.testing.assert_allclose(after, before - 0.1 * want, rtol=1e-4, atol=2e-6)
    # The projected step does not raise (to first order) any memory's loss: G g̃ ≥ −εv, the
    # dual's optimality conditions with GEM's ε.
    assert np.all(memory @ want >= -EPSILON * v - 1e-6)


def test_gem_leaves_the_gradient_alone_without_memory_or_conflict(setup_factory):
    s = setup_factory(tasks=2, scenario="domain")
    plugin = s.build(GEM(memory=4))
    plugin.before_training_exp(s.experience(0))
    x, y = s.tasks[0].train_data
    trainer = s.trainer(0, [plugin])
    assert trainer.train_on_batch(x[:8], y[:8], return_dict=True)["projected"] == 0.0
    # Task 2 with task 1's own samples in memory: their gradient agrees with the batch's.
    plugin.buffer.fill_slots(0, x[:2], y[:2], task=0)
    plugin.before_training_exp(s.experience(1))
    model = s.tasks[1].model
    g = _flat(_gradient(lambda: LOSS(y[:8], model(x[:8], training=True)), trainer.trained_variables))
    r = _flat(_gradient(lambda: LOSS(y[:2], model(x[:2], training=True)), trainer.trained_variables))
    if g @ r > 0:
        before = [_np(w) for w in model.trainable_variables]
        trainer = s.trainer(1, [plugin], learning_rate=0.1)
        assert trainer.train_on_batch(x[:8], y[:8], return_dict=True)["projected"] == 0.0
        moved = _flat([_np(w) for w in model.trainable_variables])
        np.testing.assert_allclose(moved, _flat(before) - 0.1 * g, rtol=1e-4, atol=2e-6)


def _manager(method, out_dir=None, callbacks=()):
    """A small task-incremental stream of three tasks (class c lights up feature c)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((240, 6)).astype("float32")
    y = np.repeat(np.arange(6), 40)
    x[np.arange(240), y] += 2.0
    stream = split(x, y, classes_per_task=2, scenario="task", seed=0)
    base = mlp_base(stream.input_shape, (8,))
    tasks = tasks_from_benchmark(stream, base, batch_size=8)
    return SequentialLearningManager(base, tasks, method=method, epochs=2,
                                     learning_rate=0.01, seed=0, out_dir=out_dir,
                                     callbacks=list(callbacks), method_options={"memory": 30})


@pytest.fixture(scope="module")
def gem_run(tmp_path_factory):
    """A finished GEM run on a small task-incremental stream, with its checkpoints."""
    return _manager("gem", tmp_path_factory.mktemp("gem") / "full").train_all()


def test_gem_does_not_forget_where_fine_tuning_does(gem_run):
    gem = gem_run
    none = _manager("none").train_all()
    assert none.metrics["bwt"] < -0.03, none.accuracy_matrix
    assert gem.metrics["bwt"] >= -0.01, gem.accuracy_matrix
    assert gem.metrics["bwt"] > none.metrics["bwt"]
    assert gem.config["method_settings"]["gem"] == {"memory": 30, "memory_per_task": 10,
                                                    "gem_margin": 0.5}


def test_resume_gives_the_same_numbers(gem_run, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        # Two epochs per task: fails after the first epoch of task 3.
        _manager("gem", tmp_path / "run", [CrashAfterEpochs(5)]).train_all()
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["completed_tasks"] == 2
    resumed = _manager("gem", tmp_path / "run").train_all(resume=True)
    np.testing.assert_allclose(resumed.accuracy_matrix, gem_run.accuracy_matrix, atol=1e-6)


def test_bad_options_are_one_line(setup_factory):
    with pytest.raises(ValueError, match=r"^gem_margin: -0.5 is not allowed; expected a finite "
                                         r"number >= 0$"):
        GEM(gem_margin=-0.5)
    with pytest.raises(ValueError, match="^memory: 0 is not allowed"):
        GEM(memory=0)
    s = setup_factory(tasks=3)
    with pytest.raises(ValueError, match="^memory: 2 is smaller than the 3 tasks"):
        GEM(memory=2).check(s.run)
    with pytest.raises(ValueError, match="^memory: 10000 is larger than the"):
        GEM(memory=10000).check(s.run)
