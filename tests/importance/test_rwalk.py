"""RWalk: the running Fisher, the path-integral scores and Ω against a NumPy brute force (hand-made
steps, and the compiled train step against an eager loop), the `latest` penalty, the stream
effect, resume and bad options; on every backend."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from keras import ops

from crash import CrashAfterEpochs
from sequential_learning import backend
from sequential_learning.data.benchmarks import make_benchmark
from sequential_learning.importance import create_estimator, default_penalty_mode
from sequential_learning.importance.base import TaskContext
from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.importance.rwalk import EPSILON, RWalkImportance
from sequential_learning.manager import SequentialLearningManager
from sequential_learning.models import mlp_base
from sequential_learning.tasks import tasks_from_benchmark
from sequential_learning.training import ConsolidationTrainer

pytestmark = pytest.mark.all_backends

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _np(value):
    return np.array(ops.convert_to_numpy(value))


class _Reference:
    """RWalk in NumPy (float64), one step at a time."""

    def __init__(self, shapes, alpha=0.9, epsilon=EPSILON):
        self.alpha, self.epsilon = alpha, epsilon
        self.fisher = [np.zeros(s) for s in shapes]
        self.score = [np.zeros(s) for s in shapes]
        self.average = None

    def begin_task(self):
        self.score = [np.zeros_like(s) for s in self.score]

    def step(self, gradients, old, new):
        for i, (g, a, b) in enumerate(zip(gradients, old, new)):
            g, delta = np.float64(g), np.float64(b) - np.float64(a)
            self.fisher[i] = self.alpha * g**2 + (1 - self.alpha) * self.fisher[i]
            self.score[i] += -g * delta / (0.5 * self.fisher[i] * delta**2 + self.epsilon)

    def end_task(self):
        clipped = [np.maximum(s, 0) for s in self.score]
        self.average = clipped if self.average is None else [
            0.5 * (a + s) for a, s in zip(self.average, clipped)]
        peak_f = max(f.max() for f in self.fisher)
        peak_s = max(a.max() for a in self.average)
        return [f / peak_f + a / peak_s for f, a in zip(self.fisher, self.average)]


def test_scores_and_importance_match_a_brute_force_over_hand_made_steps():
    rng = np.random.default_rng(0)
    variables = [keras.Variable(np.zeros((3,), np.float32)),
                 keras.Variable(np.zeros((2, 2), np.float32))]
    estimator = RWalkImportance()
    estimator.build(variables)
    reference = _Reference([v.shape for v in variables])
    context = TaskContext(task=None, model=None, variables=variables, x=None, y=None)
    for steps in (3, 2):  # two tasks
        estimator.begin_task(variables)
        reference.begin_task()
        for _ in range(steps):
            old = [_np(v) for v in variables]
            new = [o + rng.normal(0, 0.1, o.shape).astype(np.float32) for o in old]
            # Gradients mostly against the move (the loss fell), a few with it.
            grads = [(-(n - o) * rng.uniform(-0.5, 3.0, o.shape)).astype(np.float32)
                     for o, n in zip(old, new)]
            grads[0][0] = 2.0 * (new[0][0] - old[0][0])  # this weight's moves raise the loss
            for v, n in zip(variables, new):
                v.assign(n)
            estimator.track_step([ops.convert_to_tensor(g) for g in grads],
                                 [ops.convert_to_tensor(o) for o in old])
            reference.step(grads, old, new)
        for got, want in zip(estimator.fisher(), reference.fisher):
            np.testing.assert_allclose(got, want, rtol=1e-5)
        for got, want in zip(estimator.task_score(), reference.score):
            np.testing.assert_allclose(got, want, rtol=1e-4)
        assert any(np.any(s < 0) for s in reference.score)  # clipping matters
        omega = [_np(o) for o in estimator.end_task(context)]
        for got, want in zip(omega, reference.end_task()):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
        assert max(o.max() for o in omega) <= 2.0 + 1e-6 and min(o.min() for o in omega) >= 0
    assert estimator.tasks == 2


def _model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(6, activation="tanh")
    outputs = keras.layers.Dense(3)(hidden(inputs))
    return keras.Model(inputs, outputs), hidden.trainable_variables


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_compiled_step_matches_an_eager_loop(optimizer):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((24, 5)).astype("float32")
    y = rng.integers(0, 3, 24)

    def make_optimizer():
        return keras.optimizers.SGD(0.2) if optimizer == "sgd" else keras.optimizers.Adam(0.05)

    model, covered = _model()
    reference = _Reference([v.shape for v in covered])
    opt = make_optimizer()
    trainable = model.trainable_variables
    position = [next(i for i, t in enumerate(trainable) if t is v) for v in covered]
    for _ in range(2):
        for s in range(0, len(x), 8):
            _, _, grads = backend.ops().value_and_grad(
                lambda s=s: (LOSS(y[s:s + 8], model(x[s:s + 8], training=True)), None),
                trainable)
            grads = [_np(g) for g in grads]
            old = [_np(v) for v in covered]
            opt.apply_gradients(zip([ops.convert_to_tensor(g) for g in grads], trainable))
            reference.step([grads[i] for i in position], old, [_np(v) for v in covered])

    model, covered = _model()
    estimator = RWalkImportance()
    estimator.build(covered)
    estimator.begin_task(covered)
    trainer = ConsolidationTrainer(model, None, estimator, covered)
    trainer.compile(optimizer=make_optimizer(), loss=LOSS)
    trainer.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for got, want in zip(estimator.fisher(), reference.fisher):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9)
    for got, want in zip(estimator.task_score(), reference.score):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3 * np.abs(want).max())
    assert sum(float(s.sum()) for s in estimator.task_score()) > 0


def test_latest_penalty_keeps_only_the_newest_importance():
    variable = keras.Variable(np.zeros((3,), np.float32))
    penalty = ConsolidationPenalty([variable], 2.0, mode="latest")
    penalty.consolidate([np.array([1.0, 2.0, 3.0], np.float32)])
    variable.assign([1.0, 1.0, 1.0])
    penalty.consolidate([np.array([0.5, 0.0, 1.0], np.float32)])
    np.testing.assert_array_equal(_np(penalty.importance[0]), [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(_np(penalty.anchor[0]), [1.0, 1.0, 1.0])
    variable.assign([3.0, 0.0, 1.0])  # value λ/2 Σ Ω (θ − θ*)²
    assert float(_np(penalty.value())) == pytest.approx(0.5 * 2.0 * (0.5 * 4.0 + 0.0 + 0.0))
    assert default_penalty_mode("rwalk") == "latest"


def _manager(method="rwalk", out_dir=None, callbacks=(), ewc_lambda=3.0):
    """Three tasks of permuted digits (600 samples each): fine-tuning forgets much of them."""
    keras.utils.set_random_seed(0)
    stream = make_benchmark("permuted-digits", seed=0, num_tasks=3, limit=600)
    base = mlp_base(stream.input_shape, (32,))
    tasks = tasks_from_benchmark(stream, base, batch_size=32)
    return SequentialLearningManager(base, tasks, method=method, ewc_lambda=ewc_lambda,
                                     epochs=2, learning_rate=0.01, seed=0, out_dir=out_dir,
                                     callbacks=list(callbacks))


@pytest.fixture(scope="module")
def rwalk_run(tmp_path_factory):
    """A finished RWalk run (λ 3) with its checkpoints, and its manager."""
    manager = _manager(out_dir=tmp_path_factory.mktemp("rwalk") / "full")
    return manager, manager.train_all()


def test_rwalk_consolidates_and_forgets_less_than_fine_tuning(rwalk_run):
    manager, results = rwalk_run
    none = _manager("none", ewc_lambda=0.0).train_all()
    assert results.config["penalty_mode"] == "latest"
    assert results.config["rwalk_alpha"] == 0.9
    penalty, estimator = manager.penalty, manager.estimator
    assert penalty.num_terms == 3 and estimator.tasks == 3
    peak = max(float(_np(o).max()) for o in penalty.importance)
    assert 1.0 <= peak <= 2.0  # F / max F + s / max s
    for anchor, v in zip(penalty.anchor, manager.covered):
        np.testing.assert_array_equal(_np(anchor), _np(v))  # the latest weights
    assert results.metrics["bwt"] > none.metrics["bwt"] + 0.15, (results.accuracy_matrix,
                                                                 none.accuracy_matrix)


def test_resume_gives_the_same_numbers(rwalk_run, tmp_path):
    _, full = rwalk_run
    with pytest.raises(RuntimeError, match="simulated crash"):
        # Two epochs per task: fails after the first epoch of task 3.
        _manager(out_dir=tmp_path / "run", callbacks=[CrashAfterEpochs(5)]).train_all()
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["completed_tasks"] == 2
    resumed = _manager(out_dir=tmp_path / "run")
    results = resumed.train_all(resume=True)
    assert resumed.estimator.tasks == 3  # two restored, one trained
    np.testing.assert_allclose(results.accuracy_matrix, full.accuracy_matrix, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, float("nan"), "0.9", True])
def test_bad_alpha_is_one_line(alpha):
    with pytest.raises(ValueError, match=r"^rwalk alpha must be a number in \(0, 1\], got "):
        RWalkImportance(alpha=alpha)


def test_bad_epsilon_and_missing_gradients():
    with pytest.raises(ValueError, match="^rwalk epsilon must be a finite number > 0"):
        RWalkImportance(epsilon=0.0)
    estimator = create_estimator("rwalk")
    variable = keras.Variable(np.zeros((2,), np.float32))
    estimator.build([variable])
    with pytest.raises(ValueError, match="gradient"):
        estimator.track_step(None, [ops.zeros(2)])
