"""Synaptic intelligence and the step trackers under a `tf.distribute` strategy (TensorFlow only).

On-read accumulators: each replica counts on its own copy and reading averages them, so two
replicas give the importance one does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

MIRRORED = textwrap.dedent(
    """
    import json
    from sequential_learning._tf import quiet_tensorflow
    quiet_tensorflow()
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from sequential_learning.importance import create_estimator
    from sequential_learning.importance.base import TaskContext
    from sequential_learning.training import ConsolidationTrainer

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype("float32")
    y = rng.integers(0, 3, 64)

    def run(strategy, method):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            inp = keras.Input((5,))
            hidden = keras.layers.Dense(6, activation="tanh")
            model = keras.Model(inp, keras.layers.Dense(3)(hidden(inp)))
            covered = hidden.trainable_variables
            estimator = create_estimator(method)
            estimator.build(covered)
            estimator.begin_task(covered)
            trainer = ConsolidationTrainer(model, None, estimator, covered)
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            trainer.compile(optimizer=keras.optimizers.SGD(0.5), loss=loss)
        trainer.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        context = TaskContext(task=None, model=model, variables=covered, x=x, y=y)
        return [np.asarray(o) for o in estimator.end_task(context)]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out = {}
    for method in ("si", "sign-flipping"):
        one, two = run(tf.distribute.get_strategy(), method), run(mirrored, method)
        out[method] = {"diff": max(float(np.max(np.abs(a - b))) for a, b in zip(one, two)),
                       "max": max(float(a.max()) for a in one),
                       "min": min(float(a.min()) for a in one)}
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_same_importance_under_a_mirrored_strategy():
    """Two replicas (logical CPUs, a fresh process): on-read accumulators average to the same Ω."""
    proc = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                          timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for method, r in result.items():
        assert r["diff"] < 1e-5, (method, r)
    assert result["si"]["max"] > 0
    assert result["sign-flipping"]["min"] < 1  # some sign flipped under both strategies
