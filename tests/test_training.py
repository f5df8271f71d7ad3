"""The compiled train step: task gradient + analytic penalty gradient, one optimizer update."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.training import ConsolidationTrainer


def test_one_sgd_step_equals_the_hand_computed_update(seeded):
    base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh")])
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(base(inp)))
    covered = base.trainable_variables
    penalty = ConsolidationPenalty(covered, ewc_lambda=2.0)
    omega = [seeded.random(v.shape).astype("float32") for v in covered]
    penalty.consolidate(omega)
    for v in covered:  # move away from the anchor so the penalty acts
        v.assign(v.numpy() + 0.3)
    x = seeded.random((8, 3)).astype("float32")
    y = seeded.integers(0, 2, 8)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    before = [v.numpy().copy() for v in model.trainable_variables]
    anchors = [a.numpy() for a in penalty.anchor]
    with tf.GradientTape() as tape:
        task_loss = loss_fn(y, model(x, training=True))
    task_grads = [g.numpy() for g in tape.gradient(task_loss, model.trainable_variables)]
    trainer = ConsolidationTrainer(model, penalty, None, covered)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss_fn, metrics=["accuracy"])
    logs = trainer.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    ids = {id(v): i for i, v in enumerate(covered)}
    for v, b, g in zip(model.trainable_variables, before, task_grads):
        want = g.copy()
        if id(v) in ids:
            i = ids[id(v)]
            want += 2.0 * omega[i] * (b - anchors[i])
        np.testing.assert_allclose(v.numpy(), b - 0.1 * want, rtol=1e-5, atol=1e-6)
    expected_penalty = 0.5 * 2.0 * sum(
        float(np.sum(o * (b - a) ** 2))
        for o, b, a in zip(omega, [before[i] for i in range(len(covered))], anchors)
    )
    np.testing.assert_allclose(logs["penalty"][0], expected_penalty, rtol=1e-4)
    np.testing.assert_allclose(logs["base_loss"][0], float(task_loss), rtol=1e-5)
    np.testing.assert_allclose(logs["loss"][0], float(task_loss) + expected_penalty, rtol=1e-5)


def test_penalty_is_zero_until_consolidated_then_switched_on_in_the_same_compiled_step(seeded):
    inp = keras.Input((3,))
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    penalty = ConsolidationPenalty(model.trainable_variables, ewc_lambda=5.0)
    trainer = ConsolidationTrainer(model, penalty, None, model.trainable_variables)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = seeded.random((8, 3)).astype("float32")
    y = seeded.integers(0, 2, 8)
    kernel, bias = model.trainable_variables
    traces = []  # train_step's Python body runs once per trace
    original_step = trainer.train_step

    def counting_step(data):
        traces.append(1)
        return original_step(data)

    trainer.train_step = counting_step

    def step():
        before = [v.numpy().copy() for v in (kernel, bias)]
        with tf.GradientTape() as tape:
            loss = trainer.compute_loss(x=x, y=y, y_pred=model(x, training=True))
        grads = [g.numpy() for g in tape.gradient(loss, [kernel, bias])]
        logs = trainer.train_on_batch(x, y, return_dict=True)
        return before, grads, logs

    # Nothing consolidated: plain SGD, a zero penalty.
    before, grads, logs = step()
    for v, b, g in zip((kernel, bias), before, grads):
        np.testing.assert_allclose(v.numpy(), b - 0.1 * g, rtol=1e-5, atol=1e-6)
    assert logs["penalty"] == 0.0
    # Consolidated after that: the same trainer (no new trace) now adds λ Ω (θ − θ*).
    omega = [np.full(v.shape, 2.0, np.float32) for v in (kernel, bias)]
    penalty.consolidate(omega)
    anchors = [v.numpy().copy() for v in (kernel, bias)]
    traced = len(traces)
    kernel.assign_add(np.full(kernel.shape, 0.5, np.float32))  # move away from the anchor
    before, grads, logs = step()
    for v, b, g, a, o in zip((kernel, bias), before, grads, anchors, omega):
        np.testing.assert_allclose(v.numpy(), b - 0.1 * (g + 5.0 * o * (b - a)),
                                   rtol=1e-5, atol=1e-6)
    expected = 0.5 * 5.0 * sum(float(np.sum(o * (b - a) ** 2))
                               for o, b, a in zip(omega, before, anchors))
    np.testing.assert_allclose(logs["penalty"], expected, rtol=1e-5)
    assert len(traces) == traced == 1
