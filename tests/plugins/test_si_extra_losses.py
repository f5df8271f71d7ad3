"""SI combined with a method that adds a loss (si+replay): which gradient ω integrates.

Zenke et al. (2017) define ω_k = Σ_t −g_k(t) Δθ_k(t), the share of parameter k in the drop of
the loss being optimised along the path the parameters actually took, with g the gradient of
that loss *without* SI's own surrogate term. With replay the loss being optimised is the task
loss plus the replay loss (it is what moves θ), so g is the gradient of that sum, and not of the
SI penalty. These tests run the compiled step and a brute-force eager loop side by side.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from sequential_learning.importance.penalty import ConsolidationPenalty
from sequential_learning.importance.synaptic_intelligence import SynapticIntelligenceImportance
from sequential_learning.plugins.consolidation import Consolidation
from sequential_learning.plugins.replay import ExperienceReplay

LEARNING_RATE = 0.1
REPLAY_BATCH = 4


def _brute_force(model, covered, x, y, memory, batch, penalty_terms, lam):
    """Eager SGD over the batches in order; ω for g of the task loss + replay loss, and for g
    of the task loss alone. The update also takes the SI penalty's gradient λ Ω (θ − θ̄)."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainable = model.trainable_variables
    covered_ids = [id(v) for v in covered]
    x_mem = np.repeat(memory[0][None], REPLAY_BATCH, axis=0)
    y_mem = np.repeat(np.asarray([memory[1]]), REPLAY_BATCH)
    with_replay = [np.zeros(v.shape, np.float64) for v in covered]
    task_only = [np.zeros(v.shape, np.float64) for v in covered]
    for s in range(0, len(x), batch):
        with tf.GradientTape(persistent=True) as tape:
            task_loss = loss_fn(y[s : s + batch], model(x[s : s + batch], training=True))
            replay_loss = loss_fn(y_mem, model(x_mem, training=True))
            total = task_loss + replay_loss
        g_total = dict(zip(map(id, trainable), tape.gradient(total, trainable)))
        g_task = dict(zip(map(id, trainable), tape.gradient(task_loss, trainable)))
        del tape
        before = {id(v): v.numpy().astype(np.float64) for v in trainable}
        for v in trainable:
            step = g_total[id(v)].numpy().astype(np.float64)
            if penalty_terms is not None and id(v) in covered_ids:
                omega, anchor = penalty_terms[covered_ids.index(id(v))]
                step = step + lam * omega * (before[id(v)] - anchor)
            v.assign((before[id(v)] - LEARNING_RATE * step).astype(np.float32))
        for j, v in enumerate(covered):
            delta = v.numpy().astype(np.float64) - before[id(v)]
            with_replay[j] += -g_total[id(v)].numpy().astype(np.float64) * delta
            task_only[j] += -g_task[id(v)].numpy().astype(np.float64) * delta
    return with_replay, task_only


@pytest.mark.parametrize("with_penalty", [False, True], ids=["no-penalty", "penalty"])
def test_si_with_replay_integrates_the_task_and_replay_loss_not_the_penalty(setup_factory,
                                                                          with_penalty):
    setup = setup_factory(rng=np.random.default_rng(3), scenario="domain", hidden=(5,))
    task = setup.tasks[0]
    model, covered = task.model, setup.run.covered
    x, y = (np.asarray(a) for a in task.train_data)
    # One stored sample from elsewhere in the stream: every replayed draw is that sample, so the
    # replay loss of each step is known without the buffer's random draws.
    other_x, other_y = (np.asarray(a) for a in setup.tasks[1].train_data)
    memory = (other_x[0].astype(np.float32), int(other_y[0]))
    lam = 2.0
    rng = np.random.default_rng(0)
    terms = None
    if with_penalty:  # a penalty already acting: its gradient moves θ but is not integrated
        terms = [(rng.random(v.shape), v.numpy() + 0.3 * rng.standard_normal(v.shape))
                 for v in covered]
    initial = [v.numpy().copy() for v in model.weights]

    want, task_only = _brute_force(model, covered, x, y, memory, task.batch_size, terms, lam)
    for v, value in zip(model.weights, initial):
        v.assign(value)

    penalty = ConsolidationPenalty(covered, lam, mode="online")
    if with_penalty:
        penalty.consolidate([o.astype(np.float32) for o, _ in terms])
        for anchor, (_, a) in zip(penalty.anchor, terms):
            anchor.assign(a.astype(np.float32))
    estimator = SynapticIntelligenceImportance(xi=0.1)
    consolidation = setup.build(Consolidation(estimator, penalty))
    replay = setup.build(ExperienceReplay(memory=1, memory_batch=REPLAY_BATCH,
                                          replay_policy="balanced"))
    replay.buffer.fill_slots(0, memory[0][None], [memory[1]], task=1)
    exp = setup.experience(0)
    consolidation.before_training_exp(exp)
    replay.before_training_exp(exp)
    trainer = setup.trainer(0, [consolidation, replay], learning_rate=LEARNING_RATE)
    trainer.fit(x, y, batch_size=task.batch_size, epochs=1, shuffle=False, verbose=0)

    got = [o.numpy() for o in estimator.path_integral()]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=2e-6, rtol=2e-4)
    # The choice matters: the task-only path integral is another quantity on this stream.
    gap = max(float(np.max(np.abs(g - t))) for g, t in zip(got, task_only))
    scale = max(float(np.max(np.abs(w))) for w in want)
    assert gap > 0.05 * scale, (gap, scale)
