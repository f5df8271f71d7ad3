"""Sign-flip, update-reversal and weight-change trackers against NumPy on known weight sequences.

The reference design's trackers kept references to the weight variables instead of copies, so
every change they measured was zero and the three methods silently became weight decay. The
sequences here have known, non-zero counts: a tracker that sees no change fails every test.
Every backend.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sequential_learning import backend
from sequential_learning.importance import create_estimator
from sequential_learning.importance.base import TaskContext
from sequential_learning.importance.trackers import (
    MomentumImportance,
    SignFlipImportance,
    WeightChangeImportance,
)
from sequential_learning.training import ConsolidationTrainer

pytestmark = pytest.mark.all_backends

# A hand-made sequence θ_0 .. θ_6 for four weights: flips, reversals, a weight that stays put
# and one that touches zero.
SEQUENCE = np.array(
    [
        [0.5, -0.2, 1.0, 0.0],
        [-0.1, -0.1, 1.0, 0.2],
        [0.3, 0.1, 1.0, 0.0],
        [0.2, 0.2, 1.0, -0.1],
        [-0.4, 0.1, 1.0, -0.2],
        [-0.5, 0.3, 1.0, 0.1],
        [0.6, 0.2, 1.0, 0.1],
    ],
    dtype=np.float32,
)


def numpy_flips(seq):
    return np.sum(np.sign(seq[1:]) * np.sign(seq[:-1]) < 0, axis=0).astype(np.float32)


def numpy_reversals(seq):
    delta = np.diff(seq, axis=0)
    return np.sum(np.sign(delta[1:]) * np.sign(delta[:-1]) < 0, axis=0).astype(np.float32)


def numpy_path(seq):
    return np.sum(np.abs(np.diff(seq, axis=0)), axis=0)


def numpy_net(seq):
    return np.abs(seq[-1] - seq[0])


CASES = {
    "sign-flipping": (SignFlipImportance, numpy_flips, "count"),
    "momentum-based": (MomentumImportance, numpy_reversals, "count"),
    "weight-change": (WeightChangeImportance, numpy_path, "path"),
}


def _drive(estimator, variable, sequence, compiled: bool):
    """Feeds `sequence[1:]` as successive updates, as the train step does: copy, update, track."""

    def step(value):
        old = [ops.copy(ops.convert_to_tensor(variable))]
        variable.assign(value)
        estimator.track_step([ops.zeros_like(value)], old)

    step_fn = step
    if compiled:
        step_fn = backend.ops().compiled(step, [variable, *estimator.own_variables()])
    for value in sequence[1:]:
        step_fn(ops.convert_to_tensor(value))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("method", sorted(CASES))
def test_tracker_counts_match_numpy(method, compiled):
    cls, reference, _ = CASES[method]
    variable = keras.Variable(SEQUENCE[0])
    estimator = cls()
    estimator.build([variable])
    estimator.begin_task([variable])
    _drive(estimator, variable, SEQUENCE, compiled)
    expected = reference(SEQUENCE)
    assert expected.sum() > 0  # the sequence has changes; a tracker that sees none fails
    np.testing.assert_allclose(estimator.counts()[0], expected, rtol=1e-6, atol=1e-6)
    context = TaskContext(task=None, model=None, variables=[variable], x=None, y=None)
    omega = ops.convert_to_numpy(estimator.end_task(context)[0])
    np.testing.assert_allclose(omega, 1.0 / (1.0 + expected), rtol=1e-6)
    assert np.all((omega > 0) & (omega <= 1))


def test_expected_counts_of_the_hand_made_sequence():
    # Counted by hand, so the NumPy references above are themselves checked. The last weight
    # goes 0 -> 0.2 -> 0 -> -0.1 -> -0.2 -> 0.1: touching zero is no flip, so one flip.
    np.testing.assert_array_equal(numpy_flips(SEQUENCE), [4, 1, 0, 1])
    np.testing.assert_array_equal(numpy_reversals(SEQUENCE), [3, 3, 0, 2])


def test_reference_bug_is_caught():
    """Passing the variable itself as the 'old' value (a reference, not a copy) sees no change."""
    variable = keras.Variable(SEQUENCE[0])
    buggy, good = SignFlipImportance(), SignFlipImportance()
    for est in (buggy, good):
        est.build([variable])
        est.begin_task([variable])
    for value in SEQUENCE[1:]:
        old = ops.copy(ops.convert_to_tensor(variable))
        variable.assign(value)
        good.track_step(None, [old])
        buggy.track_step(None, [ops.convert_to_tensor(variable)])  # the reference design's bug
    assert buggy.counts()[0].sum() == 0
    np.testing.assert_array_equal(good.counts()[0], numpy_flips(SEQUENCE))


def test_net_weight_change():
    variable = keras.Variable(SEQUENCE[0])
    estimator = WeightChangeImportance(net=True)
    assert not estimator.tracks_steps
    estimator.build([variable])
    estimator.begin_task([variable])
    for value in SEQUENCE[1:]:
        variable.assign(value)
    context = TaskContext(task=None, model=None, variables=[variable], x=None, y=None)
    omega = ops.convert_to_numpy(estimator.end_task(context)[0])
    np.testing.assert_allclose(omega, 1.0 / (1.0 + numpy_net(SEQUENCE)), rtol=1e-6)
    assert estimator.describe() == {"method": "weight-change", "net": True}


@pytest.mark.parametrize("method", sorted(CASES))
def test_begin_task_resets_the_same_variables(method):
    cls, reference, slot = CASES[method]
    variable = keras.Variable(SEQUENCE[0])
    estimator = cls()
    estimator.build([variable])
    accumulators = list(estimator._slot(slot))
    estimator.begin_task([variable])
    _drive(estimator, variable, SEQUENCE, compiled=True)
    assert estimator.counts()[0].sum() > 0
    estimator.begin_task([variable])
    assert estimator._slot(slot) == accumulators  # assigned, not replaced (the graph keeps them)
    assert estimator.counts()[0].sum() == 0
    # The momentum tracker also forgets the previous task's last update.
    variable.assign(SEQUENCE[0])
    _drive(estimator, variable, SEQUENCE, compiled=True)
    np.testing.assert_allclose(estimator.counts()[0], reference(SEQUENCE), rtol=1e-6)


@pytest.mark.parametrize("method", sorted(CASES))
def test_state_round_trip(method):
    cls, _, _ = CASES[method]
    variable = keras.Variable(SEQUENCE[0])
    estimator = cls()
    estimator.build([variable])
    estimator.begin_task([variable])
    _drive(estimator, variable, SEQUENCE, compiled=False)
    state = estimator.state()
    other = cls()
    other.build([variable])
    other.load_state(state)
    for a, b in zip(other.counts(), estimator.counts()):
        np.testing.assert_array_equal(a, b)


class _Recorder(keras.callbacks.Callback):
    """Copies the covered weights after every training step (test-only; never in training)."""

    def __init__(self, variables):
        super().__init__()
        self.variables = variables
        self.values = [[v.numpy().copy()] for v in variables]

    def on_train_batch_end(self, batch, logs=None):
        sync = getattr(self.model, "jax_state_sync", None)  # JAX: the step's state into the model
        if sync is not None:
            sync()
        for record, v in zip(self.values, self.variables):
            record.append(v.numpy().copy())


@pytest.mark.parametrize("method", ["sign-flipping", "momentum-based", "weight-change"])
def test_trackers_inside_the_compiled_train_step(seeded, method):
    """Through `ConsolidationTrainer.fit`: the counts equal NumPy's over the recorded weights."""
    inp = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation="tanh", bias_initializer="zeros")
    model = keras.Model(inp, keras.layers.Dense(2)(hidden(inp)))
    covered = hidden.trainable_variables
    for v in covered:  # small weights, so that a large step flips some signs
        v.assign(0.05 * seeded.standard_normal(v.shape).astype("float32"))
    estimator = create_estimator(method)
    estimator.build(covered)
    estimator.begin_task(covered)
    x = seeded.random((48, 3)).astype("float32")
    y = seeded.integers(0, 2, 48)
    trainer = ConsolidationTrainer(model, None, estimator, covered)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainer.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.5), loss=loss)
    recorder = _Recorder(covered)
    trainer.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[recorder])
    reference = {"sign-flipping": numpy_flips, "momentum-based": numpy_reversals,
                 "weight-change": numpy_path}[method]
    total = 0.0
    for counts, record in zip(estimator.counts(), recorder.values):
        expected = reference(np.stack(record))
        np.testing.assert_allclose(counts, expected, rtol=1e-5, atol=1e-6)
        total += float(expected.sum())
    assert total > 0
